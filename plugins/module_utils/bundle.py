# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundle: a directory described by bundle.json and SHA256SUMS.

Version 1 holds one image tarball per image under images/; version 2 is an OCI image layout whose
blobs/sha256/ holds every manifest, config and layer once, named by its sha256.
This is the one piece of code that reads and checks bundles; image_save, image_load, bundle_info
and the roles all go through it (readers use is_v2, image_blobs and blob_path, never blob paths of
their own). The format is described in docs/bundle-format.md.

A manifest is handled as a plain dict (it goes straight into module results):
``{"format": "fleet.images/bundle", "version": 1, "images": [entry, ...]}``; fields this version
does not know are kept as they are, so an older writer does not drop a newer writer's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write
from ansible_collections.fleet.images.plugins.module_utils.compression import COMPRESSIONS, SUFFIXES
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.hashing import hash_file, hash_handle, normalize_sha256, open_regular

FORMAT = "fleet.images/bundle"
VERSION = 1  # what image_save writes unless asked for another
MAX_VERSION = 2  # the newest version this code reads
MANIFEST_NAME = "bundle.json"
SUMS_NAME = "SHA256SUMS"
IMAGES_DIR = "images"
WHEELS_DIR = "wheels"
BLOBS_DIR = "blobs/sha256"
INDEX_NAME = "index.json"
OCI_LAYOUT_NAME = "oci-layout"
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# layer media type: compression of the stored blob
LAYER_MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
}

# Names longer than this are cut (the reference hash keeps them unique); filesystems allow 255 bytes.
MAX_READABLE_NAME = 100
SAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# What tarball_name() makes, without the images/ prefix: only such files are ever removed as leftovers.
TARBALL_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{12}\.tar(?:\.gz|\.zst)?$")
MANIFEST_KEY_ORDER = ("format", "version", "images", "wheels", "requires")
WHEEL_KEY_ORDER = ("file", "size", "sha256")
ENTRY_KEY_ORDER = (
    "references", "tags", "image_id", "config_digest", "manifest_digest", "config_fingerprint", "repo_digests", "os", "architecture", "variant",
    "created", "file", "size", "sha256", "compression", "uncompressed_size", "archive_format", "manifest", "config", "layers", "saved_at",
)
DESCRIPTOR_KEY_ORDER = ("media_type", "digest", "size", "diff_id", "diff_size")


class BundleError(Exception):
    """A bundle problem worded for the operator: it names the file and what was expected."""


# ---------------------------------------------------------------------------------------------
# References and file names


def tarball_name(reference, compression, variant=None):
    """The bundle-relative file name of the tarball for `reference`: ``images/<readable>-<hash><suffix>``.

    The readable part keeps only letters, digits, ``.``, ``_`` and ``-`` (so no ``/``, ``:``,
    ``@`` or ``..`` can reach the file system); the 12-hex hash of the normalized reference keeps
    names unique when two references read alike (``a/b:c`` and ``a_b:c``) and equal for ``nginx``
    and ``nginx:latest``. `variant` (an image ID, say) gives another name for the same reference.
    """
    normalized = image_ref.normalize(reference)
    repository, tag, digest = image_ref.split(normalized)
    readable = repository + ("_" + tag if tag else "") + ("_" + digest.replace("sha256:", "sha256-")[:19] if digest else "")
    readable = SAFE_NAME_CHARS.sub("_", readable).strip("._-")[:MAX_READABLE_NAME].rstrip("._-") or "image"
    suffix = hashlib.sha256((normalized if variant is None else "%s\n%s" % (normalized, variant)).encode("utf-8")).hexdigest()[:12]
    return "%s/%s-%s%s" % (IMAGES_DIR, readable, suffix, SUFFIXES[compression])


def resolve_file(bundle_dir, name, owner=None):
    """Return the absolute path of the bundle-relative file `name`, refusing any that leaves the bundle.

    Refused: absolute paths, ``..``, empty or ``.`` components, backslashes, NUL, and symbolic
    links that lead outside the bundle directory.
    """
    where = " (bundle.json entry for %s)" % owner if owner else ""
    if not isinstance(name, str) or not name:
        raise BundleError("bundle %s: a file name must be a non-empty string, got %r%s" % (bundle_dir, name, where))
    parts = name.split("/")
    if (
        "\x00" in name or "\\" in name or name.startswith("/") or os.path.isabs(name)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise BundleError(
            "bundle %s: file %r is outside the bundle or not a plain relative path%s; refusing it "
            "(file names must stay inside the bundle directory: no absolute path, no '..')" % (bundle_dir, name, where)
        )
    root = os.path.realpath(bundle_dir)
    path = os.path.join(root, *parts)
    real = os.path.realpath(path)
    if not real.startswith(root + os.sep):
        raise BundleError(
            "bundle %s: file %r leads outside the bundle (to %s through a symbolic link)%s; refusing it" % (bundle_dir, name, real, where)
        )
    return path


# ---------------------------------------------------------------------------------------------
# Manifest


def manifest_path(bundle_dir):
    return os.path.join(bundle_dir, MANIFEST_NAME)


def new_manifest(version=VERSION):
    return {"format": FORMAT, "version": version, "images": []}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_string_list(entry, key, where, required=False):
    value = entry.get(key)
    if value is None and not required:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value) or (required and not value):
        raise BundleError("%s: %s must be a %slist of strings, got %r" % (where, key, "non-empty " if required else "", value))


def _check_identity(entry, where):
    """The fields every entry has, whatever the version: references, tags, repo_digests and the identity digests."""
    if not isinstance(entry, dict):
        raise BundleError("%s: expected an object, got %r" % (where, entry))
    _check_string_list(entry, "references", where, required=True)
    _check_string_list(entry, "tags", where)
    _check_string_list(entry, "repo_digests", where)
    for key in ("image_id", "config_digest", "manifest_digest", "config_fingerprint"):
        value = entry.get(key)
        if value is not None and not (isinstance(value, str) and IMAGE_DIGEST.match(value)):
            raise BundleError("%s: %s must look like sha256:<64 hex digits>, got %r" % (where, key, value))


def validate_entry(entry, where):
    """Raise BundleError naming `where` (manifest path and entry) unless the version 1 `entry` is usable."""
    _check_identity(entry, where)
    for key in ("file", "compression"):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            raise BundleError("%s: %s must be a non-empty string, got %r" % (where, key, entry.get(key)))
    if entry["compression"] not in COMPRESSIONS:
        raise BundleError("%s: compression %r is not one of %s" % (where, entry["compression"], ", ".join(COMPRESSIONS)))
    for key, required in (("size", True), ("uncompressed_size", False)):
        value = entry.get(key)
        if (value is not None or required) and not (_is_int(value) and value >= 0):
            raise BundleError("%s: %s must be a whole number of bytes, got %r" % (where, key, value))
    if normalize_sha256(entry.get("sha256")) != entry.get("sha256"):
        raise BundleError("%s: sha256 must be 64 lowercase hex digits, got %r" % (where, entry.get("sha256")))


def _validate_v1_images(images, source, bundle_dir):
    files = {}
    for index, entry in enumerate(images):
        where = _entry_label(source, index, entry)
        validate_entry(entry, where)
        if entry["file"] in files:
            raise BundleError("%s: file %s is listed twice (also at images[%d])" % (where, entry["file"], files[entry["file"]]))
        files[entry["file"]] = index
        if bundle_dir is not None:
            resolve_file(bundle_dir, entry["file"], owner=", ".join(entry["references"]))


def _entry_label(source, index, entry):
    label = ", ".join(entry.get("references") or []) if isinstance(entry, dict) and isinstance(entry.get("references"), list) else ""
    return "%s, images[%d]%s" % (source, index, " (%s)" % label if label else "")


def validate_manifest(manifest, source, bundle_dir=None, check_blobs=True):
    """Check a parsed manifest; with `bundle_dir`, also that every file stays inside the bundle.

    For version 2 with `bundle_dir` and `check_blobs`, every blob an image references must be a regular
    file in blobs/sha256/ or be listed in ``requires`` (check_carried).
    """
    if not isinstance(manifest, dict):
        raise BundleError("%s is not a fleet.images bundle manifest: expected a JSON object, got %s" % (source, type(manifest).__name__))
    if manifest.get("format") != FORMAT:
        raise BundleError("%s is not a fleet.images bundle manifest: format is %r, expected %r" % (source, manifest.get("format"), FORMAT))
    version = manifest.get("version")
    if not _is_int(version) or version < 1:
        raise BundleError("%s: version must be a whole number from 1, got %r" % (source, version))
    if version > MAX_VERSION:
        raise BundleError(
            "%s is bundle format version %d, but this fleet.images reads version %d and older: it was written by a newer "
            "fleet.images. Upgrade the fleet.images collection where this task runs." % (source, version, MAX_VERSION)
        )
    images = manifest.get("images")
    if not isinstance(images, list):
        raise BundleError("%s: images must be a list, got %r" % (source, images))
    if version == 1:
        _validate_v1_images(images, source, bundle_dir)
    else:
        _validate_v2_images(manifest, source)
        if bundle_dir is not None and check_blobs:
            check_carried(bundle_dir, manifest)
    validate_wheels(manifest, source, bundle_dir)
    return manifest


def validate_wheels(manifest, source, bundle_dir=None):
    """Check the optional ``wheels`` list: each ``{"file": "wheels/<name>.whl", "size", "sha256"}``, once."""
    wheels = manifest.get("wheels")
    if wheels is None:
        return
    if not isinstance(wheels, list):
        raise BundleError("%s: wheels must be a list, got %r" % (source, wheels))
    files = {}
    for index, entry in enumerate(wheels):
        where = "%s, wheels[%d]" % (source, index)
        if not isinstance(entry, dict):
            raise BundleError("%s: expected an object, got %r" % (where, entry))
        name = entry.get("file")
        if not (isinstance(name, str) and name.startswith(WHEELS_DIR + "/") and name.endswith(".whl") and name.count("/") == 1):
            raise BundleError("%s: file must be %s/<name>.whl, got %r" % (where, WHEELS_DIR, name))
        if not (_is_int(entry.get("size")) and entry["size"] >= 0):
            raise BundleError("%s (%s): size must be a whole number of bytes, got %r" % (where, name, entry.get("size")))
        if normalize_sha256(entry.get("sha256")) != entry.get("sha256"):
            raise BundleError("%s (%s): sha256 must be 64 lowercase hex digits, got %r" % (where, name, entry.get("sha256")))
        if name in files:
            raise BundleError("%s: file %s is listed twice (also at wheels[%d])" % (where, name, files[name]))
        files[name] = index
        if bundle_dir is not None:
            resolve_file(bundle_dir, name, owner=name)


def parse_manifest(text, source, bundle_dir=None, check_blobs=True):
    """Parse and validate manifest text; `source` names it in messages."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise BundleError(
            "%s is not valid JSON (%s): the manifest is damaged; copy bundle.json again from the original bundle" % (source, exc)
        ) from exc
    except RecursionError:
        raise BundleError(
            "%s nests its JSON too deeply to be read: it is not a bundle manifest written by image_save; "
            "copy bundle.json again from the original bundle" % source
        ) from None
    return validate_manifest(manifest, source, bundle_dir, check_blobs)


def load_manifest(bundle_dir, missing_ok=False, check_blobs=True):
    """Read and validate ``<bundle_dir>/bundle.json``; with `missing_ok`, a missing one is an empty manifest.

    `check_blobs` false leaves missing version 2 blobs to the caller (bundle_info reports them all at once).
    """
    path = manifest_path(bundle_dir)
    if not os.path.isdir(bundle_dir):
        if missing_ok and not os.path.exists(bundle_dir):
            return new_manifest()
        raise BundleError("bundle directory %s does not exist or is not a directory" % bundle_dir)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if missing_ok:
            return new_manifest()
        raise BundleError("%s does not exist: %s is not a bundle written by fleet.images.image_save" % (path, bundle_dir)) from None
    except OSError as exc:
        raise BundleError("cannot read %s: %s" % (path, exc)) from exc
    try:
        text = data.decode("utf-8-sig")  # an editor may have added a byte order mark: it is not damage
    except UnicodeDecodeError as exc:
        raise BundleError("%s is not valid JSON (it is not UTF-8 text: %s): copy bundle.json again from the original bundle" % (path, exc)) from exc
    return parse_manifest(text, path, bundle_dir, check_blobs)


def entry_names(entry):
    """Every name an entry answers to: its references and tags, as recorded and normalized."""
    names = []
    for reference in list(entry.get("references") or []) + list(entry.get("tags") or []):
        for name in (reference, image_ref.normalize(reference)):
            if name not in names:
                names.append(name)
    return names


def find_entry(manifest, reference):
    """The entry answering to `reference` (as recorded or normalized), or None."""
    wanted = image_ref.normalize(reference)
    for entry in manifest["images"]:
        if reference in entry_names(entry) or wanted in entry_names(entry):
            return entry
    return None


def select_entries(manifest, references, source):
    """The entries for `references` in the manifest's order (all when empty); unknown ones are an error."""
    if not references:
        return list(manifest["images"])
    chosen = []
    unknown = []
    for reference in references:
        entry = find_entry(manifest, reference)
        if entry is None:
            unknown.append(reference)
        elif not any(entry is other for other in chosen):
            chosen.append(entry)
    if unknown:
        held = [reference for entry in manifest["images"] for reference in entry["references"]]
        raise BundleError("bundle %s has no image %s; it holds: %s" % (source, ", ".join(unknown), ", ".join(held) or "no image at all"))
    return [entry for entry in manifest["images"] if any(entry is other for other in chosen)]


def _ordered(mapping, first):
    ordered = {key: mapping[key] for key in first if key in mapping}
    ordered.update((key, mapping[key]) for key in sorted(mapping) if key not in ordered)
    return ordered


def _ordered_entry(entry):
    ordered = _ordered(entry, ENTRY_KEY_ORDER)
    for key in ("manifest", "config"):
        if isinstance(entry.get(key), dict):
            ordered[key] = _ordered(entry[key], DESCRIPTOR_KEY_ORDER)
    if isinstance(entry.get("layers"), list):
        ordered["layers"] = [_ordered(layer, DESCRIPTOR_KEY_ORDER) for layer in entry["layers"]]
    return ordered


def render_manifest(manifest):
    """Deterministic JSON text for a manifest: the same content always gives the same bytes."""
    document = _ordered(manifest, MANIFEST_KEY_ORDER)
    document["images"] = [_ordered_entry(entry) for entry in manifest["images"]]
    if isinstance(manifest.get("requires"), dict):
        requires = manifest["requires"]
        document["requires"] = dict(requires, blobs=[_ordered(blob, DESCRIPTOR_KEY_ORDER) for blob in requires.get("blobs") or []])
    if "wheels" in manifest:
        document["wheels"] = [_ordered(entry, WHEEL_KEY_ORDER) for entry in manifest["wheels"]]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Version 2: content-addressed blobs (an OCI image layout)


def is_v2(manifest):
    """Whether the manifest describes a content-addressed bundle (blobs/sha256/) rather than tarballs."""
    return _is_int(manifest.get("version")) and manifest["version"] >= 2


def blob_name(digest):
    """The bundle-relative file of a blob: ``blobs/sha256/<hex>``; raises BundleError for anything but a sha256 digest."""
    if not (isinstance(digest, str) and IMAGE_DIGEST.match(digest)):
        raise BundleError("%r is not a blob digest: expected sha256:<64 lowercase hex digits>" % (digest,))
    return "%s/%s" % (BLOBS_DIR, digest[len("sha256:"):])


def blob_path(bundle_dir, digest):
    """The absolute path of the blob `digest` in the bundle, refusing any that leaves it or is a symbolic link.

    The path is returned whether or not the file exists; blobs/, blobs/sha256/ and the blob itself
    must not be symbolic links (a blob is a regular file named by the sha256 of its bytes).
    """
    name = blob_name(digest)
    path = resolve_file(bundle_dir, name)
    root = os.path.realpath(bundle_dir)
    for part in ("blobs", BLOBS_DIR, name):
        if os.path.islink(os.path.join(root, part)):
            raise BundleError("bundle %s: %s is a symbolic link; a blob must be a regular file in %s/, refusing it" % (bundle_dir, part, BLOBS_DIR))
    return path


def image_blobs(entry):
    """[(digest, size)] of every blob a version 2 entry references: its manifest, its config, then its layers in order."""
    if "manifest" not in entry:
        raise BundleError("the bundle entry for %s is a version 1 entry (a tarball): it has no blobs" % ", ".join(entry.get("references") or []))
    blobs = [(entry["manifest"]["digest"], entry["manifest"]["size"]), (entry["config"]["digest"], entry["config"]["size"])]
    return blobs + [(layer["digest"], layer["size"]) for layer in entry["layers"]]


def layer_compression(media_type):
    """``none``, ``gzip`` or ``zstd`` for a layer media type; BundleError for any other."""
    if media_type not in LAYER_MEDIA_TYPES:
        raise BundleError("layer media type %r is not one of %s" % (media_type, ", ".join(LAYER_MEDIA_TYPES)))
    return LAYER_MEDIA_TYPES[media_type]


def referenced_blobs(manifest):
    """{digest: size} of every blob the manifest's images reference, in first-reference order."""
    found = {}
    for entry in manifest["images"]:
        for digest, size in image_blobs(entry):
            found.setdefault(digest, size)
    return found


def required_blobs(manifest):
    """{digest: size} of the blobs ``requires`` lists: referenced, but carried by the base bundle, not by this one."""
    return {blob["digest"]: blob["size"] for blob in (manifest.get("requires") or {}).get("blobs") or []}


def carried_blobs(manifest):
    """{digest: size} of the blobs this bundle itself must hold in blobs/sha256/."""
    required = required_blobs(manifest)
    return {digest: size for digest, size in referenced_blobs(manifest).items() if digest not in required}


def _check_descriptor(value, where, what, media_types=None):
    if not isinstance(value, dict):
        raise BundleError("%s: %s must be an object, got %r" % (where, what, value))
    if not (isinstance(value.get("digest"), str) and IMAGE_DIGEST.match(value["digest"])):
        raise BundleError("%s: %s digest must look like sha256:<64 hex digits>, got %r" % (where, what, value.get("digest")))
    if not (_is_int(value.get("size")) and value["size"] >= 0):
        raise BundleError("%s: %s size must be a whole number of bytes, got %r" % (where, what, value.get("size")))
    if media_types is not None and value.get("media_type") not in media_types:
        raise BundleError("%s: %s media_type %r is not one of %s" % (where, what, value.get("media_type"), ", ".join(media_types)))


def _check_layer(layer, where, what):
    _check_descriptor(layer, where, what, LAYER_MEDIA_TYPES)
    if not (isinstance(layer.get("diff_id"), str) and IMAGE_DIGEST.match(layer["diff_id"])):
        raise BundleError("%s: %s diff_id must look like sha256:<64 hex digits>, got %r" % (where, what, layer.get("diff_id")))
    if not (_is_int(layer.get("diff_size")) and layer["diff_size"] >= 0):
        raise BundleError("%s: %s diff_size must be a whole number of bytes, got %r" % (where, what, layer.get("diff_size")))


def validate_v2_entry(entry, where):
    """Raise BundleError naming `where` unless the version 2 `entry` is usable (manifest, config, layers)."""
    _check_identity(entry, where)
    _check_descriptor(entry.get("manifest"), where, "manifest", (OCI_MANIFEST_TYPE,))
    _check_descriptor(entry.get("config"), where, "config")
    if entry.get("manifest_digest") not in (None, entry["manifest"]["digest"]):
        raise BundleError("%s: manifest_digest %s is not the manifest's digest %s" % (where, entry["manifest_digest"], entry["manifest"]["digest"]))
    if not isinstance(entry.get("layers"), list):
        raise BundleError("%s: layers must be a list, got %r" % (where, entry.get("layers")))
    for index, layer in enumerate(entry["layers"]):
        _check_layer(layer, where, "layers[%d]" % index)


def _validate_v2_images(manifest, source):
    """Each entry, then what holds across them: one size per digest, one blob per diff_id, a sane ``requires``."""
    sizes, blob_of_diff = {}, {}
    for index, entry in enumerate(manifest["images"]):
        where = _entry_label(source, index, entry)
        validate_v2_entry(entry, where)
        for digest, size in image_blobs(entry):
            if sizes.setdefault(digest, size) != size:
                raise BundleError("%s: blob %s is recorded with %d bytes here and %d bytes elsewhere" % (where, digest, size, sizes[digest]))
        for layer in entry["layers"]:
            if blob_of_diff.setdefault(layer["diff_id"], layer["digest"]) != layer["digest"]:
                raise BundleError("%s: layer %s is stored twice, as blobs %s and %s: a bundle stores each layer once"
                                  % (where, layer["diff_id"], blob_of_diff[layer["diff_id"]], layer["digest"]))
    _validate_requires(manifest, source, sizes)


def _validate_requires(manifest, source, sizes):
    requires = manifest.get("requires")
    if requires is None:
        return
    where = "%s, requires" % source
    if not isinstance(requires, dict) or not (isinstance(requires.get("bundle"), str) and IMAGE_DIGEST.match(requires["bundle"])):
        raise BundleError("%s: must be an object whose bundle is sha256:<64 hex digits> (of the base's bundle.json), got %r" % (where, requires))
    if not isinstance(requires.get("blobs"), list):
        raise BundleError("%s: blobs must be a list, got %r" % (where, requires.get("blobs")))
    for index, blob in enumerate(requires["blobs"]):
        _check_descriptor(blob, where, "blobs[%d]" % index)
        if blob["digest"] not in sizes:
            raise BundleError("%s: blobs[%d] %s is not referenced by any image of the bundle" % (where, index, blob["digest"]))
        if sizes[blob["digest"]] != blob["size"]:
            raise BundleError("%s: blobs[%d] %s has %d bytes, the images record %d" % (where, index, blob["digest"], blob["size"], sizes[blob["digest"]]))


def missing_blobs(bundle_dir, manifest):
    """[(digest, size)] of the blobs this bundle must carry that are not regular files in blobs/sha256/."""
    missing = []
    for digest, size in carried_blobs(manifest).items():
        try:
            mode = os.lstat(blob_path(bundle_dir, digest)).st_mode
        except FileNotFoundError:
            mode = None
        if mode is None or not stat.S_ISREG(mode):
            missing.append((digest, size))
    return missing


def check_carried(bundle_dir, manifest):
    """Raise BundleError unless every blob the images reference is in blobs/sha256/ or listed in ``requires``."""
    missing = missing_blobs(bundle_dir, manifest)
    if missing:
        raise BundleError(
            "bundle %s is incomplete: %d blob(s) its images reference are neither files in %s/ nor listed in requires (%s). "
            "Copy the bundle again from the original" % (bundle_dir, len(missing), BLOBS_DIR, ", ".join(digest for digest, _size in missing))
        )


# ---------------------------------------------------------------------------------------------
# SHA256SUMS


def parse_sums(text):
    """{file: sha256} from ``sha256sum`` output (text or ``*`` binary mode lines); other lines are ignored."""
    sums = {}
    for line in text.splitlines():
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        if match:
            sums[match.group(2)] = match.group(1).lower()
    return sums


def listed_files(manifest, layout_sums=None):
    """{bundle-relative file: sha256} that SHA256SUMS lists for the manifest.

    Version 1: each tarball and wheel. Version 2: each carried blob (its name is its sha256), each
    wheel, and the OCI layout files whose sha256 `layout_sums` gives ({"index.json": hex, ...}).
    """
    files = {entry["file"]: entry["sha256"] for entry in manifest.get("wheels") or []}
    if not is_v2(manifest):
        files.update((entry["file"], entry["sha256"]) for entry in manifest["images"])
        return files
    files.update((blob_name(digest), digest[len("sha256:"):]) for digest in carried_blobs(manifest))
    files.update(layout_sums or {})
    return files


def sums_text(manifest, kept_lines=(), layout_sums=None):
    """SHA256SUMS content: `kept_lines` (other files' lines, kept as they are) then one line per listed file, by name."""
    lines = list(kept_lines)
    files = listed_files(manifest, layout_sums)
    lines += ["%s  %s" % (files[name], name) for name in sorted(files)]
    return "".join(line + "\n" for line in lines)


def _written_by_us(name):
    return name.startswith((IMAGES_DIR + "/", WHEELS_DIR + "/", "blobs/")) or name in (INDEX_NAME, OCI_LAYOUT_NAME)


def foreign_sums_lines(bundle_dir):
    """Lines of the current SHA256SUMS for files outside images/, wheels/, blobs/ and the OCI layout files: kept on rewrite.

    The other lines are made from the manifest (a wheel has a line only when bundle.json lists it).
    """
    try:
        with open(os.path.join(bundle_dir, SUMS_NAME), "r", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    kept = []
    for line in text.splitlines():
        match = re.match(r"^[0-9a-fA-F]{64} [ *](.+)$", line)
        if match and not _written_by_us(match.group(1)):
            kept.append(line)
    return kept


def read_sums(bundle_dir):
    """{file: sha256} of the bundle's SHA256SUMS, empty when it has none."""
    try:
        with open(os.path.join(bundle_dir, SUMS_NAME), "r", encoding="utf-8-sig", errors="replace") as handle:
            return parse_sums(handle.read())
    except FileNotFoundError:
        return {}


def check_sums_agree(bundle_dir, entry):
    """Raise BundleError when SHA256SUMS lists the entry's file (a tarball or a wheel) with another checksum than bundle.json."""
    try:
        with open(os.path.join(bundle_dir, SUMS_NAME), "r", encoding="utf-8", errors="replace") as handle:
            listed = parse_sums(handle.read()).get(entry["file"])
    except FileNotFoundError:
        return
    if listed is not None and listed != entry["sha256"]:
        raise BundleError(
            "bundle %s disagrees with itself about %s: bundle.json records sha256 %s, SHA256SUMS lists %s. "
            "One of them was edited or damaged; copy the bundle again" % (bundle_dir, entry["file"], entry["sha256"], listed)
        )


def sha256_file(path):
    """The sha256 hex digest of the file at `path`, read once."""
    return hash_file(path)[0]


def open_entry_file(bundle_dir, entry, verify=True, sha256_now=True):
    """Open an entry's tarball once and check it on that descriptor; return (path, open file at its start).

    The file must be a regular file (no symbolic link, FIFO or device) with the recorded size; with
    `verify`, its sha256 is computed from the same descriptor. Whoever loads it reads this descriptor
    again, so the bytes checked are the bytes used, whatever happens to the path meanwhile.
    With `sha256_now` false only the size is checked here (check_open_file does the rest later).
    """
    path = resolve_file(bundle_dir, entry["file"], owner=", ".join(entry["references"]))
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise BundleError(
            "%s is missing: bundle.json expects it (%d bytes, sha256 %s) for %s; actual: no file"
            % (path, entry["size"], entry["sha256"], ", ".join(entry["references"]))
        ) from None
    except OSError as exc:
        raise BundleError("%s cannot be read for %s: %s" % (path, ", ".join(entry["references"]), exc.strerror or exc)) from None
    try:
        check_open_file(path, handle, entry, verify, sha256_now)
    except BaseException:
        handle.close()
        raise
    return path, handle


def check_open_file(path, handle, entry, verify=True, sha256_now=True):
    """Check the open tarball of `entry`: its size and, with `verify` (and `sha256_now`), its sha256; leave it at its start.

    A wrong size is reported with the actual sha256 when `verify` is set.
    """
    size = os.fstat(handle.fileno()).st_size
    if size != entry["size"]:
        handle.seek(0)
        actual = hash_handle(handle)[0] if verify else "not computed (verify is off)"
        handle.seek(0)
        raise BundleError(
            "%s is %s: it has %d bytes, bundle.json records %d; expected sha256 %s, actual %s"
            % (path, "truncated" if size < entry["size"] else "longer than recorded", size, entry["size"], entry["sha256"], actual)
        )
    if verify and sha256_now:
        handle.seek(0)
        actual, counted = hash_handle(handle)
        handle.seek(0)
        if actual != entry["sha256"] or counted != entry["size"]:
            raise BundleError("%s failed its checksum: expected sha256 %s, actual %s" % (path, entry["sha256"], actual))


def verify_file(bundle_dir, entry, verify=True):
    """Check an entry's tarball (see open_entry_file) without keeping it open; return its absolute path."""
    path, handle = open_entry_file(bundle_dir, entry, verify)
    handle.close()
    return path


# ---------------------------------------------------------------------------------------------
# Writing


def layout_sums(bundle_dir):
    """{name: sha256} of the OCI layout files (index.json, oci-layout) present in the bundle, for SHA256SUMS."""
    sums = {}
    for name in (INDEX_NAME, OCI_LAYOUT_NAME):
        path = resolve_file(bundle_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            sums[name] = sha256_file(path)
    return sums


def write_manifest(bundle_dir, manifest):
    """Validate, then write bundle.json and SHA256SUMS atomically (each only if it changes). Returns changed.

    A version 2 writer writes every blob, index.json and oci-layout first: the validation refuses a
    manifest that references a blob the bundle neither holds nor lists in ``requires``.
    """
    validate_manifest(manifest, manifest_path(bundle_dir), bundle_dir)
    changed = atomic_write(manifest_path(bundle_dir), render_manifest(manifest).encode("utf-8"))
    sums = sums_text(manifest, foreign_sums_lines(bundle_dir), layout_sums(bundle_dir) if is_v2(manifest) else None).encode("utf-8")
    return atomic_write(os.path.join(bundle_dir, SUMS_NAME), sums) or changed


@contextlib.contextmanager
def bundle_lock(bundle_dir):
    """Hold an exclusive lock on the bundle directory itself, so two writers never interleave."""
    fd = os.open(bundle_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
