# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blobs of a version 2 bundle: written once under their sha256, never rewritten in place; the OCI documents.

A blob is written into a temporary file in blobs/sha256/ and hard-linked to its final name only when
complete and fsynced (a link never replaces an existing file), so a blob file either does not
exist or holds exactly the bytes its name promises. Layers are read from the engine's archive as
it streams (bundle_save_v2.py); a layer the bundle (or its base) already holds is only hashed,
never compressed or stored again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import stat
import tempfile

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write, fsync_directory
from ansible_collections.fleet.images.plugins.module_utils.compression import (
    compressing_writer,
    detect_compression,
    require_zstd,
    zstandard,
)
from ansible_collections.fleet.images.plugins.module_utils.hashing import HashingWriter

# The media type of a layer blob by its compression: gzip by default (Docker 20.10 loads and pulls gzip layers but
# not zstd ones, docs/bundle-format.md), zstd when asked for (every engine that pulls must be Docker 23 or later).
LAYER_TYPES = {compression: media_type for media_type, compression in bundle.LAYER_MEDIA_TYPES.items()}
BLOB_TEMP = re.compile(r"^\.blob\.[^/]+\.tmp$")
BLOB_FILE = re.compile(r"^[0-9a-f]{64}$")
PIECE = 1024 * 1024
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def blobs_dir(bundle_dir):
    return os.path.join(bundle_dir, *bundle.BLOBS_DIR.split("/"))


@contextlib.contextmanager
def new_blob(bundle_dir):
    """A HashingWriter into a temporary blob file; after the block, it is linked as blobs/sha256/<its sha256>.

    The caller reads the digest from the writer (``.digest`` is set when the block ends, and ``.created``:
    whether this made the file). An existing blob of the same digest is kept as it is (content
    addressing: same name, same bytes).
    """
    directory = blobs_dir(bundle_dir)
    fd, temp_path = tempfile.mkstemp(prefix=".blob.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = HashingWriter(raw)
            yield writer
            raw.flush()
            os.fsync(raw.fileno())
        writer.digest = "sha256:" + writer.hexdigest()
        os.chmod(temp_path, 0o644)
        writer.created = False
        with contextlib.suppress(FileExistsError):
            os.link(temp_path, bundle.blob_path(bundle_dir, writer.digest))
            writer.created = True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
    fsync_directory(directory)


def store_bytes(bundle_dir, data):
    """Store a small document (a config, a manifest) as a blob; return {"digest", "size"}."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if not blob_present(bundle_dir, digest, len(data)):
        with new_blob(bundle_dir) as writer:
            writer.write(data)
    return {"digest": digest, "size": len(data)}


def blob_present(bundle_dir, digest, size):
    """Whether blobs/sha256/<digest> is a regular file of `size` bytes (its content is not read)."""
    try:
        info = os.lstat(bundle.blob_path(bundle_dir, digest))
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == size


class _Plain:
    """The plain tar bytes of a layer member, whatever compression the archive stored it with."""

    def __init__(self, handle, head):
        self._handle = handle
        self._head = head + handle.read(max(0, 512 - len(head)))
        kind = detect_compression(self._head) or "none"
        self.compressed = kind != "none"
        if kind == "gzip":
            self._stream = gzip.GzipFile(fileobj=self, mode="rb")
        elif kind == "zstd":
            require_zstd()
            self._stream = zstandard.ZstdDecompressor().stream_reader(self)
        else:
            self._stream = self

    def read(self, size=-1):
        if not self._head:
            return self._handle.read(size)
        if size is None or size < 0 or size >= len(self._head):
            block, self._head = self._head, b""
        else:
            block, self._head = self._head[:size], self._head[size:]
        return block

    def pieces(self):
        while True:
            block = self._stream.read(PIECE)
            if not block:
                return
            yield block


def hash_layer(handle, head):
    """(diff_id, diff_size) of a layer member, read to its end and discarded."""
    digest, size = hashlib.sha256(), 0
    for block in _Plain(handle, head).pieces():
        digest.update(block)
        size += len(block)
    return "sha256:" + digest.hexdigest(), size


def store_layer(bundle_dir, handle, head, compression, level, known=None):
    """Compress a layer member into a new blob; return its layer descriptor (digest, size, diff_id, diff_size, media_type).

    When its diff_id turns out to be in `known` after all, the blob this made is removed again and the
    known descriptor is returned.

    The same layer gives the same blob bytes (so the same digest) on every save with the same compression
    and level and the same compressor library: gzip is zlib's deflate with mtime 0 and no file name in
    its header; zstd is one frame from zstandard's compressor without worker threads (threads=0), with
    neither content size nor checksum in its header, fed the same plain bytes in any pieces. Another
    zlib or libzstd version (zstandard bundles its own) may compress differently; the diff_id decides
    whether a layer is held, so that only costs dedupe between bundles, never correctness.
    """
    digest, size = hashlib.sha256(), 0
    with new_blob(bundle_dir) as blob:
        writer = compressing_writer(blob, compression, level, threads=0)
        for block in _Plain(handle, head).pieces():
            digest.update(block)
            size += len(block)
            writer.write(block)
        writer.close()
    diff_id = "sha256:" + digest.hexdigest()
    if known and diff_id in known:
        if blob.created:  # nothing held this file before: the layer is held elsewhere (or under its first digest)
            os.unlink(bundle.blob_path(bundle_dir, blob.digest))
        return known[diff_id]
    return {"media_type": LAYER_TYPES[compression], "digest": blob.digest, "size": blob.size, "diff_id": diff_id, "diff_size": size}


def oci_manifest(config, layers):
    """Our OCI image manifest (bytes, canonical: sorted keys, no spaces) for a config and layer descriptors."""
    document = {
        "schemaVersion": 2,
        "mediaType": bundle.OCI_MANIFEST_TYPE,
        "config": {"mediaType": bundle.OCI_CONFIG_TYPE, "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": layer["media_type"], "digest": layer["digest"], "size": layer["size"]} for layer in layers],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def index_document(manifest):
    """index.json: one descriptor per (image, reference), in manifest order, named by annotations."""
    descriptors = []
    for entry in manifest["images"]:
        for reference in entry["references"]:
            descriptors.append({
                "mediaType": bundle.OCI_MANIFEST_TYPE, "digest": entry["manifest"]["digest"], "size": entry["manifest"]["size"],
                "annotations": {CONTAINERD_NAME: image_ref.normalize(reference), REF_NAME: reference},
            })
    document = {"schemaVersion": 2, "mediaType": bundle.OCI_INDEX_TYPE, "manifests": descriptors}
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8")


def write_layout(bundle_dir, manifest):
    """Write oci-layout and index.json (each only if it changes): the directory reads as an OCI image layout."""
    atomic_write(os.path.join(bundle_dir, bundle.OCI_LAYOUT_NAME), b'{"imageLayoutVersion":"1.0.0"}')
    atomic_write(os.path.join(bundle_dir, bundle.INDEX_NAME), index_document(manifest))


def index_manifests(bundle_dir):
    """The manifest digests the current index.json names (empty when it is missing or unreadable)."""
    try:
        with open(os.path.join(bundle_dir, bundle.INDEX_NAME), "rb") as handle:
            document = json.loads(handle.read().decode("utf-8"))
        return {item["digest"] for item in document["manifests"] if isinstance(item.get("digest"), str)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def remove_orphans(bundle_dir, manifest):
    """Remove temporary blobs and blob files nothing lists (bundle.json, SHA256SUMS, index.json); return them.

    Runs only under the bundle lock with a manifest read without error. Only regular files named as
    image_save names blobs are removed.
    """
    directory = blobs_dir(bundle_dir)
    if not os.path.isdir(directory) or os.path.islink(directory):
        return []
    keep = {digest[len("sha256:"):] for digest in bundle.referenced_blobs(manifest)}
    keep |= {name.rsplit("/", 1)[-1] for name in bundle.read_sums(bundle_dir) if name.startswith(bundle.BLOBS_DIR + "/")}
    keep |= {digest[len("sha256:"):] for digest in index_manifests(bundle_dir)}
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if (BLOB_TEMP.match(name) or (BLOB_FILE.match(name) and name not in keep)) and os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
                if not name.startswith("."):
                    removed.append("%s/%s" % (bundle.BLOBS_DIR, name))
    return removed
