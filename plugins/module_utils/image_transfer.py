# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving images between a Docker Engine and a bundle: the logic behind image_save and image_load.

Saving streams the engine's ``GET /images/{name}/get`` through sha256, the compressor and a tar
index into a temp file that is renamed when complete. Loading checks the file (size, then sha256
in one read) before a single byte reaches the engine, then streams it decompressed into
``POST /images/load`` and restores the recorded tags.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import http.client
import os
import re
import socket
import struct
import tempfile

from ansible.module_utils.common.text.formatters import bytes_to_human

try:
    from docker.errors import APIError, NotFound
except ImportError:  # the modules report the missing SDK through docker_client.connect
    class APIError(Exception):
        """Stands in for docker.errors.APIError when the SDK is missing."""

    class NotFound(APIError):
        """Stands in for docker.errors.NotFound when the SDK is missing."""

try:
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError as Urllib3Error
except ImportError:  # the modules report the missing SDK through docker_client.connect
    RequestException = Urllib3Error = OSError


from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.atomic_file import fsync_directory
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.compression import (
    CompressionError,
    compressing_writer,
    detect_handle,
    iter_chunks,
    open_decompressed,
    require_zstd,
)
from ansible_collections.fleet.images.plugins.module_utils.hashing import HashingWriter, hash_handle, normalize_sha256, open_regular
from ansible_collections.fleet.images.plugins.module_utils.image_archive import (
    ArchiveError,
    IterReader,
    describe_archive,
    read_archive,
    created_seconds,
    fingerprint_from_inspect,
    identity_digests,
    is_same_image,
    plan_load,
)

STREAM_CHUNK = 4 * 1024 * 1024
# Pieces sent to the engine's load API: small enough that reading, decompressing and the engine's
# unpacking overlap (4 MiB pieces measured about 20 % slower on two busy cores).
LOAD_CHUNK = 256 * 1024
PULL_POLICIES = ("never", "missing", "always")
# The classic store unpacks the whole archive before importing it: about twice its size is needed.
SPACE_FACTOR = 2
# When a tarball's uncompressed size was not recorded, assume a compressed one expands this much.
UNKNOWN_EXPANSION = 4
PARTIAL_SUFFIX = ".partial"
MAX_COMPRESSION_THREADS = 4


class TransferError(Exception):
    """An image could not be saved or loaded; the message names the image or file and the reason."""


def engine_gone(engine_name, doing, exc):
    """The sentence for an engine that stopped answering in the middle of `doing`."""
    detail = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
    return ("the Docker Engine %s stopped answering while %s (%s): it stopped, restarted or crashed. "
            "Check that it runs (systemctl status docker, journalctl -u docker), then run the task again"
            % (engine_name, doing, detail))


def no_space_hint(text):
    return ("; the disk is full: free space there (docker image prune, or remove files) and run the task again"
            if "no space left on device" in text.lower() else "")


@contextlib.contextmanager
def no_read_timeout(client):
    """Long transfers: the engine may work for minutes before its first byte (save) or its answer (load)."""
    previous = client.api.timeout
    client.api.timeout = None
    try:
        yield
    finally:
        client.api.timeout = previous


def inspect_image(client, name):
    """The engine's inspect dict for `name`, or None when it has no such image."""
    try:
        return client.api.inspect_image(name)
    except NotFound:
        return None
    except APIError as exc:
        if getattr(exc, "status_code", None) in (400, 404):
            return None
        raise TransferError("the Docker Engine failed to inspect image %s: %s" % (name, getattr(exc, "explanation", None) or exc)) from exc


def platform_of(attrs):
    parts = [attrs.get("Os") or "", attrs.get("Architecture") or ""]
    if attrs.get("Variant"):
        parts.append(attrs["Variant"])
    return "/".join(parts)


def platform_matches(attrs, platform):
    """Whether an image's os/architecture[/variant] is the wanted `platform` (None matches anything)."""
    if not platform:
        return True
    wanted = platform.lower().split("/")
    have = platform_of(attrs).lower().split("/")
    return have[:len(wanted)] == wanted


# ---------------------------------------------------------------------------------------------
# Saving


def pull_image(client, reference, platform, engine_name="the engine", auth=None):
    """Pull through the engine; raise TransferError with the engine's own words when it fails."""
    kwargs = {"stream": True, "decode": True}
    if platform:
        kwargs["platform"] = platform
    if auth:
        kwargs["auth_config"] = auth
    try:
        with no_read_timeout(client):
            for event in client.api.pull(reference, **kwargs):
                if isinstance(event, dict) and event.get("error"):
                    raise TransferError("pulling %s failed: %s%s" % (reference, event["error"], no_space_hint(event["error"])))
    except APIError as exc:
        raise TransferError("pulling %s failed: %s" % (reference, getattr(exc, "explanation", None) or exc)) from exc
    # the engine went away mid-stream: requests' ConnectionError or ChunkedEncodingError ("Response ended
    # prematurely"), urllib3's ProtocolError, http.client's errors, a bare BrokenPipeError
    except (RequestException, Urllib3Error, http.client.HTTPException, OSError) as exc:
        raise TransferError(engine_gone(engine_name, "pulling %s" % reference, exc)) from None


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
    """Write an engine tar stream, compressed, to `final_path` via a temp file in the same directory.

    Returns what was measured on the way: sha256 and size of the file as written (what
    SHA256SUMS checks), uncompressed_size, and the archive's description.
    """
    directory = os.path.dirname(final_path)
    fd, temp_path = tempfile.mkstemp(prefix=".%s." % os.path.basename(final_path), suffix=PARTIAL_SUFFIX, dir=directory)
    writer = None
    try:
        with os.fdopen(fd, "wb") as raw:
            hashed = HashingWriter(raw)
            writer = compressing_writer(hashed, compression, level, threads=threads)
            index = read_archive(IterReader(chunks), tap=writer.write)
            writer.close()
            writer = None
            raw.flush()
            os.fsync(raw.fileno())
        images, layout = describe_archive(index.files, index.oversized)
        if len(images) != 1:
            raise TransferError("the engine's archive holds %d images, expected exactly one" % len(images))
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, final_path)
        fsync_directory(directory)
    except BaseException:
        if writer is not None:
            writer.abort()
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    return dict(images[0], sha256=hashed.hexdigest(), size=hashed.size, uncompressed_size=index.size, archive_format=layout)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def save_one(client, name, attrs, final_path, compression, level, threads, engine_name="the engine"):
    """Save one image into `final_path` and check the archive holds the image that was inspected."""
    try:
        with no_read_timeout(client):
            # The engine sends 32 KiB HTTP chunks; handling each as it comes keeps the engine and this
            # process working side by side (joining them into big blocks measured slower).
            chunks = client.api.get_image(name, chunk_size=STREAM_CHUNK)
            measured = stream_to_bundle_file(chunks, final_path, compression, level, threads)
    except APIError as exc:
        raise TransferError("the Docker Engine refused to save %s: %s" % (name, getattr(exc, "explanation", None) or exc)) from exc
    except ArchiveError as exc:
        raise TransferError("the engine's archive of %s is not usable: %s" % (name, exc)) from exc
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise TransferError(
                "no space left in %s while writing the tarball of %s: nothing was committed, the bundle still lists its "
                "previous files. Free space there (or choose another dest) and run the task again"
                % (os.path.dirname(final_path), name)) from None
        if isinstance(exc, (RequestException, Urllib3Error)):
            raise TransferError(engine_gone(engine_name, "saving %s" % name, exc)) from None
        raise
    except (Urllib3Error, http.client.HTTPException) as exc:
        raise TransferError(engine_gone(engine_name, "saving %s" % name, exc)) from None
    if attrs["Id"] not in (measured["config_digest"], measured["manifest_digest"]) and fingerprint_from_inspect(attrs) != measured["config_fingerprint"]:
        with contextlib.suppress(OSError):
            os.unlink(final_path)
        raise TransferError(
            "image %s changed while it was being saved: the engine listed ID %s, the archive holds config %s. Run the task again"
            % (name, attrs["Id"], measured["config_digest"])
        )
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


def remove_stale_partials(images_dir):
    """Temp files left by an interrupted save (only ever ours: the bundle lock is held)."""
    for name in os.listdir(images_dir) if os.path.isdir(images_dir) else []:
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
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


def save_images(client, dest, references, compression="zstd", level=None, pull="missing", platform=None, force=False,
                prune=False, check_mode=False, threads=None, engine_name="the engine"):
    """Bring the images `references` into the bundle at `dest`; return the module result (without failing)."""
    if threads is None:
        threads = default_compression_threads()
    for reference in references:
        image_ref.check(reference)
    if compression == "zstd":
        require_zstd()
    manifest_file = bundle.manifest_path(dest)
    with contextlib.ExitStack() as stack:
        if not check_mode:
            os.makedirs(os.path.join(dest, bundle.IMAGES_DIR), mode=0o755, exist_ok=True)
            stack.enter_context(bundle.bundle_lock(dest))
            remove_stale_partials(os.path.join(dest, bundle.IMAGES_DIR))
        manifest_read = True
        try:
            manifest = bundle.load_manifest(dest, missing_ok=True)
        except BundleError as exc:
            manifest_read = False
            if not force:
                raise BundleError("%s. Repair or remove it, or set force: true to start a new manifest in %s" % (exc, dest)) from exc
            manifest = bundle.new_manifest()
        before_text = bundle.render_manifest(manifest) if os.path.exists(manifest_file) else ""
        resolved = []
        for reference in references:
            attrs, note = resolve_image(client, reference, pull, platform, check_mode, engine_name)
            resolved.append((reference, attrs, note))
        groups = group_references(resolved)
        requested = {image_ref.normalize(reference) for reference in references}

        # Which existing entry each image takes over; a reference asked for now leaves any other entry.
        claims = []
        for _key, attrs, group, _note in groups:
            claims.append(claim_entry(manifest, group, attrs, claimed=[claim for claim in claims if claim is not None]))
        obsolete_files = []
        for entry in list(manifest["images"]):
            if any(entry is claim for claim in claims):
                continue
            entry["references"] = [ref for ref in entry["references"] if image_ref.normalize(ref) not in requested]
            entry["tags"] = [tag for tag in entry.get("tags") or [] if image_ref.normalize(tag) not in requested]
            if not entry["references"]:
                manifest["images"].remove(entry)
                obsolete_files.append(entry["file"])

        results = []
        kept = []
        for (_key, attrs, group, note), old in zip(groups, claims):
            reason = save_reason(old, attrs, compression, dest, force) if attrs else "it must be pulled first"
            merged = list(group) + [ref for ref in (old or {}).get("references", [])
                                    if image_ref.normalize(ref) not in requested and ref not in group]
            if reason is None:
                entry = build_entry(old, merged, attrs, old["file"], compression, None)
            else:
                file_name = free_file_name(manifest, group[0], compression, attrs)
                if check_mode:
                    entry = {"references": merged, "tags": tags_of(merged), "image_id": attrs["Id"] if attrs else "(pulled first)",
                             "file": file_name, "compression": compression, "size": "(known once written)",
                             "sha256": "(computed while writing)"}
                else:
                    name = next((ref for ref in group if image_ref.is_tag(ref)), group[0])
                    new_path = bundle.resolve_file(dest, file_name)
                    measured = save_one(client, name, attrs, new_path, compression, level, threads, engine_name)
                    entry = build_entry(old, merged, attrs, file_name, compression, measured)
            if old is not None:
                manifest["images"][manifest["images"].index(old)] = entry
                if old["file"] != entry["file"]:
                    obsolete_files.append(old["file"])
            else:
                manifest["images"].append(entry)
            if not check_mode and reason is not None:
                commit_manifest(dest, manifest, new_path)  # commit each image as soon as it is on disk
            kept.append(entry)
            results.append({
                "reference": group[0],
                "references": list(group),
                "id": attrs["Id"] if attrs else None,
                "file": entry["file"],
                "path": os.path.join(dest, entry["file"]),
                "size": entry["size"] if reason is None or not check_mode else None,
                "sha256": entry["sha256"] if reason is None or not check_mode else None,
                "compression": compression,
                "written": reason is not None,
                "pulled": note,
                "reason": reason or "the bundle already holds this image ID in %s with the recorded size" % entry["file"],
            })

        pruned = []
        if prune:
            for entry in list(manifest["images"]):
                if not any(entry is other for other in kept):
                    manifest["images"].remove(entry)
                    obsolete_files.append(entry["file"])
                    pruned.append(entry["file"])
        if not check_mode:
            commit_manifest(dest, manifest)
        in_use = {entry["file"] for entry in manifest["images"]}
        removed = []
        for name in obsolete_files:
            if name in in_use or name in removed:
                continue
            path = bundle.resolve_file(dest, name)
            if os.path.exists(path):
                removed.append(name)
                if not check_mode:
                    os.unlink(path)
        if not check_mode and manifest_read:
            removed += [name for name in remove_uncommitted_tarballs(dest, manifest) if name not in removed]
        after_text = bundle.render_manifest(manifest)
        changed = any(result["written"] for result in results) or bool(removed) or before_text != after_text
    written_count = sum(result["written"] for result in results)
    if written_count:
        summary = "%s %d of %d image(s) into %s" % ("would write" if check_mode else "wrote", written_count, len(results), dest)
    else:
        summary = "the bundle %s already holds all %d image(s)%s" % (
            dest, len(results), "; its manifest %s updated" % ("would be" if check_mode else "was") if changed else "")
    return {
        "changed": changed,
        "images": results,
        "removed": removed,
        "pruned": pruned,
        "bundle": dest,
        "manifest": manifest_file,
        "msg": summary,
        "diff": manifest_diff(before_text, after_text, manifest_file),
    }


# ---------------------------------------------------------------------------------------------
# Loading


def socket_path(docker_host):
    if docker_host and docker_host.startswith("unix://"):
        return docker_host[len("unix://"):]
    return None


def engine_data_root(docker_host, info):
    """(path to measure, None) for the engine's DockerRootDir as seen from here, or (None, why not).

    The engine's process is found through the unix socket's peer credentials, and its root
    directory through /proc/<pid>/root: that also measures an engine that runs in another mount
    namespace (a container with its own /var/lib/docker) correctly. A TCP or SSH engine's
    disk cannot be seen from here.
    """
    root_dir = info.get("DockerRootDir")
    path = socket_path(docker_host)
    if not root_dir:
        return None, "the engine did not report its DockerRootDir"
    if path is None:
        return None, "the engine %s is remote: its data root %s is not visible from this host" % (docker_host, root_dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.settimeout(5)
            peer.connect(path)
            pid = struct.unpack("3i", peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[0]
    except (OSError, AttributeError) as exc:
        return None, "the engine's process could not be identified through %s (%s)" % (path, exc)
    candidate = "/proc/%d/root%s" % (pid, root_dir) if pid > 0 else None
    if candidate and os.path.isdir(candidate):
        return candidate, None
    if pid > 0 and info.get("Name") == socket.gethostname() and os.path.isdir(root_dir):
        return root_dir, None
    return None, "the engine's data root %s is not visible from this host (no access to process %d's file system)" % (root_dir, pid)


def free_bytes(path):
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def space_shortfall(needed, free, keep_free):
    """None when `free` covers `needed` plus `keep_free`, else the sentence explaining the refusal."""
    if free - needed >= keep_free:
        return None
    return "needs about %d bytes (%s)%s, but %d bytes (%s) are free" % (
        needed, bytes_to_human(needed), " and keep_free asks to leave %d bytes (%s) free" % (keep_free, bytes_to_human(keep_free)) if keep_free else "",
        free, bytes_to_human(free))


def expected_uncompressed(entry, path):
    if entry.get("uncompressed_size") is not None:
        return entry["uncompressed_size"]
    size = os.path.getsize(path) if path and os.path.exists(path) else entry.get("size", 0)
    return size if entry.get("compression") == "none" else size * UNKNOWN_EXPANSION


def stream_into_engine(client, handle, label, engine_name="the engine"):
    """Decompress the open file `handle` (by content, from its start) into the engine's load API.

    The bytes sent are read from this one descriptor, the one that was hashed. Returns the engine's messages.
    """
    messages = []
    handle.seek(0)
    try:
        with no_read_timeout(client):
            for event in client.api.load_image(iter_chunks(open_decompressed(handle, label=label), LOAD_CHUNK)) or []:
                if not isinstance(event, dict):
                    continue
                if event.get("error"):
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise TransferError("the Docker Engine %s refused %s: %s%s" % (engine_name, label, detail, no_space_hint(detail)))
                if event.get("stream"):
                    messages.append(event["stream"].strip())
    except APIError as exc:
        detail = str(getattr(exc, "explanation", None) or exc)
        raise TransferError("the Docker Engine %s refused %s: %s%s" % (engine_name, label, detail, no_space_hint(detail))) from exc
    except CompressionError as exc:
        raise TransferError("%s could not be decompressed while loading: %s" % (label, exc)) from exc
    # the engine went away mid-stream: requests' ConnectionError or ChunkedEncodingError ("Response ended
    # prematurely"), urllib3's ProtocolError, http.client's errors, a bare BrokenPipeError
    except (RequestException, Urllib3Error, http.client.HTTPException, OSError) as exc:
        raise TransferError(engine_gone(engine_name, "loading %s" % label, exc)) from None
    return messages


def restore_tags(client, image_id, tags):
    """Point every tag at `image_id` (moving it from another image if needed); return the tags set."""
    done = []
    for tag in tags:
        current = inspect_image(client, tag)
        if current is not None and current.get("Id") == image_id:
            continue
        repository, name = image_ref.repository_and_tag(tag)
        try:
            client.api.tag(image_id, repository, name, force=True)
        except APIError as exc:
            raise TransferError("the Docker Engine refused to tag %s as %s: %s" % (image_id, tag, getattr(exc, "explanation", None) or exc)) from exc
        done.append(tag)
    return done


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


def entry_label(entry):
    return ", ".join(entry.get("references") or entry.get("tags") or [entry.get("config_digest") or entry.get("file")])


class Loader:
    """Loads bundle entries (or a lone tarball) into one engine, recording what happened to each."""

    def __init__(self, client, docker_host, verify=True, force=False, keep_free=0, check_mode=False):
        self.client = client
        self.verify = verify
        self.force = force
        self.keep_free = keep_free
        self.check_mode = check_mode
        self.results = []
        self.failures = []
        self.warnings = []
        self._info = None
        self._docker_host = docker_host
        self._data_root = None
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

    def data_root(self):
        if self._info is None:
            self._info = self.client.info()
            self._data_root, why_not = engine_data_root(self._docker_host, self._info)
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

    def record(self, entry, action, image_id, tags_set, verified, error=None):
        result = {
            "references": list(entry.get("references") or []),
            "tags": list(entry.get("tags") or []),
            "file": entry.get("file"),
            "id": image_id,
            "config_digest": entry.get("config_digest"),
            "action": action,
            "tags_set": tags_set,
            "verified": verified,
        }
        if error:
            result["error"] = error
            self.failures.append(error)
        self.results.append(result)
        return result

    def load_entry(self, bundle_dir, entry):
        """Skip, tag or (after checking the file) load one bundle entry; a failure is recorded, not raised."""
        try:
            return self._load_entry(bundle_dir, entry)
        except TransferError as exc:
            return self.record(entry, "failed", None, [], False, str(exc))

    def _load_entry(self, bundle_dir, entry):
        label = entry["file"]
        action, image_id, tags = self.plan(entry)
        if action == "present":
            return self.record(entry, "skipped", image_id, [], False)
        if action == "tag":
            set_tags = tags if self.check_mode else restore_tags(self.client, image_id, tags)
            return self.record(entry, "tagged", image_id, set_tags, False)
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
            if self.check_mode:
                return self.record(entry, "loaded", entry.get("config_digest") or entry.get("image_id"), tags, self.verify)
            return self._send(entry, handle, label, tags)

    def _send(self, entry, handle, label, tags):
        """Stream the checked open file into the engine, find the image and restore its tags."""
        try:
            messages = stream_into_engine(self.client, handle, label, self._docker_host)
            attrs = find_loaded(self.client, entry, messages)
            if attrs is None:
                raise TransferError("the engine accepted %s but lists no image with config %s afterwards" % (label, entry.get("config_digest")))
            set_tags = restore_tags(self.client, attrs["Id"], tags)
        except TransferError as exc:
            return self.record(entry, "failed", None, [], self.verify, str(exc))
        return self.record(entry, "loaded", attrs["Id"], set_tags, self.verify)

    def load_tarball(self, path, sha256=None):
        """Load a lone tarball: its sha256 is checked, then it is parsed (bounded), then loaded: one descriptor throughout."""
        with contextlib.ExitStack() as stack:
            try:
                handle, verified = self._open_tarball(path, sha256)
                stack.callback(handle.close)
                entries, plans = self._check_tarball(path, handle)
            except (TransferError, CompressionError) as exc:
                raise TransferError("%s. No image was loaded from it" % exc) from exc
            self._load_checked_tarball(path, handle, entries, plans, verified)

    def _load_checked_tarball(self, path, handle, entries, plans, verified):
        if all(plan[0] != "load" for plan in plans) or self.check_mode:
            for entry, (action, image_id, tags) in zip(entries, plans):
                if action == "present":
                    self.record(entry, "skipped", image_id, [], verified)
                elif action == "tag":
                    self.record(entry, "tagged", image_id, tags if self.check_mode else restore_tags(self.client, image_id, tags), verified)
                else:
                    self.record(entry, "loaded", entry["config_digest"], tags, verified)
            return
        messages = stream_into_engine(self.client, handle, path, self._docker_host)
        for entry, (action, _image_id, tags) in zip(entries, plans):
            attrs = find_loaded(self.client, entry, messages)
            if attrs is None:
                raise TransferError("the engine accepted %s but lists no image with config %s afterwards" % (path, entry["config_digest"]))
            self.record(entry, "loaded" if action == "load" else "skipped", attrs["Id"], restore_tags(self.client, attrs["Id"], tags), verified)

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


def plan_entries(client, docker_host, entries):
    """What image_load would do with each bundle entry, asking the engine only: no tarball is read.

    One dict per entry: its references, tags and file, ``action`` (``present``, ``tag`` or ``load``),
    the ID it has in the engine (None for ``load``) and the recorded tags it lacks.
    """
    loader = Loader(client, docker_host, check_mode=True)
    plans = []
    for entry in entries:
        action, image_id, tags = loader.plan(entry)
        plans.append({
            "references": list(entry["references"]),
            "tags": list(entry.get("tags") or []),
            "file": entry["file"],
            "action": action,
            "id": image_id,
            "tags_missing": tags,
        })
    return plans


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
