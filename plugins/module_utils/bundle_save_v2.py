# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_save with format_version 2: the engine's archive into content-addressed blobs (docs/bundle-format.md).

Each image's archive streams once through the tar reader: a layer the bundle or its base already
holds (same diff_id) is only hashed, any other is compressed into a new blob; then its config and
our OCI image manifest become blobs, and index.json, bundle.json and SHA256SUMS are committed, in
that order, after each image. A kill at any point leaves the last committed bundle.json listing
only complete blobs; the next save removes the blob files nothing lists.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils import bundle_blobs as blobs
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.bundle_save import (
    check_saved_image, claim_entry, commit_manifest, group_references, manifest_diff, prune_entries, release_requested,
    resolve_image, stream_archive, tags_of,
)
from ansible_collections.fleet.images.plugins.module_utils.compression import check_level, require_zstd
from ansible_collections.fleet.images.plugins.module_utils.engine_io import DISK_FULL, TransferError
from ansible_collections.fleet.images.plugins.module_utils.image_archive import ArchiveError, IterReader, describe_archive, read_archive
from ansible_collections.fleet.images.plugins.module_utils.image_result import any_changed, image_result

V1_FIELDS = ("file", "size", "sha256", "compression", "uncompressed_size", "archive_format")


@contextlib.contextmanager
def disk_full_worded(dest, what):
    """A full disk while writing blobs or the manifest becomes a TransferError that says what to do."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise TransferError(
            "no space left in %s while writing %s: nothing was committed for it, the bundle still lists what it held before. "
            "Free space there (or choose another bundle directory) and run the task again" % (dest, what)) from None


class _Retry(Exception):
    """A layer guessed known by its size was not: the image is read again, compressing every layer it cannot name."""


class Base:
    """The base of a differential bundle: the hash of its bundle.json and every blob and layer it references."""

    def __init__(self, path, dest):
        directory = os.path.dirname(path) if os.path.basename(path) == bundle.MANIFEST_NAME else path
        directory = os.path.abspath(directory)
        if os.path.realpath(directory) == os.path.realpath(dest):
            raise BundleError("base %s is the bundle being written: a base must be an earlier bundle in another directory" % path)
        try:
            with open(bundle.manifest_path(directory), "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise BundleError("cannot read the base bundle's %s: %s" % (bundle.manifest_path(directory), exc.strerror or exc)) from None
        manifest = bundle.parse_manifest(data.decode("utf-8-sig", "replace"), bundle.manifest_path(directory))
        if not bundle.is_v2(manifest):
            raise BundleError("base %s is a format version 1 bundle (tarballs): a differential bundle needs a version 2 base" % directory)
        self.directory = directory
        self.digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs = bundle.referenced_blobs(manifest)
        self.layers = {layer["diff_id"]: layer for entry in manifest["images"] for layer in entry["layers"]}


def check_base(manifest, base, force):
    """Refuse to extend a differential bundle against another base than the one it was made against."""
    recorded = (manifest.get("requires") or {}).get("bundle")
    if recorded and not force and (base is None or base.digest != recorded):
        raise BundleError(
            "the bundle is differential against a base whose bundle.json has %s, but %s. Give that base "
            "(option base), or set force: true to save every image again" % (
                recorded, "no base was given" if base is None else "the base %s has %s" % (base.directory, base.digest)))


def known_layers(dest, manifest, base):
    """{diff_id: layer descriptor} of the layers already stored: the base's first, then this bundle's present blobs."""
    known = dict(base.layers) if base else {}
    for entry in manifest["images"]:
        for layer in entry.get("layers") or []:
            if layer["diff_id"] not in known and blobs.blob_present(dest, layer["digest"], layer["size"]):
                known[layer["diff_id"]] = layer
    return known


class LayerSink:
    """Reads each layer of one image's archive as it streams (image_archive.read_archive's on_layer)."""

    def __init__(self, dest, known, expected, compression, level, trust_sizes):
        self.dest, self.known, self.compression, self.level = dest, known, compression, level
        self.sizes = {known[diff_id]["diff_size"] for diff_id in expected if diff_id in known} if trust_sizes else set()
        self.new = {}
        self.guessed_wrong = False

    def __call__(self, name, size, handle, head):
        named = "sha256:" + name.rsplit("/", 1)[-1] if name.startswith("blobs/") else None
        if named in self.known or named in self.new:  # an OCI layout names a plain layer by its diff_id
            diff_id, _size = blobs.hash_layer(handle, head)
            if diff_id != named:
                raise ArchiveError("blob %s in the archive holds a layer whose sha256 is %s" % (name, diff_id))
            return
        if named is None and size in self.sizes:  # docker-archive: same size as a held layer, so most likely that one
            diff_id, _size = blobs.hash_layer(handle, head)
            self.guessed_wrong = self.guessed_wrong or (diff_id not in self.known and diff_id not in self.new)
            return
        layer = blobs.store_layer(self.dest, handle, head, self.compression, self.level, dict(self.known, **self.new))
        if layer["diff_id"] not in self.known:
            self.new.setdefault(layer["diff_id"], layer)

    def layer(self, diff_id, files):
        """The descriptor of `diff_id`: stored now, held already, or a small layer read as JSON-looking member."""
        found = self.new.get(diff_id) or self.known.get(diff_id)
        name = "blobs/sha256/" + diff_id[len("sha256:"):]
        if found is None and name in files:
            self(name, len(files[name]), io.BytesIO(files[name]), b"")
            found = self.new.get(diff_id)
        if found is None:
            if self.guessed_wrong:
                raise _Retry()
            raise ArchiveError("the archive has no layer %s, which its image config lists" % diff_id)
        return found


def describe_image(index, name):
    """(description, config bytes, diff_ids) of the one image of an archive index."""
    images, _layout = describe_archive(index.files, index.oversized)
    if len(images) != 1:
        raise TransferError("the engine's archive of %s holds %d images, expected exactly one" % (name, len(images)))
    hexdigest = images[0]["config_digest"][len("sha256:"):]
    data = index.files.get(hexdigest + ".json") or index.files.get("blobs/sha256/" + hexdigest)
    config = json.loads(data.decode("utf-8"))
    return images[0], data, list((config.get("rootfs") or {}).get("diff_ids") or [])


class SaveV2:
    """One image_save run writing a version 2 bundle."""

    def __init__(self, client, dest, options, base, check_mode, engine_name):
        self.client, self.dest, self.base, self.check_mode, self.engine_name = client, dest, base, check_mode, engine_name
        self.compression, self.level, self.force = options["compression"], options["level"], options["force"]

    def save_image(self, name, attrs, known):
        """Stream one image into blobs; return (description, config descriptor, layers, manifest descriptor, bytes written)."""
        for trust_sizes in (True, False):
            sink = LayerSink(self.dest, known, list((attrs.get("RootFS") or {}).get("Layers") or []), self.compression, self.level, trust_sizes)
            index = stream_archive(self.client, name, lambda chunks, sink=sink: read_archive(IterReader(chunks), on_layer=sink),
                                   blobs.blobs_dir(self.dest), self.engine_name, "the blobs of")
            described, config_data, diff_ids = describe_image(index, name)
            check_saved_image(name, attrs, described)
            try:
                layers = [sink.layer(diff_id, index.files) for diff_id in diff_ids]
            except _Retry:
                continue
            written = sum(layer["size"] for layer in sink.new.values())
            config, written = self.store(config_data, written)
            manifest, written = self.store(blobs.oci_manifest(config, layers), written)
            return described, config, layers, dict(manifest, media_type=bundle.OCI_MANIFEST_TYPE), written
        raise TransferError("the engine's archive of %s lacks a layer its config lists, read twice" % name)

    def store(self, data, written):
        """Store a config or manifest blob unless the bundle or its base holds it; return (descriptor, bytes written so far)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.base and self.base.blobs.get(digest) == len(data):
            return {"digest": digest, "size": len(data)}, written
        fresh = not blobs.blob_present(self.dest, digest, len(data))
        return blobs.store_bytes(self.dest, data), written + (len(data) if fresh else 0)

    def reason(self, entry, attrs):
        """Why an image must be saved, or None: same ID, every blob present with its size (or in the base).

        The compression asked for is not compared: a stored layer keeps its own (its media type says which).
        """
        if self.force:
            return "force is set"
        if entry is None:
            return "not in the bundle yet"
        if entry.get("image_id") != attrs["Id"]:
            return "the bundle holds image %s, the engine has %s" % (entry.get("image_id"), attrs["Id"])
        for digest, size in bundle.image_blobs(entry):
            if not blobs.blob_present(self.dest, digest, size) and not (self.base and self.base.blobs.get(digest) == size):
                return "blob %s is missing or has another size" % digest
        return None

    def save_groups(self, manifest, groups, requested):
        """Save (or keep) each image, committing after each one written; return (results, the entries kept)."""
        claims = []
        for _key, attrs, references, _note in groups:
            claims.append(claim_entry(manifest, references, attrs, claimed=[claim for claim in claims if claim is not None]))
        release_requested(manifest, claims, requested)
        results, kept = [], []
        for (_key, attrs, references, note), old in zip(groups, claims):
            reason = self.reason(old, attrs) if attrs else "it must be pulled first"
            merged = list(references) + [ref for ref in (old or {}).get("references", [])
                                         if image_ref.normalize(ref) not in requested and ref not in references]
            entry, written = old, 0
            if reason is None:
                entry = build_entry(old, merged, attrs, None)
            elif not self.check_mode:
                name = next((ref for ref in references if image_ref.is_tag(ref)), references[0])
                with disk_full_worded(self.dest, "the blobs of %s" % name):
                    saved = self.save_image(name, attrs, known_layers(self.dest, manifest, self.base))
                entry, written = build_entry(old, merged, attrs, saved[:4]), saved[4]
            if entry is not None:
                with disk_full_worded(self.dest, "the manifest of %s" % references[0]):
                    self.place(manifest, old, entry)
            kept.append(entry)
            results.append(self.result_of(references, attrs, note, entry, reason, written))
        return results, [entry for entry in kept if entry is not None]

    def place(self, manifest, old, entry):
        if old is None:
            manifest["images"].append(entry)
        else:
            manifest["images"][manifest["images"].index(old)] = entry
        if not self.check_mode and entry is not old:
            self.commit(manifest)

    def commit(self, manifest):
        """index.json, then bundle.json and SHA256SUMS (every blob they name is already complete on disk)."""
        set_requires(manifest, self.dest, self.base)
        blobs.write_layout(self.dest, manifest)
        commit_manifest(self.dest, manifest)

    def result_of(self, references, attrs, note, entry, reason, written):
        action = "unchanged" if reason is None else "saved"
        planned = reason is not None and self.check_mode
        extra = {"reason": reason or "the bundle already holds this image ID with every blob", "pulled": note}
        if entry is not None and not planned:
            extra.update(manifest=entry["manifest"]["digest"], blobs=[digest for digest, _size in bundle.image_blobs(entry)],
                         size=sum(size for _digest, size in bundle.image_blobs(entry)))
        moved = ((attrs or {}).get("Size") or 0) if planned else written
        return image_result(references[0], references, attrs["Id"] if attrs else None, action, moved, **extra)


def build_entry(old, references, attrs, saved):
    """The version 2 entry of an image: identity from the engine, blobs from the save (or kept from `old`)."""
    entry = {key: value for key, value in (old or {}).items() if key not in V1_FIELDS}
    entry.update(references=list(references), tags=tags_of(references), image_id=attrs["Id"],
                 repo_digests=list(attrs.get("RepoDigests") or []), os=attrs.get("Os"), architecture=attrs.get("Architecture"))
    if attrs.get("Variant"):
        entry["variant"] = attrs["Variant"]
    if saved is not None:
        described, config, layers, manifest = saved
        entry.update(config_digest=described["config_digest"], config_fingerprint=described["config_fingerprint"],
                     created=described["created"], manifest_digest=manifest["digest"], manifest=manifest, config=config,
                     layers=[dict(layer) for layer in layers],
                     saved_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return {key: value for key, value in entry.items() if value is not None}


def set_requires(manifest, dest, base):
    """``requires``: the blobs the images reference that this bundle does not hold (the base does); none without a base."""
    lacking = [{"digest": digest, "size": size} for digest, size in bundle.referenced_blobs(manifest).items()
               if not blobs.blob_present(dest, digest, size)]
    if base is not None and lacking:
        manifest["requires"] = {"bundle": base.digest, "blobs": lacking}
    else:
        manifest.pop("requires", None)


def read_v2_manifest(dest, force):
    """(manifest, read without error); a version 1 bundle is refused: the formats are not mixed in one directory."""
    try:
        manifest = bundle.load_manifest(dest, missing_ok=True, check_blobs=False)
    except BundleError as exc:
        if not force:
            raise BundleError("%s. Repair or remove it, or set force: true to start a new manifest in %s" % (exc, dest)) from exc
        return bundle.new_manifest(2), False
    if not bundle.is_v2(manifest):
        if manifest["images"]:
            raise BundleError(
                "bundle %s is format version 1 (one tarball per image); format_version 2 is not written over it. Save into a new "
                "directory (the images are read from the engine again), or set format_version: 1" % dest)
        manifest = dict(manifest, version=2)
    return manifest, True


def save_images_v2(client, dest, references, options, check_mode=False, engine_name="the engine"):
    """Bring the images `references` into the version 2 bundle at `dest`; return the module result (without failing).

    `options`: compression, level, pull, platform, force, prune, base (a bundle directory or its bundle.json, or None).
    """
    for reference in references:
        image_ref.check(reference)
    check_level(options["compression"], options["level"])
    if options["compression"] == "zstd":
        require_zstd()
    manifest_file = bundle.manifest_path(dest)
    with contextlib.ExitStack() as stack:
        if not check_mode:
            os.makedirs(blobs.blobs_dir(dest), mode=0o755, exist_ok=True)
            stack.enter_context(bundle.bundle_lock(dest))
        manifest, manifest_read = read_v2_manifest(dest, options["force"])
        base = Base(options["base"], dest) if options.get("base") else None
        check_base(manifest, base, options["force"])
        removed = blobs.remove_orphans(dest, manifest) if manifest_read and not check_mode else []
        before_text = bundle.render_manifest(manifest) if os.path.exists(manifest_file) else ""
        groups = group_references([(reference,) + resolve_image(client, reference, options["pull"], options["platform"], check_mode, engine_name)
                                   for reference in references])
        run = SaveV2(client, dest, options, base, check_mode, engine_name)
        results, kept = run.save_groups(manifest, groups, {image_ref.normalize(reference) for reference in references})
        pruned = prune_entries(manifest, kept, []) if options["prune"] else []
        if not check_mode:
            with disk_full_worded(dest, "bundle.json"):
                run.commit(manifest)
            removed += blobs.remove_orphans(dest, manifest) if manifest_read else []
        else:
            set_requires(manifest, dest, base)
        after_text = bundle.render_manifest(manifest)
    changed = any_changed(results) or bool(removed) or before_text != after_text
    saved = sum(result["action"] == "saved" for result in results)
    msg = ("%s %d of %d image(s) into %s" % ("would save" if check_mode else "saved", saved, len(results), dest) if saved
           else "the bundle %s already holds all %d image(s)" % (dest, len(results)))
    return {"changed": changed, "images": results, "removed": removed, "pruned": pruned, "bundle": dest, "manifest": manifest_file,
            "format_version": 2, "msg": msg, "diff": manifest_diff(before_text, after_text, manifest_file)}
