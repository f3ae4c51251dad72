# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a bundle's images (or a lone tarball) into a Docker Engine: the logic behind image_load.

Each image is planned first by its identity (image_archive.plan_load): present, present but lacking
tags, or needing its tarball (version 1) or the blobs the engine lacks (version 2, bundle_load_v2.py).
A file is checked (size, then sha256 in one read) on one open descriptor before a single byte
reaches the engine, and the bytes loaded are read again from that same descriptor. Given only the
manifest entries, the plan is all a run returns (no file is read). Results are contract C2 items.
"""

from __future__ import annotations

import contextlib
import errno
import os
import traceback

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.fleet.images.plugins.module_utils import bundle, platform
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.bundle_load_v2 import BlobFiles, EngineLayers, check_present, needed_blobs, stream_image
from ansible_collections.fleet.images.plugins.module_utils.compression import CompressionError, detect_handle, open_decompressed, require_zstd
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerException,
    RequestException,
    connect,
    docker_error_message,
    docker_host_from,
)
from ansible_collections.fleet.images.plugins.module_utils.engine_io import (
    TransferError,
    engine_data_root,
    free_bytes,
    inspect_image,
    restore_tags,
    space_shortfall,
    stream_into_engine,
)
from ansible_collections.fleet.images.plugins.module_utils.hashing import hash_handle, normalize_sha256, open_regular
from ansible_collections.fleet.images.plugins.module_utils.image_result import any_changed, image_result
from ansible_collections.fleet.images.plugins.module_utils.image_archive import (
    ArchiveError,
    created_seconds,
    describe_archive,
    identity_digests,
    is_same_image,
    plan_load,
    read_archive,
)

# The classic store unpacks the whole archive before importing it: about twice its size is needed.
SPACE_FACTOR = 2
# When a tarball's uncompressed size was not recorded, assume a compressed one expands this much.
UNKNOWN_EXPANSION = 4
# What a plan says, in the words of a load's result.
PLANNED = {"present": "unchanged", "tag": "tagged", "load": "loaded"}


def expected_uncompressed(entry, path):
    if entry.get("uncompressed_size") is not None:
        return entry["uncompressed_size"]
    size = os.path.getsize(path) if path and os.path.exists(path) else entry.get("size", 0)
    return size if entry.get("compression") == "none" else size * UNKNOWN_EXPANSION


def find_loaded(client, entry, messages=()):
    """The engine's image for `entry` after a load, or None.

    Looked up by the IDs the entry records, then by what the engine said it loaded ("Loaded
    image: name" / "Loaded image ID: id"), since the containerd store gives an image loaded from
    a docker-archive a new ID; either way it must be the same image (is_same_image).
    """
    candidates = list(identity_digests(entry))
    for message in messages:
        for prefix in ("Loaded image ID: ", "Loaded image: "):
            if message.startswith(prefix):
                candidates.append(message[len(prefix):].strip())
    candidates += list(entry.get("tags") or [])
    for name in candidates:
        attrs = inspect_image(client, name)
        if is_same_image(attrs, entry):
            return attrs
    return None


class Loader:
    """Loads bundle entries (or a lone tarball) into one engine, recording what happened to each."""

    def __init__(self, client, docker_host, verify=True, force=False, keep_free=0, check_mode=False, platform_mismatch="fail"):
        self.client = client
        self.platform_mismatch = platform_mismatch
        self.verify = verify
        self.force = force
        self.keep_free = keep_free
        self.check_mode = check_mode
        self.results = []
        self.failed = []
        self.failures = []
        self.layers = EngineLayers(client)
        self.warnings = []
        self._info = None
        self._docker_host = docker_host
        self._data_root = None
        self._root_asked = False
        # what each name pointed to before this run (for diff mode)
        self.seen = {}

    def lookup(self, name):
        attrs = inspect_image(self.client, name)
        self.seen.setdefault(name, attrs.get("Id") if attrs else None)
        return attrs

    def search(self, entry):
        """Images created in the same second as the entry's (the image list shows whole seconds), inspected."""
        wanted = created_seconds(entry.get("created"))
        if wanted is None or not entry.get("config_fingerprint"):
            return
        for summary in self.client.api.images():
            if summary.get("Created") == wanted:
                attrs = inspect_image(self.client, summary["Id"])
                if attrs is not None:
                    yield attrs

    def plan(self, entry):
        if self.force:
            return "load", None, list(entry.get("tags") or [])
        return plan_load(entry, self.lookup, self.search)

    def engine_info(self):
        if self._info is None:
            self._info = self.client.info()
        return self._info

    def data_root(self):
        if self._root_asked is False:
            self._root_asked = True
            self._data_root, why_not = engine_data_root(self._docker_host, self.engine_info())
            if why_not:
                self.warnings.append("free space was not checked before loading: %s" % why_not)
        return self._data_root, self._info.get("DockerRootDir")

    def check_space(self, label, uncompressed):
        measured, root_dir = self.data_root()
        if measured is None:
            return
        needed = SPACE_FACTOR * uncompressed
        shortfall = space_shortfall(needed, free_bytes(measured), self.keep_free)
        if shortfall:
            raise TransferError(
                "not enough space to load %s: the engine's data root %s %s (the archive is %d bytes uncompressed and is unpacked "
                "before it is imported); free space there or prune unused images" % (
                    label, root_dir, shortfall, uncompressed))

    def record(self, entry, action, image_id, tags_set, verified, error=None, moved=(0, ())):
        """One `images` item (contract C2) for `entry`; a failure goes to `failed` instead. `moved` is (bytes, files)."""
        references = list(entry.get("references") or [])
        if error:
            self.failures.append(error)
            self.failed.append({"reference": references[0] if references else None, "references": references, "error": error})
            return self.failed[-1]
        item = image_result(references[0], references, image_id, action, moved[0], tags=list(entry.get("tags") or []), tags_set=tags_set,
                            verified=verified, config_digest=entry.get("config_digest"), files=list(moved[1]))
        self.results.append(item)
        return item

    def needs(self, entry):
        """(bytes, bundle-relative files) a load of `entry` reads: its tarball, or the blobs the engine lacks."""
        if "manifest" not in entry:
            return entry.get("size") or 0, [entry["file"]]
        blobs = needed_blobs(self.layers, entry)
        return sum(size for _digest, size in blobs), [bundle.blob_name(digest) for digest, _size in blobs]

    def refused(self, entry):
        """Record `entry` failed or left out when its platform is not the engine's (module_utils/platform.py); else None."""
        outcome = platform.verdict(entry, self.engine_info(), self.platform_mismatch, self._docker_host)
        if outcome is None:
            return None
        if outcome[0] == "failed":
            return self.record(entry, "failed", None, [], False, outcome[1])
        result = self.record(entry, outcome[0], None, [], False)
        result["reason"] = outcome[1]
        return result

    def plan_only(self, entry):
        """Record what loading `entry` would do, asking the engine only: no file is read (image_id null for a load)."""
        refused = self.refused(entry)
        if refused:
            return refused
        action, image_id, tags = self.plan(entry)
        return self.record(entry, PLANNED[action], image_id, tags, False, moved=self.needs(entry) if action == "load" else (0, ()))

    def _apply_known(self, entry, plan, verified):
        """Record an image the engine has (present, or tagged now); None when the plan needs its files."""
        action, image_id, tags = plan
        if action == "present":
            return self.record(entry, "unchanged", image_id, [], verified)
        if action == "tag":
            return self.record(entry, "tagged", image_id, tags if self.check_mode else restore_tags(self.client, image_id, tags), verified)
        return None

    def _would_load(self, entry, tags, verified, moved=(0, ())):
        return self.record(entry, "loaded", entry.get("config_digest") or entry.get("image_id"), tags, verified, moved=moved)

    def _finish_load(self, entry, label, messages, tags, verified, action="loaded", moved=(0, ())):
        """After the engine took the archive: find the entry's image, restore its tags, record it."""
        attrs = find_loaded(self.client, entry, messages)
        if attrs is None:
            raise TransferError("the engine accepted %s but lists no image with config %s afterwards" % (label, entry.get("config_digest")))
        return self.record(entry, action, attrs["Id"], restore_tags(self.client, attrs["Id"], tags), verified, moved=moved)

    def load_v2(self, bundle_dir, manifest, entries):
        """Version 2: every needed blob present (else nothing loads) and checked, then each image composed from them."""
        plans = [(entry, self.plan(entry)) for entry in entries]
        wanted = [(entry, needed_blobs(self.layers, entry)) for entry, plan in plans if plan[0] == "load"]
        check_present(bundle_dir, manifest, wanted)
        blobs = BlobFiles(bundle_dir, self.verify)
        with blobs.stack:
            problems = {id(entry): blobs.check(needed) for entry, needed in wanted}  # every check before any load
            for entry, plan in plans:
                try:
                    self._apply_known(entry, plan, False) or self._load_blobs(blobs, entry, plan[2], problems[id(entry)])
                except TransferError as exc:
                    self.record(entry, "failed", None, [], False, str(exc))

    def _load_blobs(self, blobs, entry, tags, problem):
        label = "image %s" % ", ".join(entry["references"])
        if problem:
            return self.record(entry, "failed", None, [], False, "%s: %s. No image was loaded from it" % (label, problem))
        size, files = self.needs(entry)
        self.check_space(label, size + sum(layer["diff_size"] for layer in self.layers.missing(entry)))
        if self.check_mode:
            return self._would_load(entry, tags, self.verify, (size, files))
        messages, sent = stream_image(self.client, blobs, self.layers, entry, self._docker_host)
        return self._finish_load(entry, label, messages, tags, self.verify, moved=(sent, files))

    def load_entry(self, bundle_dir, entry):
        """Skip, tag or (after checking the file) load one bundle entry; a failure is recorded, not raised."""
        try:
            refused = self.refused(entry)
            if refused:
                return refused
            plan = self.plan(entry)
            return self._apply_known(entry, plan, False) or self._load_file(bundle_dir, entry, plan[2])
        except TransferError as exc:
            return self.record(entry, "failed", None, [], False, str(exc))

    def _load_file(self, bundle_dir, entry, tags):
        label = entry["file"]
        with contextlib.ExitStack() as stack:
            try:
                path, handle = bundle.open_entry_file(bundle_dir, entry, self.verify, sha256_now=False)  # size only
                stack.callback(handle.close)
                bundle.check_sums_agree(bundle_dir, entry)
                self.check_space(label, expected_uncompressed(entry, path))
                bundle.check_open_file(path, handle, entry, verify=self.verify)  # the sha256 of this descriptor
                detect_and_check_decoder(handle, path)
            except (BundleError, TransferError, CompressionError) as exc:
                return self.record(entry, "failed", None, [], False, "%s. No image was loaded from it" % exc)
            moved = (entry["size"], [label])
            if self.check_mode:
                return self._would_load(entry, tags, self.verify, moved)
            try:
                messages = stream_into_engine(self.client, handle, label, self._docker_host)
                return self._finish_load(entry, label, messages, tags, self.verify, moved=moved)
            except TransferError as exc:
                return self.record(entry, "failed", None, [], self.verify, str(exc))

    def load_tarball(self, path, sha256=None):
        """Load a lone tarball: its sha256 is checked, then it is parsed (bounded), then loaded: one descriptor throughout."""
        with contextlib.ExitStack() as stack:
            try:
                handle, verified = self._open_tarball(path, sha256)
                stack.callback(handle.close)
                entries, plans = self._check_tarball(path, handle)
            except (TransferError, CompressionError) as exc:
                raise TransferError("%s. No image was loaded from it" % exc) from exc
            if self.check_mode or all(plan[0] != "load" for plan in plans):
                for entry, plan in zip(entries, plans):
                    self._apply_known(entry, plan, verified) or self._would_load(entry, plan[2], verified, (os.path.getsize(path), [path]))
                return
            messages = stream_into_engine(self.client, handle, path, self._docker_host)
            for index, (entry, (action, _image_id, tags)) in enumerate(zip(entries, plans)):
                moved = (os.path.getsize(path), [path]) if index == 0 else (0, ())  # the one tarball went in once
                self._finish_load(entry, path, messages, tags, verified, "loaded" if action == "load" else "unchanged", moved)

    def _open_tarball(self, path, sha256):
        """Open the lone tarball once and check its sha256 on that descriptor; return (handle, verified).

        A given sha256 is always checked, whatever `verify` says; without one, verify takes it from
        a SHA256SUMS beside the file, or (verify: false) the file is used unverified.
        """
        expected = normalize_sha256(sha256) if sha256 else None
        if sha256 and expected is None:
            raise TransferError("sha256 %r is not a sha256 checksum: expected 64 hex digits, optionally prefixed by sha256:" % sha256)
        try:
            handle = open_regular(path)
        except OSError as exc:
            reason = "does not exist" if exc.errno == errno.ENOENT else (exc.strerror or str(exc))
            raise TransferError("%s cannot be read: %s%s" % (path, reason, "; expected sha256 %s" % expected if expected else "")) from None
        try:
            if expected is None and self.verify:
                expected = checksum_from_sums_file(path)
            if expected is not None:
                actual = hash_handle(handle)[0]
                if actual != expected:
                    raise TransferError("%s failed its checksum: expected sha256 %s, actual %s" % (path, expected, actual))
                handle.seek(0)
            detect_and_check_decoder(handle, path)
        except BaseException:
            handle.close()
            raise
        return handle, expected is not None

    def _check_tarball(self, path, handle):
        """What the (already checked) open tarball holds, read with bounds; and the plan for each image."""
        described, uncompressed = describe_tarball(handle, path)
        entries = [{
            "references": list(image["repo_tags"]) or [image["config_digest"]], "tags": list(image["repo_tags"]),
            "file": path, "config_digest": image["config_digest"], "manifest_digest": image["manifest_digest"],
            "config_fingerprint": image["config_fingerprint"], "created": image["created"],
        } for image in described]
        plans = [self.plan(entry) for entry in entries]
        if any(plan[0] == "load" for plan in plans):
            self.check_space(path, uncompressed)
        return entries, plans


def detect_and_check_decoder(handle, label):
    """Fail before loading when the open file is not an archive we can read, or zstd cannot be decoded here."""
    if detect_handle(handle, label) == "zstd":
        require_zstd()


def checksum_from_sums_file(path):
    """The sha256 a SHA256SUMS next to `path` lists for it, or raise: loading unverified needs verify: false."""
    directory = os.path.dirname(os.path.abspath(path))
    for candidate in (directory, os.path.dirname(directory)):
        sums_path = os.path.join(candidate, bundle.SUMS_NAME)
        if os.path.isfile(sums_path):
            with open(sums_path, "r", encoding="utf-8", errors="replace") as handle:
                listed = bundle.parse_sums(handle.read())
            relative = os.path.relpath(os.path.abspath(path), candidate)
            if relative in listed:
                return listed[relative]
    raise TransferError(
        "no checksum to verify %s against: give sha256, put it next to a SHA256SUMS that lists it, or set verify: false" % path
    )


def describe_tarball(handle, label):
    """Read a lone tarball's open file from its start, with bounds: (images it holds, uncompressed size).

    Leaves the file positioned at its start again, for the load.
    """
    handle.seek(0)
    reader = open_decompressed(handle, label=label)
    try:
        index = read_archive(reader)
        images, _layout = describe_archive(index.files, index.oversized)
    except (ArchiveError, CompressionError) as exc:
        raise TransferError("%s is not a usable image archive: %s" % (label, exc)) from None
    finally:
        reader.close()
        handle.seek(0)
    return images, index.size


def tag_map(loader, after):
    """{tag (or reference): image ID, or None when absent} for the diff, before or after this run."""
    state = {}
    for result in loader.results:
        for name in result["tags"] or result["references"]:
            before = loader.seen.get(name)
            state[name] = result["image_id"] if after and result["action"] != "failed" else before
    return state


def load_files(results):
    """The distinct files the loads of `results` read (tarballs, or blobs the engine lacks), in order."""
    return list(dict.fromkeys(name for result in results if result["action"] == "loaded" for name in result["files"]))


def selected_entries(module, params):
    """(bundle directory or None, its manifest or None, the entries to handle or None for a lone tarball); fails on bad input."""
    if params["entries"] is not None:
        if not module.check_mode:
            module.fail_json(msg="entries only plans (check mode: add check_mode: true to the task); give bundle to load images")
        try:
            for index, entry in enumerate(params["entries"]):
                (bundle.validate_v2_entry if "manifest" in entry else bundle.validate_entry)(entry, "entries[%d]" % index)
        except BundleError as exc:
            module.fail_json(msg="%s (give the images list that fleet.images.bundle_info returns)" % exc)
        return None, None, params["entries"]
    if not params["bundle"]:
        return None, None, None
    bundle_dir = os.path.abspath(params["bundle"])
    try:
        # A staging directory holds only the blobs its host lacks: each load checks the ones it needs.
        manifest = bundle.load_manifest(bundle_dir, check_blobs=False)
        return bundle_dir, manifest, bundle.select_entries(manifest, params["images"], bundle_dir)
    except BundleError as exc:
        module.fail_json(msg=str(exc), bundle=bundle_dir)


def load(module, loader, params, bundle_dir, manifest, entries):
    """Run the loader over the entries (or the lone tarball); a failure of the engine itself fails the module."""
    try:
        if entries is None:
            loader.load_tarball(os.path.abspath(params["path"]), params["sha256"])
        elif params["entries"] is not None:
            for entry in entries:
                loader.plan_only(entry)
        elif bundle.is_v2(manifest):
            loader.load_v2(bundle_dir, manifest, entries)
        else:
            for entry in entries:
                loader.load_entry(bundle_dir, entry)
    except (TransferError, BundleError, CompressionError) as exc:
        loader.failures.append(str(exc))
    except (DockerException, RequestException) as exc:
        module.fail_json(msg=docker_error_message(exc, "loading images from %s" % (bundle_dir or params["path"] or "the bundle")),
                         images=loader.results, exception=traceback.format_exc())


def load_result(module, loader):
    count = {action: len([result for result in loader.results if result["action"] == action]) for action in ("loaded", "tagged", "unchanged")}
    result = dict(
        changed=any_changed(loader.results),
        images=loader.results,
        load_files=load_files(loader.results),
        bytes=sum(result["bytes"] for result in loader.results),
        msg=("would load %d, tag %d, leave %d image(s) unchanged" if module.check_mode else "loaded %d, tagged %d, left %d image(s) unchanged") % (
            count["loaded"], count["tagged"], count["unchanged"]),
    )
    if loader.failed:
        result["failed_images"] = loader.failed
    if module._diff:
        result["diff"] = {"before": tag_map(loader, after=False), "after": tag_map(loader, after=True)}
    return result


def run_module(module):
    """image_load: check the options, load (or plan), and exit or fail the module."""
    params = module.params
    try:
        keep_free = human_to_bytes(params["keep_free"])
    except ValueError as exc:
        module.fail_json(msg="keep_free %r is not a size: give bytes or a number with a unit such as 512M or 10G (%s)" % (params["keep_free"], exc))
    bundle_dir, manifest, entries = selected_entries(module, params)
    loader = Loader(connect(module), docker_host_from(params), verify=params["verify"], force=params["force"], keep_free=keep_free,
                    check_mode=module.check_mode, platform_mismatch=params["platform_mismatch"])
    load(module, loader, params, bundle_dir, manifest, entries)
    for warning in loader.warnings:
        module.warn(warning)
    result = load_result(module, loader)
    if loader.failures:
        result["msg"] = "; ".join(loader.failures)
        module.fail_json(**result)
    module.exit_json(**result)
