# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading version 2 (content-addressed) bundle images: only the blobs the engine lacks, checked, then composed.

For each image to load, the layers whose chain the engine already holds (from its images'
RootFS.Layers) are left out; every other blob it needs (config, missing layers) is opened once,
its size and sha256 checked against its digest on that descriptor before a byte reaches the
engine, and a docker-archive is composed from those same open files as it streams into the
engine's load API (docker_archive.py): no tarball is written anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.compression import CompressionError, open_decompressed, require_zstd
from ansible_collections.fleet.images.plugins.module_utils.docker_archive import ArchiveStreamError, chain_ids, compose, engine_reads
from ansible_collections.fleet.images.plugins.module_utils.engine_io import TransferError, inspect_image, stream_chunks_into_engine
from ansible_collections.fleet.images.plugins.module_utils.hashing import hash_handle, open_regular


def containerd_store(info):
    """Whether the engine keeps images in containerd's store (its load reads every layer of an archive)."""
    return "io.containerd.snapshotter" in repr(info.get("DriverStatus")) or info.get("Driver") == "overlayfs"


class EngineLayers:
    """The layer chains one engine holds, learnt once from its images and kept up to date as images load."""

    def __init__(self, client):
        self.client = client
        self._chains = None
        self.version = ""

    def chains(self):
        if self._chains is None:
            self._chains = set()
            self.version = self.client.version().get("Version") or ""
            if not containerd_store(self.client.info()):
                for summary in self.client.api.images():
                    attrs = inspect_image(self.client, summary["Id"])
                    self._chains.update(chain_ids(((attrs or {}).get("RootFS") or {}).get("Layers") or []))
        return self._chains

    def missing(self, entry):
        """The entry's layers (descriptors) whose chain the engine lacks, in rootfs order."""
        have = self.chains()
        chains = chain_ids([layer["diff_id"] for layer in entry["layers"]])
        return [layer for layer, chain in zip(entry["layers"], chains) if chain not in have]

    def loaded(self, entry):
        self.chains().update(chain_ids([layer["diff_id"] for layer in entry["layers"]]))


def needed_blobs(layers, entry):
    """[(digest, size)] a load of `entry` needs: its config, then each layer the engine lacks (once)."""
    needed = {entry["config"]["digest"]: entry["config"]["size"]}
    for layer in layers.missing(entry):
        needed.setdefault(layer["digest"], layer["size"])
    return list(needed.items())


def label_of(entry):
    return ", ".join(entry.get("references") or [])


def check_present(bundle_dir, manifest, wanted):
    """Raise TransferError before anything loads when a needed blob is not a file of the bundle directory.

    `wanted` is [(entry, [(digest, size)])]; the message names each image and its missing blobs.
    """
    lines, base_only = [], False
    required = bundle.required_blobs(manifest)
    for entry, blobs in wanted:
        absent = [digest for digest, _size in blobs if not os.path.isfile(bundle.blob_path(bundle_dir, digest))]
        if absent:
            lines.append("%s needs %s" % (label_of(entry), ", ".join(absent)))
            base_only = base_only or any(digest in required for digest in absent)
    if lines:
        hint = ("this bundle is differential (it requires the bundle %s): the images' base layers never reached this engine; "
                "load that base bundle first, or make a full bundle" % manifest["requires"]["bundle"]) if base_only else (
            "copy those files again from the bundle")
        raise TransferError("no image was loaded: %s lacks blobs: %s. %s" % (bundle_dir, "; ".join(lines), hint))


def open_checked(bundle_dir, digest, size, verify=True):
    """Open a blob once and check its size (and sha256, with `verify`) on that descriptor; return the open file."""
    path = bundle.blob_path(bundle_dir, digest)
    try:
        handle = open_regular(path)
    except OSError as exc:
        raise TransferError("blob %s cannot be read: %s" % (path, exc.strerror or exc)) from None
    try:
        actual_size = os.fstat(handle.fileno()).st_size
        if actual_size != size:
            raise TransferError("blob %s has %d bytes, bundle.json records %d" % (path, actual_size, size))
        if verify:
            actual = "sha256:" + hash_handle(handle)[0]
            if actual != digest:
                raise TransferError("blob %s failed its checksum: expected %s, actual %s" % (path, digest, actual))
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


class BlobFiles:
    """Every blob this run loads from, opened and checked once; closed together at the end."""

    def __init__(self, bundle_dir, verify):
        self.bundle_dir, self.verify = bundle_dir, verify
        self.handles, self.errors = {}, {}
        self.stack = contextlib.ExitStack()

    def check(self, blobs):
        """None when every blob is open and checked, else the first problem (each blob is tried once)."""
        for digest, size in blobs:
            if digest not in self.handles and digest not in self.errors:
                try:
                    self.handles[digest] = self.stack.enter_context(open_checked(self.bundle_dir, digest, size, self.verify))
                except (TransferError, BundleError) as exc:
                    self.errors[digest] = str(exc)
            if digest in self.errors:
                return self.errors[digest]
        return None

    def config_bytes(self, descriptor):
        """The config as checked: read from its open file, hashed again (it is small)."""
        handle = self.handles[descriptor["digest"]]
        handle.seek(0)
        data = handle.read(descriptor["size"] + 1)
        if len(data) != descriptor["size"] or (self.verify and "sha256:" + hashlib.sha256(data).hexdigest() != descriptor["digest"]):
            raise TransferError("blob %s changed while it was being loaded" % descriptor["digest"])
        return data

    def layer_reader(self, layer, engine_version):
        """(reader, size) of a layer.tar: the blob as stored when the engine decompresses it, else decompressed on the fly."""
        handle = self.handles[layer["digest"]]
        handle.seek(0)
        compression = bundle.layer_compression(layer["media_type"])
        if engine_reads(compression, engine_version):
            return handle, layer["size"]
        if compression == "zstd":
            require_zstd()
        return open_decompressed(handle, label=layer["digest"]), layer["diff_size"]


def compose_image(blobs, layers, entry):
    """(the docker-archive's chunks for `entry`, blob bytes it sends): the layers the engine lacks, read from their checked files."""
    missing = {layer["diff_id"] for layer in layers.missing(entry)}
    sent, members, bytes_sent = set(), [], entry["config"]["size"]
    for layer in entry["layers"]:
        if layer["diff_id"] in missing and layer["diff_id"] not in sent:
            reader, size = blobs.layer_reader(layer, layers.version)
            members.append((layer["diff_id"], reader, size))
            sent.add(layer["diff_id"])
            bytes_sent += layer["size"]
        else:
            members.append((layer["diff_id"], None, 0))
    image = {"config_digest": entry["config"]["digest"], "config": blobs.config_bytes(entry["config"]), "layers": members}
    return compose([image]), bytes_sent


def stream_image(client, blobs, layers, entry, engine_name):
    """Compose `entry`'s archive from its checked blobs into the engine; return (the engine's messages, bytes sent)."""
    label = "image %s" % label_of(entry)
    try:
        chunks, bytes_sent = compose_image(blobs, layers, entry)
        messages = stream_chunks_into_engine(client, chunks, label, engine_name)
    except (ArchiveStreamError, CompressionError, BundleError) as exc:
        raise TransferError("%s could not be composed from its blobs: %s" % (label, exc)) from None
    layers.loaded(entry)
    return messages, bytes_sent
