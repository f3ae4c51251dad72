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
  - Reads a bundle directory written by M(fleet.images.image_save) (C(bundle.json), C(SHA256SUMS), C(images/) or
    C(blobs/sha256/), and C(wheels/) when C(playbooks/bundle.yml) made it) and returns what it holds.
  - Format version 1 (tarballs) and 2 (content-addressed blobs, an OCI image layout) are both read.
  - Checks that every tarball (version 1) or every blob the bundle itself carries (version 2) is present with the
    recorded size, and with O(verify=true) that its sha256 matches (for a blob, its file name), before anything is
    copied or loaded anywhere. The blobs a differential bundle takes from its base (C(requires)) are listed, not checked.
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
      - Compute the sha256 of each selected tarball (or carried blob) and of each listed wheel and compare it with the
        manifest (for a blob, with its name).
      - Reads every selected tarball, blob and wheel once; without it only presence and size are checked.
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
  sample: /media/usb/bundle
format_version:
  description: The manifest's format version, V(1) or V(2).
  returned: success
  type: int
  sample: 1
images:
  description:
    - The selected images, in the manifest's order; the keys every image module returns (RV(images[].reference),
      RV(images[].references), RV(images[].image_id), RV(images[].action), RV(images[].bytes)), then every field
      the manifest records for the image (see C(docs/bundle-format.md)), then a few this read adds.
  returned: success
  type: list
  elements: dict
  contains:
    reference:
      description: The first reference the image was saved under.
      type: str
      sample: nginx:1.25
    references:
      description: The references the image was asked for when saved.
      type: list
      elements: str
      sample: [nginx:1.25]
    image_id:
      description: The image ID on the engine that saved it, as recorded.
      type: str
      sample: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
    action:
      description: V(verified) with O(verify=true) (every sha256 computed and found as recorded), else V(listed).
      type: str
      sample: listed
    bytes:
      description:
        - The image's bytes in this bundle; the tarball (version 1), or the blobs of the image this bundle carries
          (version 2; a blob shared with other images is counted for each, blobs taken from the base are not).
      type: int
      sample: 71234567
    tags:
      description: The tags restored when the image is loaded.
      type: list
      elements: str
      sample: [nginx:1.25]
    file:
      description: The tarball, relative to the bundle directory. Version 1 only.
      type: str
      sample: images/nginx_1.25-0123456789ab.tar.zst
    file_path:
      description: The tarball's absolute path. Version 1 only.
      type: str
      sample: /media/usb/bundle/images/nginx_1.25-0123456789ab.tar.zst
    size:
      description: The tarball's size in bytes. Version 1 only.
      type: int
      sample: 71234567
    sha256:
      description: The tarball's sha256. Version 1 only.
      type: str
      sample: 9b2c4f1e0d3a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c
    compression:
      description: V(none), V(gzip) or V(zstd). Version 1 only.
      type: str
      sample: zstd
    manifest:
      description: The image's OCI image manifest blob (C(media_type), C(digest), C(size)). Version 2 only.
      type: dict
      sample: {media_type: application/vnd.oci.image.manifest.v1+json, digest: "sha256:5030f07f...", size: 719}
    config:
      description: The image config blob (C(digest), C(size)). Version 2 only.
      type: dict
      sample: {digest: "sha256:bca1582a...", size: 1813}
    layers:
      description: The layer blobs in rootfs order. Version 2 only.
      type: list
      elements: dict
      contains:
        media_type:
          description: The layer's media type (gzip, zstd or plain tar).
          type: str
          sample: application/vnd.oci.image.layer.v1.tar+gzip
        digest:
          description: The sha256 of the stored blob.
          type: str
          sample: sha256:5d4509eb2fd2b983c0041b6443fdc02477dcb11e3ddfce4bad256001c7a9e0f5
        size:
          description: The stored blob's bytes.
          type: int
          sample: 300290
        diff_id:
          description: The sha256 of the plain layer tar.
          type: str
          sample: sha256:d089bef9fe9cbbdc890538ca0eda504a7f5d003613322cecf2088668642abb33
        diff_size:
          description: The plain layer tar's bytes.
          type: int
          sample: 301568
      sample: []
    blobs:
      description: Every blob of the image (manifest, config, layers in order). Version 2 only.
      type: list
      elements: str
      sample: [sha256:5030f07fb7dd399db158287c81edd32c3022c179375192ac524c1dde122066cb]
    required:
      description: The image's blobs this bundle does not carry (C(requires), its base holds them). Version 2 only.
      type: list
      elements: str
      sample: []
    verified:
      description: Whether this run computed the sha256 and found it as recorded.
      type: bool
      sample: false
    summary:
      description: One line for people.
      type: str
      sample: "nginx:1.25: images/nginx_1.25-0123456789ab.tar.zst, 67.94 MB, zstd"
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
      action: listed
      bytes: 71234567
      tags: [nginx:1.25]
      file: images/nginx_1.25-0123456789ab.tar.zst
      file_path: /media/usb/bundle/images/nginx_1.25-0123456789ab.tar.zst
      size: 71234567
      sha256: 9b2c4f1e0d3a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c
      compression: zstd
      verified: false
      summary: "nginx:1.25: images/nginx_1.25-0123456789ab.tar.zst, 67.94 MB, zstd"
references:
  description:
    - Every reference of every image in the bundle (as recorded, and as the engine lists it, for example
      C(nginx) and C(nginx:latest)), mapped to its tarball's file name (version 1) or its manifest blob (version 2).
  returned: success
  type: dict
  sample: {"nginx:1.25": "images/nginx_1.25-0123456789ab.tar.zst"}
files:
  description: The selected tarballs (version 1) or the blob files the selected images carry (version 2), relative to the bundle directory.
  returned: success
  type: list
  elements: str
  sample: [images/nginx_1.25-0123456789ab.tar.zst]
requires:
  description:
    - Version 2 differential bundles only (else null), the manifest's C(requires) - the base bundle's C(bundle.json)
      sha256 and the blobs this bundle takes from it.
  returned: success
  type: dict
  contains:
    bundle:
      description: sha256 of the base bundle's C(bundle.json) bytes.
      type: str
      sample: sha256:7df38257736b854b7c18f7e75b571a33f909f13ec0360625406d00244ef086e2
    blobs:
      description: The blobs (C(digest), C(size)) the images reference that this bundle does not carry.
      type: list
      elements: dict
      contains:
        digest:
          description: The blob's digest.
          type: str
          sample: sha256:5d4509eb2fd2b983c0041b6443fdc02477dcb11e3ddfce4bad256001c7a9e0f5
        size:
          description: The blob's size in bytes.
          type: int
          sample: 300290
      sample: [{digest: "sha256:5d4509eb2fd2b983c0041b6443fdc02477dcb11e3ddfce4bad256001c7a9e0f5", size: 300290}]
  sample: null
unlisted_blobs:
  description: Files in C(blobs/sha256/) that no image of the bundle references (never loaded). Empty for version 1.
  returned: success
  type: list
  elements: str
  sample: []
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
      sample: docker-7.2.0-py3-none-any.whl
    size:
      description: Size in bytes.
      type: int
      sample: 147774
    sha256:
      description: The wheel's sha256, as recorded.
      type: str
      sample: 6cbc1b1d0a5f2e3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8
    verified:
      description: Whether this run computed the sha256 and found it as recorded.
      type: bool
      sample: false
  sample: []
wheels_listed:
  description:
    - Whether C(bundle.json) has a C(wheels) list. A bundle made before fleet.images listed its wheels has none; its
      wheels cannot be verified and the offline_images role refuses to install them.
  returned: success
  type: bool
  sample: true
unlisted_wheels:
  description: C(.whl) files in C(wheels/) that C(bundle.json) does not list (never installed).
  returned: success
  type: list
  elements: str
  sample: []
images_size:
  description: Bytes of the selected tarballs, or of the blobs the selected images carry (each blob once).
  returned: success
  type: int
  sample: 71234567
total_size:
  description: RV(images_size) and the bytes of the wheels.
  returned: success
  type: int
  sample: 73046912
sha256sums:
  description: The content of C(SHA256SUMS), which C(sha256sum -c) reads.
  returned: success
  type: str
  sample: "9b2c4f1e0d3a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c  images/nginx_1.25-0123456789ab.tar.zst\n"
verified:
  description: The files (tarballs or blobs, and wheels) whose sha256 this run checked.
  returned: success
  type: list
  elements: str
  sample: []
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
