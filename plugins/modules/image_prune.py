#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_prune
short_description: Remove the images a host no longer needs, keeping every image in use, the bundle's and a retention
version_added: 0.1.0
description:
  - Looks at every image of the engine (one item per image ID, with all its tags) and removes those no rule keeps.
  - "An image is kept, for the first reason that applies: a container (running or stopped) uses it, by image ID, also
    when the container names it by a tag that has since moved; it is an image of a bundle the host is meant to hold
    (O(keep_images), O(keep_bundles); the identity rule of M(fleet.images.image_load): config digest, manifest digest,
    recorded image ID or config fingerprint); O(keep_references) names it; it is the parent of a kept image; one of its
    repositories is outside O(repositories); it is untagged and O(dangling=false); it is one of the O(keep_newest) newest
    images of one of its repositories; it was created less than O(keep_newer_than) ago."
  - "Newest and newer go by the image's creation time, as C(docker image prune --filter until=) does."
  - Removal never forces. Each tag is removed as C(docker rmi NAME) removes it; the engine removes untagged parents as
    it always does. When a container starts using an image between the listing and the removal, the engine refuses
    (HTTP 409) and the image is then reported kept, with the engine's reason; any tag already taken off it is put back.
  - Bytes freed count each layer (as the engine stores it) that no remaining image uses, once, for the first removed
    image that has it.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
options:
  keep_images:
    description:
      - Images the host is meant to hold, as a bundle's manifest records them (the C(images) list
        M(fleet.images.bundle_info) returns, as it is). Format versions 1 and 2.
      - Each entry must record an identity (C(image_id), C(config_digest), C(manifest_digest) or C(config_fingerprint));
        an entry without one is refused, since it would protect nothing.
    type: list
    elements: dict
    default: []
  keep_bundles:
    description:
      - Bundle directories on the host where the module runs; every image of each is kept, as with O(keep_images).
    type: list
    elements: path
    default: []
  keep_references:
    description:
      - Image references (C(name:tag) or C(name@sha256:...)) whose images are kept.
    type: list
    elements: str
    default: []
  repositories:
    description:
      - Shell patterns (C(app), C(team/*), C(registry.site.example:5000/*)) of the repositories whose images may be removed,
        matched against the names the engine lists (C(nginx), not C(docker.io/library/nginx)).
      - An image with a tag in any other repository is kept.
    type: list
    elements: str
    default: ["*"]
  dangling:
    description:
      - Whether untagged images (no tag and no digest; C(<none>:<none>) in C(docker images)) may be removed.
    type: bool
    default: true
  keep_newest:
    description:
      - Keep the newest this many images of each repository (by creation time), with all their tags. V(0) keeps none for this reason.
    type: int
    default: 0
  keep_newer_than:
    description:
      - Keep every image created less than this long ago, such as V(36h), V(7d) or V(2w) (units s, m, h, d, w; no unit is seconds).
    type: str
attributes:
  check_mode:
    support: full
    details: Reports the same items and bytes freed as a real run would, and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds nothing more to remove and reports C(changed=false).
author:
  - fleet.images contributors (!UNKNOWN)
notes:
  - Talks to the engine only; it never reads or changes containers, volumes or the build cache.
seealso:
  - module: fleet.images.image_load
  - module: fleet.images.bundle_info
  - name: docker image prune
    description: The command this module replaces, with the keeps it cannot express.
    link: https://docs.docker.com/reference/cli/docker/image/prune/
"""

EXAMPLES = r"""
- name: See what would go (check mode), keeping the bundle's images and the two newest of each repository
  fleet.images.image_prune:
    keep_images: "{{ offline_images_bundle_info.images }}"
    keep_newest: 2
  check_mode: true

- name: Remove the team's images older than a week that nothing uses
  fleet.images.image_prune:
    repositories: ["registry.site.example:5000/team/*"]
    keep_newer_than: 7d
    dangling: false
"""

RETURN = r"""
images:
  description: One item per image of the engine, by first name (untagged images last); the same items in check mode as in a real run.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The image's first tag (or digest reference); its image ID when it has neither.
      type: str
      sample: app:1
    references:
      description: Every tag and digest reference of the image.
      type: list
      elements: str
      sample: ["app:1", "app:latest"]
    image_id:
      description: The image ID.
      type: str
      sample: sha256:3f1e0a4b...
    action:
      description: V(removed) (in check mode, would be removed) or V(kept).
      type: str
      sample: removed
    bytes:
      description: Image bytes moved for this image; always V(0) (nothing is moved; see RV(images[].freed)).
      type: int
      sample: 0
    reason:
      description: Why the image is kept (a container using it, the bundle, the retention, the engine's refusal); null when removed.
      type: str
      sample: in use by container web (stopped)
    freed:
      description: Bytes on the engine's disk freed by removing this image (its layers no remaining image uses); 0 when kept.
      type: int
      sample: 7340032
    size:
      description: The image's size as the engine reports it (all its layers, shared ones included).
      type: int
      sample: 7340032
  sample: [{"reference": "app:1", "references": ["app:1"], "image_id": "sha256:3f1e...", "action": "removed", "bytes": 0,
            "reason": null, "freed": 7340032, "size": 7340032}]
bytes_freed:
  description: Bytes freed on the engine's disk by the removals (in check mode, that would be freed).
  returned: always
  type: int
  sample: 7340032
msg:
  description: One line saying how many images went, the bytes freed, and how many stayed.
  returned: always
  type: str
  sample: removed 1 image(s), 7.00 MB freed; kept 4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.prune_engine import run_module


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            keep_images=dict(type="list", elements="dict", default=[]),
            keep_bundles=dict(type="list", elements="path", default=[]),
            keep_references=dict(type="list", elements="str", default=[]),
            repositories=dict(type="list", elements="str", default=["*"]),
            dangling=dict(type="bool", default=True),
            keep_newest=dict(type="int", default=0),
            keep_newer_than=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
