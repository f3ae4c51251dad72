# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A docker-archive (what `docker load` reads) composed on the fly from already checked blobs.

The archive is a tar stream: each image's config as ``<hex>.json``, each layer the engine lacks as
``<diff_id hex>/layer.tar`` and ``manifest.json`` naming them in rootfs order. Nothing is written to
disk: every member is read from an open (and already hashed) file as it is sent. A layer whose
chain the engine already holds is named in manifest.json but not sent: the engine's loader looks
up each layer's chain ID first and never opens the file of one it has (measured on Docker 20.10
and 26 with the classic image store, docs/bundle-format.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

BLOCK = 512
PIECE = 256 * 1024


class ArchiveStreamError(Exception):
    """A member's bytes did not match the size recorded for it; the message names the member."""


def chain_ids(diff_ids):
    """The layer chain IDs of a rootfs (the engine's names for a layer and everything below it)."""
    chain = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else "sha256:" + hashlib.sha256(("%s %s" % (chain[-1], diff_id)).encode()).hexdigest())
    return chain


def engine_major(version):
    """The major version of an engine version string such as 26.1.5+dfsg1 or 20.10.24 (0 when unknown)."""
    match = re.match(r"^\s*(\d+)\.", version or "")
    return int(match.group(1)) if match else 0


def engine_reads(compression, version):
    """Whether an engine of `version` decompresses a layer.tar stored with `compression` itself.

    Docker 20.10 reads plain and gzip layers only; zstd arrived in Docker 23 (docs/bundle-format.md).
    """
    return compression in ("none", "gzip") or (compression == "zstd" and engine_major(version) >= 23)


def _header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _member(name, reader, size):
    """Header, exactly `size` bytes read from `reader`, padding; the reader must end right there."""
    yield _header(name, size)
    sent = 0
    while sent < size:
        data = reader.read(min(PIECE, size - sent))
        if not data:
            raise ArchiveStreamError("%s ended after %d of the %d bytes recorded for it" % (name, sent, size))
        sent += len(data)
        yield data
    if reader.read(1):
        raise ArchiveStreamError("%s holds more than the %d bytes recorded for it" % (name, size))
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def layer_member(diff_id):
    return "%s/layer.tar" % diff_id.split(":", 1)[-1]


def compose(images):
    """Yield the bytes of a docker-archive holding `images`.

    Each image is ``{"config_digest": "sha256:...", "config": bytes, "layers": [(diff_id, reader or None, size)]}``
    in rootfs order; a layer whose reader is None is named but not sent (the engine has it). No tags
    are recorded in the archive: the caller sets them after the load.
    """
    manifest = []
    for image in images:
        config_name = "%s.json" % image["config_digest"].split(":", 1)[-1]
        yield from _member(config_name, io.BytesIO(image["config"]), len(image["config"]))
        names = []
        for diff_id, reader, size in image["layers"]:
            names.append(layer_member(diff_id))
            if reader is not None and names[-1] not in names[:-1]:  # a layer twice in one rootfs is sent once
                yield from _member(names[-1], reader, size)
        manifest.append({"Config": config_name, "RepoTags": [], "Layers": names})
    document = json.dumps(manifest).encode()
    yield from _member("manifest.json", io.BytesIO(document), len(document))
    yield b"\0" * (2 * BLOCK)
