# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a bundle directory holds, read and checked: the result of fleet.images.bundle_info."""

from __future__ import annotations

import os

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.hashing import hash_file, hash_handle, open_regular
from ansible_collections.fleet.images.plugins.module_utils.image_result import image_result

WHEELS_DIR = bundle.WHEELS_DIR


def all_references(manifest):
    """Each recorded reference, and its normalized form, mapped to its tarball (version 1) or manifest blob (version 2)."""
    mapping = {}
    for entry in manifest["images"]:
        for name in bundle.entry_names(entry):
            mapping.setdefault(name, entry["file"] if "file" in entry else bundle.blob_name(entry["manifest"]["digest"]))
    return mapping


def check_blob(bundle_dir, digest, size, verify):
    """Problems with one carried blob (missing, not a regular file, wrong size, sha256 not its name); [] when fine."""
    path = bundle.blob_path(bundle_dir, digest)
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        return ["%s is missing (bundle.json references blob %s, %d bytes, and requires does not list it)" % (path, digest, size)]
    except OSError as exc:
        return ["%s cannot be read: %s" % (path, exc.strerror or exc)]
    with handle:
        actual_size = os.fstat(handle.fileno()).st_size
        if actual_size != size:
            return ["%s has %d bytes, bundle.json records %d (truncated or replaced?)" % (path, actual_size, size)]
        if verify:
            actual = "sha256:" + hash_handle(handle)[0]
            if actual != digest:
                return ["%s has sha256 %s: a blob's content must hash to its name (swapped or damaged)" % (path, actual)]
    return []


def unlisted_blobs(bundle_dir, manifest):
    """Files in blobs/sha256/ that the bundle's images do not reference (never read by a loader)."""
    directory = os.path.join(bundle_dir, *bundle.BLOBS_DIR.split("/"))
    if not os.path.isdir(directory) or os.path.islink(directory):
        return []
    carried = {bundle.blob_name(digest) for digest in bundle.carried_blobs(manifest)}
    return ["%s/%s" % (bundle.BLOBS_DIR, name) for name in sorted(os.listdir(directory))
            if "%s/%s" % (bundle.BLOBS_DIR, name) not in carried and not name.startswith(".")]


def read_v2_images(bundle_dir, manifest, selected, verify):
    """(images items, problems, carried blob files checked) for the selected version 2 entries."""
    carried = bundle.carried_blobs(manifest)
    problems, checked, images = [], [], []
    for entry in selected:
        held = [(digest, size) for digest, size in bundle.image_blobs(entry) if digest in carried]
        for digest, size in held:
            if bundle.blob_name(digest) not in checked:
                problems += check_blob(bundle_dir, digest, size, verify)
                checked.append(bundle.blob_name(digest))
        size = sum(size for _digest, size in held)
        layers = ", ".join(sorted({bundle.layer_compression(layer["media_type"]) for layer in entry["layers"]})) or "no layer"
        summary = "%s: %d layer(s) (%s), %s in this bundle%s" % (
            ", ".join(entry["references"]), len(entry["layers"]), layers, bytes_to_human(size),
            ", %d blob(s) from its base" % (len(bundle.image_blobs(entry)) - len(held)) if len(held) < len(bundle.image_blobs(entry)) else "")
        images.append(item_of(entry, verify, size, summary, blobs=[digest for digest, _size in bundle.image_blobs(entry)],
                              required=[digest for digest, _size in bundle.image_blobs(entry) if digest not in carried]))
    return images, problems, checked


def item_of(entry, verify, size, summary, **extra):
    """The C2 item of a bundle entry: the common keys, then every recorded field, then what this read adds."""
    fields = {key: value for key, value in entry.items() if key not in ("references", "image_id")}
    fields.update(extra, verified=bool(verify), summary=summary)
    return image_result(entry["references"][0], entry["references"], entry.get("image_id"), "verified" if verify else "listed", size, **fields)


def check_file(bundle_dir, entry, verify, wheel=False):
    """Problems with one listed file, a tarball or a wheel (missing, wrong size, wrong sha256), each naming it; [] when fine."""
    owner = entry["file"] if wheel else ", ".join(entry["references"])
    name = "wheel %s" if wheel else "%s"
    path = bundle.resolve_file(bundle_dir, entry["file"], owner=owner)
    try:
        bundle.check_sums_agree(bundle_dir, entry)
    except bundle.BundleError as exc:
        return [str(exc)]
    if not os.path.isfile(path):
        listed = ": %d bytes, sha256 %s" % (entry["size"], entry["sha256"]) if wheel else " for %s" % owner
        return ["%s is missing (bundle.json lists it%s)" % (path, listed)]
    size = os.path.getsize(path)
    if size != entry["size"]:
        return [(name + " has %d bytes, bundle.json records %d (truncated or replaced?)") % (path, size, entry["size"])]
    if verify:
        actual = bundle.sha256_file(path)
        if actual != entry["sha256"]:
            return [(name + " has sha256 %s, bundle.json and SHA256SUMS expect %s") % (path, actual, entry["sha256"])]
    return []


def wheel_files(bundle_dir):
    """The bundle-relative names of the regular .whl files in wheels/ (symbolic links are not wheels of the bundle)."""
    directory = os.path.join(bundle_dir, WHEELS_DIR)
    if not os.path.isdir(directory) or os.path.islink(directory):
        return []
    return [
        "%s/%s" % (WHEELS_DIR, name) for name in sorted(os.listdir(directory))
        if name.endswith(".whl") and os.path.isfile(os.path.join(directory, name)) and not os.path.islink(os.path.join(directory, name))
    ]


def read_wheels(bundle_dir, manifest, verify):
    """(wheels as bundle.json lists them, problems, wheel files present but not listed)."""
    listed = manifest.get("wheels") or []
    problems = []
    wheels = []
    for entry in listed:
        problems += check_file(bundle_dir, entry, verify, wheel=True)
        wheels.append(dict(entry, name=os.path.basename(entry["file"]), verified=bool(verify)))
    listed_files = {entry["file"] for entry in listed}
    return wheels, problems, [name for name in wheel_files(bundle_dir) if name not in listed_files]


def record_wheels(bundle_dir):
    """List every wheel in wheels/ in bundle.json (file, size, sha256) and SHA256SUMS. Returns (changed, wheels)."""
    with bundle.bundle_lock(bundle_dir):
        manifest = bundle.load_manifest(bundle_dir)
        wheels = []
        for name in wheel_files(bundle_dir):
            sha256, size = hash_file(bundle.resolve_file(bundle_dir, name))
            wheels.append({"file": name, "size": size, "sha256": sha256})
        manifest["wheels"] = wheels
        return bundle.write_manifest(bundle_dir, manifest), wheels


def sums_text_of(bundle_dir):
    """The text of the bundle's SHA256SUMS as it is (empty when it has none), for the result."""
    path = os.path.join(bundle_dir, bundle.SUMS_NAME)
    if not os.path.isfile(path):
        return ""
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def read_v1_images(bundle_dir, selected, verify):
    """(images items, problems, tarballs) for the selected version 1 entries."""
    problems, images = [], []
    for entry in selected:
        problems += check_file(bundle_dir, entry, verify)
        summary = "%s: %s, %s, %s" % (", ".join(entry["references"]), entry["file"], bytes_to_human(entry["size"]), entry["compression"])
        images.append(item_of(entry, verify, entry["size"], summary, file_path=bundle.resolve_file(bundle_dir, entry["file"])))
    return images, problems, [entry["file"] for entry in selected]


def read_bundle(bundle_dir, references, verify):
    """Everything bundle_info returns; raises bundle.BundleError naming every bad file at once."""
    manifest = bundle.load_manifest(bundle_dir, check_blobs=False)
    selected = bundle.select_entries(manifest, references, bundle.manifest_path(bundle_dir))
    if bundle.is_v2(manifest):
        images, problems, files = read_v2_images(bundle_dir, manifest, selected, verify)
        carried = bundle.carried_blobs(manifest)
        files_size = sum(carried["sha256:" + name.rsplit("/", 1)[-1]] for name in files)
    else:
        images, problems, files = read_v1_images(bundle_dir, selected, verify)
        files_size = sum(entry["size"] for entry in selected)
    wheels, wheel_problems, unlisted = read_wheels(bundle_dir, manifest, verify)
    problems += wheel_problems
    if problems:
        raise bundle.BundleError("bundle %s failed its check: %s" % (bundle_dir, "; ".join(problems)))
    return dict(
        bundle=bundle_dir,
        path=bundle_dir,
        format_version=manifest["version"],
        images=images,
        references=all_references(manifest),
        files=files,
        requires=manifest.get("requires"),
        unlisted_blobs=unlisted_blobs(bundle_dir, manifest) if bundle.is_v2(manifest) else [],
        wheels=wheels,
        wheels_listed="wheels" in manifest,
        unlisted_wheels=unlisted,
        images_size=files_size,
        total_size=files_size + sum(wheel["size"] for wheel in wheels),
        sha256sums=sums_text_of(bundle_dir),
        verified=files + [wheel["file"] for wheel in wheels] if verify else [],
    )
