# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Saving images from a Docker Engine into a bundle: the logic behind image_save.

The engine's ``GET /images/{name}/get`` streams through the tar reader, sha256 and the compressor
into a temporary file (atomic_file.atomic_stream) renamed when complete; bundle.json and SHA256SUMS
are committed after each image, so an interrupted run keeps every image finished before it.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import os

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_stream
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.compression import compressing_writer, require_zstd
from ansible_collections.fleet.images.plugins.module_utils.docker_client import RequestException
from ansible_collections.fleet.images.plugins.module_utils.engine_io import (
    DISK_FULL,
    APIError,
    TransferError,
    engine_gone,
    inspect_image,
    no_read_timeout,
    platform_matches,
    platform_of,
    pull_image,
    Urllib3Error,
)
from ansible_collections.fleet.images.plugins.module_utils.hashing import HashingWriter
from ansible_collections.fleet.images.plugins.module_utils.image_archive import (
    ArchiveError,
    IterReader,
    describe_archive,
    fingerprint_from_inspect,
    read_archive,
)
from ansible_collections.fleet.images.plugins.module_utils.image_result import any_changed, image_result

# The engine sends 32 KiB HTTP chunks; handling each as it comes keeps the engine and this
# process working side by side (joining them into big blocks measured slower).
STREAM_CHUNK = 4 * 1024 * 1024
MAX_COMPRESSION_THREADS = 4
TEMP_SUFFIX = ".tmp"


def resolve_image(client, reference, pull, platform, check_mode, engine_name):
    """Find (and pull, as `pull` says) the image for `reference`; return (attrs or None, pull note or None).

    attrs is None only in check mode when a pull would be needed first.
    """
    attrs = inspect_image(client, reference)
    if attrs is not None and not platform_matches(attrs, platform):
        if pull == "never":
            raise TransferError("image %s on the engine %s is for %s, not %s, and pull is never"
                                % (reference, engine_name, platform_of(attrs), platform))
        attrs_platform, attrs = platform_of(attrs), None
    else:
        attrs_platform = None
    if pull == "always" or (pull == "missing" and attrs is None):
        if check_mode:
            return attrs, "would be pulled"
        pull_image(client, reference, platform, engine_name)
        attrs = inspect_image(client, reference)
        if attrs is None:
            raise TransferError("pulled %s, but the engine %s does not list it afterwards" % (reference, engine_name))
        return attrs, "pulled"
    if attrs is None:
        if attrs_platform:
            raise TransferError("image %s on the engine %s is for %s, not %s" % (reference, engine_name, attrs_platform, platform))
        raise TransferError(
            "image %s does not exist on the engine %s and pull is never: pull or build it first, or set pull: missing"
            % (reference, engine_name)
        )
    return attrs, None


def default_compression_threads():
    """zstd workers for a save: the engine's tar stream, not zstd, is the bottleneck.

    One worker at level 3 compresses faster than an engine writes an archive; the calling thread
    keeps reading, hashing and writing meanwhile. A few more help on large machines; beyond that
    they only cost memory (each holds its own buffers), and one CPU is left to the engine.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_COMPRESSION_THREADS, cpus - 1))


def stream_to_bundle_file(chunks, final_path, compression, level, threads):
    """Write an engine tar stream, compressed, to `final_path` (atomic_stream: whole or not at all).

    Returns what was measured on the way: sha256 and size of the file as written (what
    SHA256SUMS checks), uncompressed_size, and the archive's description.
    """
    with atomic_stream(final_path, 0o644) as raw:
        hashed = HashingWriter(raw)
        writer = compressing_writer(hashed, compression, level, threads=threads)
        try:
            index = read_archive(IterReader(chunks), tap=writer.write)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        images, layout = describe_archive(index.files, index.oversized)
        if len(images) != 1:
            raise TransferError("the engine's archive holds %d images, expected exactly one" % len(images))
    return dict(images[0], sha256=hashed.hexdigest(), size=hashed.size, uncompressed_size=index.size, archive_format=layout)


def stream_archive(client, name, consume, directory, engine_name="the engine", what="the tarball of"):
    """Return consume(chunks) of the engine's archive of `name`, its failures (engine, archive, full disk in `directory`) worded."""
    try:
        with no_read_timeout(client):
            return consume(client.api.get_image(name, chunk_size=STREAM_CHUNK))
    except APIError as exc:
        raise TransferError("the Docker Engine refused to save %s: %s" % (name, getattr(exc, "explanation", None) or exc)) from exc
    except ArchiveError as exc:
        raise TransferError("the engine's archive of %s is not usable: %s" % (name, exc)) from exc
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise TransferError(
                "no space left in %s while writing %s %s: nothing was committed for it, the bundle still lists its "
                "previous files. Free space there (or choose another bundle directory) and run the task again"
                % (directory, what, name)) from None
        if not isinstance(exc, (RequestException, Urllib3Error)):
            raise
        raise TransferError(engine_gone(engine_name, "saving %s" % name, exc)) from None
    except (Urllib3Error, http.client.HTTPException) as exc:
        raise TransferError(engine_gone(engine_name, "saving %s" % name, exc)) from None


def check_saved_image(name, attrs, measured):
    """Raise TransferError unless the archive (`measured`: config_digest, manifest_digest, fingerprint) holds the inspected image."""
    if attrs["Id"] not in (measured["config_digest"], measured["manifest_digest"]) and fingerprint_from_inspect(attrs) != measured["config_fingerprint"]:
        raise TransferError(
            "image %s changed while it was being saved: the engine listed ID %s, the archive holds config %s. Run the task again"
            % (name, attrs["Id"], measured["config_digest"])
        )


def save_one(client, name, attrs, final_path, compression, level, threads, engine_name="the engine"):
    """Save one image into `final_path` and check the archive holds the image that was inspected."""
    measured = stream_archive(client, name, lambda chunks: stream_to_bundle_file(chunks, final_path, compression, level, threads),
                              os.path.dirname(final_path), engine_name)
    try:
        check_saved_image(name, attrs, measured)
    except TransferError:
        with contextlib.suppress(OSError):
            os.unlink(final_path)
        raise
    return measured


def save_reason(entry, attrs, compression, bundle_dir, force):
    """Why an image's tarball must be written, or None when the bundle already holds it.

    Held means: same image ID, same compression, file present with the recorded size. The
    file's content is not read, which is what keeps a second run cheap.
    """
    if force:
        return "force is set"
    if entry is None:
        return "not in the bundle yet"
    if entry.get("image_id") != attrs["Id"]:
        return "the bundle holds image %s, the engine has %s" % (entry.get("image_id"), attrs["Id"])
    if entry["compression"] != compression:
        return "the bundle holds it with compression %s, %s was asked for" % (entry["compression"], compression)
    path = bundle.resolve_file(bundle_dir, entry["file"], owner=", ".join(entry["references"]))
    if not os.path.isfile(path):
        return "%s is missing" % entry["file"]
    if os.path.getsize(path) != entry["size"]:
        return "%s has %d bytes, bundle.json records %d" % (entry["file"], os.path.getsize(path), entry["size"])
    return None


def group_references(resolved):
    """[(key, attrs, [references])] in request order: one tarball per image, whatever its names."""
    groups = []
    by_key = {}
    for reference, attrs, note in resolved:
        key = attrs["Id"] if attrs else "unresolved:" + reference
        if key not in by_key:
            by_key[key] = (key, attrs, [], note)
            groups.append(by_key[key])
        if reference not in by_key[key][2]:
            by_key[key][2].append(reference)
    return list(groups)


def claim_entry(manifest, group, attrs, claimed):
    """The existing entry an image takes over: the one with its ID, else one whose every reference it now owns."""
    if attrs:
        for entry in manifest["images"]:
            if entry.get("image_id") == attrs["Id"] and not any(entry is other for other in claimed):
                return entry
    owned = {image_ref.normalize(reference) for reference in group}
    for entry in manifest["images"]:
        names = {image_ref.normalize(reference) for reference in entry["references"]}
        if names and names <= owned and not any(entry is other for other in claimed):
            return entry
    return None


def free_file_name(manifest, reference, compression, attrs):
    """A tarball name for `reference` that no entry of the committed manifest uses.

    The old tarball of the image being replaced keeps its name until the new one is committed, so
    an interrupted or failed save still leaves the last good file listed in bundle.json.
    """
    used = {entry.get("file") for entry in manifest["images"]}
    name = bundle.tarball_name(reference, compression)
    attempt = 0
    while name in used:
        attempt += 1
        variant = (attrs or {}).get("Id", "new") + ("" if attempt == 1 else "#%d" % attempt)
        name = bundle.tarball_name(reference, compression, variant=variant)
    return name


def tags_of(references):
    tags = []
    for reference in references:
        if image_ref.is_tag(reference):
            tag = image_ref.normalize(reference)
            if tag not in tags:
                tags.append(tag)
    return tags


def build_entry(old, references, attrs, file_name, compression, measured):
    entry = dict(old or {})
    entry.update(
        references=list(references),
        tags=tags_of(references),
        image_id=attrs["Id"],
        repo_digests=list(attrs.get("RepoDigests") or []),
        os=attrs.get("Os"),
        architecture=attrs.get("Architecture"),
        file=file_name,
        compression=compression,
    )
    if attrs.get("Variant"):
        entry["variant"] = attrs["Variant"]
    if measured is not None:
        entry.update(
            config_digest=measured["config_digest"],
            config_fingerprint=measured["config_fingerprint"],
            created=measured["created"],
            size=measured["size"],
            sha256=measured["sha256"],
            uncompressed_size=measured["uncompressed_size"],
            archive_format=measured["archive_format"],
            saved_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if measured.get("manifest_digest"):
            entry["manifest_digest"] = measured["manifest_digest"]
        else:
            entry.pop("manifest_digest", None)
    return {key: value for key, value in entry.items() if value is not None}


def remove_stale_temps(images_dir):
    """Temporary files an interrupted save left (only ever ours: the bundle lock is held)."""
    for name in os.listdir(images_dir) if os.path.isdir(images_dir) else []:
        if name.startswith(".") and name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(images_dir, name))


def remove_uncommitted_tarballs(dest, manifest):
    """Tarballs an interrupted save wrote or left behind that the committed bundle.json does not list.

    Only names image_save makes (bundle.TARBALL_FILE_NAME) are removed, and only while the bundle lock
    is held and the manifest was read without error. Returns the removed files, bundle-relative.
    """
    images_dir = os.path.join(dest, bundle.IMAGES_DIR)
    # a file SHA256SUMS still lists stays until a commit drops it, so `sha256sum -c` keeps passing
    listed = {entry["file"] for entry in manifest["images"]} | set(bundle.read_sums(dest))
    removed = []
    for name in sorted(os.listdir(images_dir)) if os.path.isdir(images_dir) else []:
        relative = "%s/%s" % (bundle.IMAGES_DIR, name)
        path = os.path.join(images_dir, name)
        if relative not in listed and bundle.TARBALL_FILE_NAME.match(name) and os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(relative)
    return removed


def commit_manifest(dest, manifest, new_path=None):
    """Write bundle.json and SHA256SUMS; on a full disk, say so and drop the tarball nothing lists."""
    try:
        bundle.write_manifest(dest, manifest)
    except OSError as exc:
        if new_path:
            relative = os.path.relpath(new_path, dest)
            with contextlib.suppress(OSError, BundleError):
                if relative not in {entry["file"] for entry in bundle.load_manifest(dest)["images"]} | set(bundle.read_sums(dest)):
                    os.unlink(new_path)
        if exc.errno in DISK_FULL:
            raise TransferError(
                "no space left in %s while writing bundle.json: the bundle still holds what it held before this task. "
                "Free space there and run the task again" % dest) from None
        raise


def manifest_diff(before_text, after_text, path):
    return {"before": before_text, "after": after_text, "before_header": path, "after_header": path}


def read_manifest(dest, force):
    """(manifest, whether it was read): a damaged bundle.json is an error unless `force` starts a new one."""
    try:
        return bundle.load_manifest(dest, missing_ok=True), True
    except BundleError as exc:
        if not force:
            raise BundleError("%s. Repair or remove it, or set force: true to start a new manifest in %s" % (exc, dest)) from exc
        return bundle.new_manifest(), False


def release_requested(manifest, claims, requested):
    """Take the references asked for now out of every entry no image claims; return the files of entries left empty."""
    obsolete = []
    for entry in list(manifest["images"]):
        if any(entry is claim for claim in claims):
            continue
        entry["references"] = [ref for ref in entry["references"] if image_ref.normalize(ref) not in requested]
        entry["tags"] = [tag for tag in entry.get("tags") or [] if image_ref.normalize(tag) not in requested]
        if not entry["references"]:
            manifest["images"].remove(entry)
            obsolete.append(entry_label(entry))
    return obsolete


def entry_label(entry):
    """The file that stands for an entry: its tarball (version 1) or its manifest blob (version 2)."""
    return entry["file"] if "file" in entry else bundle.blob_name(entry["manifest"]["digest"])


def place_entry(manifest, old, entry, obsolete):
    """Put `entry` where `old` was (or at the end); an old file it no longer uses becomes obsolete."""
    if old is None:
        manifest["images"].append(entry)
        return
    manifest["images"][manifest["images"].index(old)] = entry
    if old["file"] != entry["file"]:
        obsolete.append(old["file"])


def planned_entry(references, attrs, file_name, compression):
    """What check mode shows for an image it would write: the values only a write measures are placeholders."""
    return {"references": references, "tags": tags_of(references), "image_id": attrs["Id"] if attrs else "(pulled first)",
            "file": file_name, "compression": compression, "size": "(known once written)", "sha256": "(computed while writing)"}


def prune_entries(manifest, kept, obsolete):
    """Drop the entries of images not asked for; return their files."""
    pruned = []
    for entry in list(manifest["images"]):
        if not any(entry is other for other in kept):
            manifest["images"].remove(entry)
            obsolete.append(entry_label(entry))
            pruned.append(entry_label(entry))
    return pruned


def remove_obsolete(dest, manifest, obsolete, check_mode):
    """Delete the tarballs no entry lists any more (in check mode, only say which); return them."""
    in_use = {entry["file"] for entry in manifest["images"]}
    removed = []
    for name in obsolete:
        if name in in_use or name in removed:
            continue
        path = bundle.resolve_file(dest, name)
        if os.path.exists(path):
            removed.append(name)
            if not check_mode:
                os.unlink(path)
    return removed


class BundleSave:
    """One image_save run: the engine, the bundle directory and the options every image is saved with."""

    def __init__(self, client, dest, compression, level, threads, force, check_mode, engine_name):
        self.client = client
        self.dest = dest
        self.compression = compression
        self.level = level
        self.threads = threads
        self.force = force
        self.check_mode = check_mode
        self.engine_name = engine_name

    def save_groups(self, manifest, groups, requested):
        """Save (or keep) each image; return (results, the entries kept, the files that became obsolete)."""
        claims = []
        for _key, attrs, references, _note in groups:
            claims.append(claim_entry(manifest, references, attrs, claimed=[claim for claim in claims if claim is not None]))
        obsolete = release_requested(manifest, claims, requested)
        results, kept = [], []
        for group, old in zip(groups, claims):
            entry, result = self.save_group(manifest, group, old, requested, obsolete)
            kept.append(entry)
            results.append(result)
        return results, kept, obsolete

    def save_group(self, manifest, group, old, requested, obsolete):
        """Write one image's tarball when it must be, commit the manifest; return (its entry, its result)."""
        _key, attrs, references, note = group
        reason = save_reason(old, attrs, self.compression, self.dest, self.force) if attrs else "it must be pulled first"
        merged = list(references) + [ref for ref in (old or {}).get("references", [])
                                     if image_ref.normalize(ref) not in requested and ref not in references]
        new_path = None
        if reason is None:
            entry = build_entry(old, merged, attrs, old["file"], self.compression, None)
        elif self.check_mode:
            entry = planned_entry(merged, attrs, free_file_name(manifest, references[0], self.compression, attrs), self.compression)
        else:
            file_name = free_file_name(manifest, references[0], self.compression, attrs)
            new_path = bundle.resolve_file(self.dest, file_name)
            name = next((ref for ref in references if image_ref.is_tag(ref)), references[0])
            measured = save_one(self.client, name, attrs, new_path, self.compression, self.level, self.threads, self.engine_name)
            entry = build_entry(old, merged, attrs, file_name, self.compression, measured)
        place_entry(manifest, old, entry, obsolete)
        if new_path is not None:
            commit_manifest(self.dest, manifest, new_path)  # commit each image as soon as it is on disk
        return entry, self.result_of(references, attrs, note, entry, reason)

    def result_of(self, references, attrs, note, entry, reason):
        known = reason is None or not self.check_mode
        if reason is None:
            moved = 0
        else:
            moved = entry["size"] if known else (attrs or {}).get("Size") or 0
        return image_result(
            references[0], references, attrs["Id"] if attrs else None, "unchanged" if reason is None else "saved", moved,
            file=entry["file"], path=os.path.join(self.dest, entry["file"]), size=entry["size"] if known else None,
            sha256=entry["sha256"] if known else None, compression=self.compression, pulled=note,
            reason=reason or "the bundle already holds this image ID in %s with the recorded size" % entry["file"],
        )


def summary(results, dest, changed, check_mode):
    written = sum(result["action"] == "saved" for result in results)
    if written:
        return "%s %d of %d image(s) into %s" % ("would write" if check_mode else "wrote", written, len(results), dest)
    return "the bundle %s already holds all %d image(s)%s" % (
        dest, len(results), "; its manifest %s updated" % ("would be" if check_mode else "was") if changed else "")


def save_images(client, dest, references, compression="zstd", level=None, pull="missing", platform=None, force=False,
                prune=False, check_mode=False, threads=None, engine_name="the engine"):
    """Bring the images `references` into the bundle at `dest`; return the module result (without failing)."""
    for reference in references:
        image_ref.check(reference)
    if compression == "zstd":
        require_zstd()
    threads = default_compression_threads() if threads is None else threads
    run = BundleSave(client, dest, compression, level, threads, force, check_mode, engine_name)
    manifest_file = bundle.manifest_path(dest)
    with contextlib.ExitStack() as stack:
        if not check_mode:
            os.makedirs(os.path.join(dest, bundle.IMAGES_DIR), mode=0o755, exist_ok=True)
            stack.enter_context(bundle.bundle_lock(dest))
            remove_stale_temps(os.path.join(dest, bundle.IMAGES_DIR))
        manifest, manifest_read = read_manifest(dest, force)
        if bundle.is_v2(manifest) and manifest["images"]:
            raise BundleError("bundle %s is format version 2 (content-addressed blobs); format_version 1 is not written over it. "
                              "Save into a new directory, or set format_version: 2" % dest)
        before_text = bundle.render_manifest(manifest) if os.path.exists(manifest_file) else ""
        groups = group_references([(reference,) + resolve_image(client, reference, pull, platform, check_mode, engine_name)
                                   for reference in references])
        results, kept, obsolete = run.save_groups(manifest, groups, {image_ref.normalize(reference) for reference in references})
        pruned = prune_entries(manifest, kept, obsolete) if prune else []
        if not check_mode:
            commit_manifest(dest, manifest)
        removed = remove_obsolete(dest, manifest, obsolete, check_mode)
        if not check_mode and manifest_read:
            removed += [name for name in remove_uncommitted_tarballs(dest, manifest) if name not in removed]
        after_text = bundle.render_manifest(manifest)
    changed = any_changed(results) or bool(removed) or before_text != after_text
    return {"changed": changed, "images": results, "removed": removed, "pruned": pruned, "bundle": dest, "manifest": manifest_file,
            "msg": summary(results, dest, changed, check_mode), "diff": manifest_diff(before_text, after_text, manifest_file)}
