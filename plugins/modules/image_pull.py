#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_pull
short_description: Pull bundle images from the site registry and tag them as the bundle names them
version_added: 0.1.0
description:
  - For each image, pulls it from the site registry under the name the registry role pushed it as, checks
    that the engine got the very image the bundle holds (same image ID), tags it with the bundle's tags,
    and removes the registry-named tag.
  - An image whose recorded tags all resolve to the bundle's image (the same identity rule as M(fleet.images.image_load),
    config digest, manifest digest or recorded image ID) is left alone without contacting the registry; one present
    under another name only gets the missing tags.
  - Used by the C(fleet.images.offline_images) role for its C(registry) strategy.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
options:
  images:
    description:
      - The images, as the bundle's manifest records them (the C(images) list M(fleet.images.bundle_info) returns,
        as it is; other keys are ignored).
      - Each needs C(references) (the first is the name pulled from the site registry), C(tags) (the tags the image
        must carry on the host) and C(image_id) (the ID the pulled image must have).
    type: list
    elements: dict
    required: true
  registry:
    description:
      - The site registry, as C(host:port).
    type: str
    required: true
  mirror_namespace:
    description:
      - Whether the registry role pushed Docker Hub's official images under C(library/) (its C(registry_mirror_namespace)),
        the path a Docker Engine asks a C(registry-mirrors) entry for.
      - Must match the registry role's setting, so that the name pulled is the name pushed.
    type: bool
    default: false
  username:
    description:
      - User for the site registry; anonymous pulls when not set.
    type: str
  password:
    description:
      - Password of O(username).
    type: str
  platform_mismatch:
    description:
      - What to do with an image whose recorded platform (C(os)/C(architecture)/C(variant) of the entry) is not the one
        the engine runs (C(docker info), V(x86_64) read as V(amd64), V(aarch64) as V(arm64), ...); the engine would pull
        it, and its containers would fail with C(exec format error).
      - V(fail) stops before pulling it, naming the engine's host, the image and both platforms; V(skip) leaves it out
        (an item of RV(images) with action V(unchanged) and a RV(images[].reason)); V(load) does not compare.
      - Asked before anything else, so an image of another platform is refused even when the host already has it.
    type: str
    choices: [fail, skip, load]
    default: fail
attributes:
  check_mode:
    support: full
    details: Reports which images would be pulled; pulls nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: An image whose tags all point at the bundle's image ID is not pulled again.
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.image_load
  - module: fleet.images.bundle_info
"""

EXAMPLES = r"""
- name: Read the bundle on the controller
  fleet.images.bundle_info:
    path: /media/usb/bundle
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Pull the bundle's images from the site registry
  fleet.images.image_pull:
    images: "{{ bundle.images }}"
    registry: registry.site.example:5000
  throttle: 4
"""

RETURN = r"""
images:
  description:
    - One item per entry of O(images), in that order (the collection's one per-image result shape).
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The entry's first reference.
      type: str
      sample: nginx:1.25
    references:
      description: Every reference of the entry.
      type: list
      elements: str
      sample: [nginx:1.25]
    image_id:
      description: The image ID on the engine (the bundle's).
      type: str
      sample: sha256:3f1e6c2b9d0a4e8f7c6b5a493827161504f3e2d1c0b9a8f7e6d5c4b3a2918070
    action:
      description:
        - C(pulled) (pulled from the site registry, then tagged as the bundle names it), C(tagged) (already on the
          host under another name, only the missing tags set) or C(unchanged) (every tag already names the bundle's
          image, or an image of another platform left out by O(platform_mismatch=skip); not called C(skipped), which
          Ansible reads as "the task was skipped").
      type: str
      sample: pulled
    bytes:
      description:
        - Layer bytes the engine downloaded for the image; 0 when tagged or unchanged. In check mode, the size the
          bundle records for the image (its layer blobs, or its tarball for a version 1 entry).
      type: int
      sample: 5239871
    source:
      description: The name pulled from the site registry (action C(pulled) only).
      type: str
      sample: registry.site.example:5000/library/nginx:1.25
    tags:
      description: The tags set (actions C(pulled) and C(tagged)).
      type: list
      elements: str
      sample: [nginx:1.25]
    reason:
      description: Why the image was left out; only for an image of another platform (O(platform_mismatch=skip)).
      type: str
      sample: >-
        skipped: app:1 is built for linux/arm64 and the Docker Engine of host node1 (unix:///var/run/docker.sock) runs
        linux/amd64 (platform_mismatch: skip)
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:3f1e6c2b9d0a4e8f7c6b5a493827161504f3e2d1c0b9a8f7e6d5c4b3a2918070
      action: pulled
      bytes: 5239871
      source: registry.site.example:5000/library/nginx:1.25
      tags: [nginx:1.25]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.registry_pull import run_module


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            images=dict(type="list", elements="dict", required=True),
            registry=dict(type="str", required=True),
            mirror_namespace=dict(type="bool", default=False),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            platform_mismatch=dict(type="str", choices=["fail", "skip", "load"], default="fail"),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
