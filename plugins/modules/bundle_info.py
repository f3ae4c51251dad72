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
  - Talks to no Docker Engine; it usually runs on the controller, with C(delegate_to) V(localhost). There its
    action plugin reads the bundle inside Ansible's own process (no module run, the same result); on any other
    host, or with C(become), it runs as a module on that host.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  bundle:
    description:
      - The bundle directory.
      - The same option as O(fleet.images.image_save#module:bundle) and O(fleet.images.image_load#module:bundle); V(path)
        is its former name, kept as an alias.
    type: path
    required: true
    aliases: [path]
  images:
    description:
      - Only these images (references as recorded in the bundle, for example V(nginx:1.25)).
      - All images when empty. A reference the bundle does not hold is an error that lists what it holds.
    type: list
    elements: str
    default: []
  verify:
    description:
      - Compute the sha256 of each selected tarball and of each listed wheel and compare it with the manifest.
      - Reads every selected tarball and wheel once; without it only presence and size are checked.
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
    bundle: /media/usb/bundle
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Check the tarballs about to be sent before any transfer
  fleet.images.bundle_info:
    bundle: /media/usb/bundle
    images: [nginx:1.25]
    verify: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
bundle:
  description: The bundle directory, absolute.
  returned: always
  type: str
  sample: /media/usb/bundle
path:
  description: The same as RV(bundle), under its former name.
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
      summary: "nginx:1.25: images/nginx_1.25-0123456789ab.tar.zst, 67.94 MB, zstd"
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
  description:
    - The Python wheels C(bundle.json) lists (C(playbooks/bundle.yml) records them), for hosts that lack the Docker SDK.
    - Each is checked like a tarball (present, size, and with O(verify=true) its sha256).
  returned: success
  type: list
  elements: dict
  contains:
    file:
      description: The wheel, relative to the bundle directory.
      type: str
      sample: wheels/docker-7.2.0-py3-none-any.whl
    name:
      description: The wheel's file name.
      type: str
    size:
      description: Size in bytes.
      type: int
    sha256:
      description: The wheel's sha256, as recorded.
      type: str
    verified:
      description: Whether this run computed the sha256 and found it as recorded.
      type: bool
wheels_listed:
  description:
    - Whether C(bundle.json) has a C(wheels) list. A bundle made before fleet.images listed its wheels has none; its
      wheels cannot be verified and the offline_images role refuses to install them.
  returned: success
  type: bool
unlisted_wheels:
  description: C(.whl) files in C(wheels/) that C(bundle.json) does not list (never installed).
  returned: success
  type: list
  elements: str
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
  description: The files (tarballs and wheels) whose sha256 this run checked.
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.bundle_contents import read_bundle


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bundle=dict(type="path", required=True, aliases=["path"]),
            images=dict(type="list", elements="str", default=[]),
            verify=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["bundle"])
    try:
        contents = read_bundle(path, module.params["images"], module.params["verify"])
    except BundleError as exc:
        module.fail_json(msg=str(exc), bundle=path)
    module.exit_json(changed=False, **contents)


if __name__ == "__main__":
    main()
