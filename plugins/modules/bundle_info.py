#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_info
short_description: Read and check an image bundle
version_added: 0.1.0
description:
  - Reads a bundle directory written by M(fleet.images.image_save) (C(bundle.json), C(SHA256SUMS), C(images/),
    and C(wheels/) when C(playbooks/bundle.yml) made it) and returns what it holds.
  - Checks that every tarball the manifest names is present with the recorded size, and with O(verify=true)
    that its sha256 matches, before anything is copied or loaded anywhere.
  - Talks to no Docker Engine; it usually runs on the controller, with C(delegate_to) V(localhost).
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  path:
    description:
      - The bundle directory.
    type: path
    required: true
  images:
    description:
      - Only these images (references as recorded in the bundle, for example V(nginx:1.25)).
      - All images when empty. A reference the bundle does not hold is an error that lists what it holds.
    type: list
    elements: str
    default: []
  verify:
    description:
      - Compute the sha256 of each selected tarball and compare it with the manifest.
      - Reads every selected tarball once; without it only presence and size are checked.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reads only; check mode changes nothing because the module never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.image_save
  - module: fleet.images.image_load
"""

EXAMPLES = r"""
- name: Read the bundle on the controller
  fleet.images.bundle_info:
    path: /media/usb/bundle
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Check the tarballs about to be sent before any transfer
  fleet.images.bundle_info:
    path: /media/usb/bundle
    images: [nginx:1.25]
    verify: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
path:
  description: The bundle directory, absolute.
  returned: success
  type: str
format_version:
  description: The manifest's format version.
  returned: success
  type: int
  sample: 1
images:
  description: The selected images, as the manifest records them, with a few fields added.
  returned: success
  type: list
  elements: dict
  contains:
    references:
      description: The references the image was asked for when saved.
      type: list
      elements: str
    tags:
      description: The tags restored when the image is loaded.
      type: list
      elements: str
    image_id:
      description: The image ID on the engine that saved it.
      type: str
    file:
      description: The tarball, relative to the bundle directory.
      type: str
      sample: images/nginx_1.25-0123456789ab.tar.zst
    file_path:
      description: The tarball's absolute path.
      type: str
    size:
      description: The tarball's size in bytes.
      type: int
    sha256:
      description: The tarball's sha256.
      type: str
    compression:
      description: V(none), V(gzip) or V(zstd).
      type: str
    verified:
      description: Whether this run computed the sha256 and found it as recorded.
      type: bool
    summary:
      description: One line for people.
      type: str
  sample:
    - references: [nginx:1.25]
      tags: [nginx:1.25]
      image_id: sha256:3f1e...
      file: images/nginx_1.25-0123456789ab.tar.zst
      file_path: /media/usb/bundle/images/nginx_1.25-0123456789ab.tar.zst
      size: 71234567
      sha256: 9b2c...
      compression: zstd
      verified: false
      summary: "nginx:1.25: images/nginx_1.25-0123456789ab.tar.zst, 71234567 bytes, zstd"
references:
  description:
    - Every reference of every image in the bundle (as recorded, and as the engine lists it, for example
      C(nginx) and C(nginx:latest)), mapped to its tarball's file name.
  returned: success
  type: dict
  sample: {"nginx:1.25": "images/nginx_1.25-0123456789ab.tar.zst"}
files:
  description: The selected tarballs' file names, relative to the bundle directory.
  returned: success
  type: list
  elements: str
wheels:
  description: The Python wheels in C(wheels/), for hosts that lack the Docker SDK.
  returned: success
  type: list
  elements: dict
  contains:
    file:
      description: File name.
      type: str
    size:
      description: Size in bytes.
      type: int
images_size:
  description: Bytes of the selected tarballs.
  returned: success
  type: int
total_size:
  description: Bytes of the selected tarballs and of the wheels.
  returned: success
  type: int
sha256sums:
  description: The content of C(SHA256SUMS), which C(sha256sum -c) reads.
  returned: success
  type: str
verified:
  description: The files whose sha256 this run checked.
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            images=dict(type="list", elements="str", default=[]),
            verify=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["path"])
    try:
        contents = read_bundle(path, module.params["images"], module.params["verify"])
    except bundle.BundleError as exc:
        module.fail_json(msg=str(exc), path=path)
    module.exit_json(changed=False, **contents)


if __name__ == "__main__":
    main()
