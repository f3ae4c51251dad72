# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a bundle directory holds, read and checked: the result of fleet.images.bundle_info."""

from __future__ import annotations

import os

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.hashing import hash_file

WHEELS_DIR = bundle.WHEELS_DIR


def all_references(manifest):
    """Each recorded reference, and its normalized form, mapped to its tarball."""
    mapping = {}
    for entry in manifest["images"]:
        for name in bundle.entry_names(entry):
            mapping.setdefault(name, entry["file"])
    return mapping


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
        image["summary"] = "%s: %s, %s, %s" % (", ".join(entry["references"]), entry["file"], bytes_to_human(entry["size"]), entry["compression"])
        images.append(image)
    wheels, wheel_problems, unlisted = read_wheels(bundle_dir, manifest, verify)
    problems += wheel_problems
    if problems:
        raise bundle.BundleError("bundle %s failed its check: %s" % (bundle_dir, "; ".join(problems)))
    images_size = sum(entry["size"] for entry in selected)
    return dict(
        bundle=bundle_dir,
        path=bundle_dir,
        format_version=manifest["version"],
        images=images,
        references=all_references(manifest),
        files=[entry["file"] for entry in selected],
        wheels=wheels,
        wheels_listed="wheels" in manifest,
        unlisted_wheels=unlisted,
        images_size=images_size,
        total_size=images_size + sum(wheel["size"] for wheel in wheels),
        sha256sums=sums_text_of(bundle_dir),
        verified=[entry["file"] for entry in selected + wheels] if verify else [],
    )
