# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a bundle directory holds, read and checked: the result of fleet.images.bundle_info."""

from __future__ import annotations

import os

from ansible_collections.fleet.images.plugins.module_utils import bundle

WHEELS_DIR = "wheels"


def human_size(size):
    if size < 1024:
        return "%d bytes" % size
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024.0
        if size < 1024 or unit == "GiB":
            return "%.1f %s" % (size, unit)


def all_references(manifest):
    """Each recorded reference, and its normalized form, mapped to its tarball."""
    mapping = {}
    for entry in manifest["images"]:
        for name in bundle.entry_names(entry):
            mapping.setdefault(name, entry["file"])
    return mapping


def check_file(bundle_dir, entry, verify):
    """Problems with one tarball (missing, wrong size, wrong sha256), each naming the file; [] when fine."""
    path = bundle.resolve_file(bundle_dir, entry["file"], owner=", ".join(entry["references"]))
    try:
        bundle.check_sums_agree(bundle_dir, entry)
    except bundle.BundleError as exc:
        return [str(exc)]
    if not os.path.isfile(path):
        return ["%s is missing (bundle.json lists it for %s)" % (path, ", ".join(entry["references"]))]
    size = os.path.getsize(path)
    if size != entry["size"]:
        return ["%s has %d bytes, bundle.json records %d (truncated or replaced?)" % (path, size, entry["size"])]
    if verify:
        actual = bundle.sha256_file(path)
        if actual != entry["sha256"]:
            return ["%s has sha256 %s, bundle.json and SHA256SUMS expect %s" % (path, actual, entry["sha256"])]
    return []


def read_wheels(bundle_dir):
    directory = os.path.join(bundle_dir, WHEELS_DIR)
    if not os.path.isdir(directory):
        return []
    return [
        {"file": name, "size": os.path.getsize(os.path.join(directory, name))}
        for name in sorted(os.listdir(directory))
        if name.endswith(".whl") and os.path.isfile(os.path.join(directory, name))
    ]


def read_sums(bundle_dir):
    path = os.path.join(bundle_dir, bundle.SUMS_NAME)
    if not os.path.isfile(path):
        return ""
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def read_bundle(bundle_dir, references, verify):
    """Everything bundle_info returns; raises bundle.BundleError naming every bad file at once."""
    manifest = bundle.load_manifest(bundle_dir)
    selected = bundle.select_entries(manifest, references, bundle.manifest_path(bundle_dir))
    problems = []
    images = []
    for entry in selected:
        problems += check_file(bundle_dir, entry, verify)
        image = dict(entry)
        image["file_path"] = bundle.resolve_file(bundle_dir, entry["file"])
        image["verified"] = bool(verify)
        image["summary"] = "%s: %s, %s, %s" % (", ".join(entry["references"]), entry["file"], human_size(entry["size"]), entry["compression"])
        images.append(image)
    if problems:
        raise bundle.BundleError("bundle %s failed its check: %s" % (bundle_dir, "; ".join(problems)))
    wheels = read_wheels(bundle_dir)
    images_size = sum(entry["size"] for entry in selected)
    return dict(
        path=bundle_dir,
        format_version=manifest["version"],
        images=images,
        references=all_references(manifest),
        files=[entry["file"] for entry in selected],
        wheels=wheels,
        images_size=images_size,
        total_size=images_size + sum(wheel["size"] for wheel in wheels),
        sha256sums=read_sums(bundle_dir),
        verified=[entry["file"] for entry in selected] if verify else [],
    )
