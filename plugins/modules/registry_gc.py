#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_gc
short_description: Remember the bundles brought into the site registry, delete what none of the last ones holds, reclaim the disk
version_added: 0.1.0
description:
  - Runs on the registry host, after the bundle's images were pushed. Asks the push endpoint for the manifest digest of
    each image of O(references) (under the name the registry role pushed it as) and records the bundle as the newest in
    O(record), a root-only JSON file written atomically. Bringing the same bundle up again moves it to the end.
  - With O(delete=true), deletes through the push endpoint's API every manifest that a recorded bundle older than the
    O(keep_bundles) newest pushed and none of those holds (in the same repository), then runs distribution's
    C(registry garbage-collect) in a one-off container of the push endpoint's image, with its storage and configuration,
    while the push endpoint is stopped. The read-only pull endpoint keeps serving all along; every kept image stays
    pullable, since the collection keeps every blob a remaining manifest references. The push endpoint is started again
    whatever happens, and the module waits until it answers.
  - Only manifests a recorded bundle pushed are deleted; images pushed by hand are never touched. A name that a dropped
    bundle pushed and a kept bundle pushed again with the same image stays.
  - Deleting needs C(storage.delete.enabled) on the push endpoint (the registry role sets it when C(registry_gc) is true).
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
options:
  references:
    description:
      - The references of the bundle just pushed, as the registry role pushed them (for example V(nginx:1.25)).
    type: list
    elements: str
    required: true
  registry:
    description:
      - The push endpoint, as C(host:port) (the registry role's is V(127.0.0.1:5001)). Always HTTPS; the certificate's
        chain is verified with O(tls_ca), not its host name (it names the names clients use).
    type: str
    required: true
  username:
    description: A user of the push endpoint.
    type: str
    required: true
  password:
    description: The password of O(username).
    type: str
    required: true
  tls_ca:
    description: The CA certificate (PEM) that signed the push endpoint's certificate; the system trust store when not set.
    type: path
  mirror_namespace:
    description: Whether Docker Hub's official images were pushed under C(library/) (the registry role's C(registry_mirror_namespace)).
    type: bool
    default: false
  record:
    description: The record of the bundles brought up, on the registry host.
    type: path
    required: true
  keep_bundles:
    description: How many of the newest recorded bundles (the one just pushed included) keep their images.
    type: int
    default: 3
  delete:
    description: Delete the manifests no kept bundle holds and collect garbage. V(false) only records the bundle.
    type: bool
    default: false
  push_container:
    description: The name of the push endpoint's container on this host's engine (stopped during the collection).
    type: str
    default: registry-push
attributes:
  check_mode:
    support: full
    details: Reports which manifests would be deleted; records, deletes and collects nothing; RV(reclaimed_bytes) is 0.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A rerun with the same bundle finds nothing to delete, does not stop the push endpoint and reports no change.
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.image_push
  - module: fleet.images.registry_deploy
  - name: distribution's garbage collection
    description: What C(registry garbage-collect) removes, and why nothing may be pushed meanwhile.
    link: https://distribution.github.io/distribution/about/garbage-collection/
"""

EXAMPLES = r"""
- name: Remember this bundle; delete what none of the last three bundles holds
  fleet.images.registry_gc:
    references: ["nginx:1.25", "team/app:2.1"]
    registry: 127.0.0.1:5001
    username: fleet-push
    password: "{{ push_password }}"
    tls_ca: /etc/fleet-images/registry/registry/pki/ca.crt
    mirror_namespace: true
    record: /etc/fleet-images/registry/registry/bundles.json
    keep_bundles: 3
    delete: true
  no_log: true
"""

RETURN = r"""
images:
  description: The manifests deleted (in check mode, that would be), then those of the bundle just pushed, which stay.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The name in the registry (C(repository:tag)).
      type: str
      sample: library/nginx:1.24
    references:
      description: The same name, as a list.
      type: list
      elements: str
      sample: ["library/nginx:1.24"]
    image_id:
      description: Always null (the registry knows manifests, not engines' image IDs).
      type: str
      sample: null
    action:
      description: V(removed) or V(kept).
      type: str
      sample: removed
    bytes:
      description: Image bytes moved; always V(0).
      type: int
      sample: 0
    digest:
      description: The manifest digest.
      type: str
      sample: sha256:0c5a3f...
  sample: [{"reference": "library/nginx:1.24", "references": ["library/nginx:1.24"], "image_id": null, "action": "removed",
            "bytes": 0, "digest": "sha256:0c5a3f..."}]
reclaimed_bytes:
  description: Disk bytes the collection freed in the registry's storage directory (du before minus du after); 0 when none ran.
  returned: always
  type: int
  sample: 31457280
bundles:
  description: The bundles the record remembers after this run, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The bundle's identity (digest of its names and manifest digests).
      type: str
      sample: sha256:9b1f...
    at:
      description: When it was first recorded (UTC).
      type: str
      sample: "2026-12-03T18:00:00Z"
    images:
      description: The names it pushed.
      type: list
      elements: str
      sample: ["library/nginx:1.25"]
  sample: [{"id": "sha256:9b1f...", "at": "2026-12-03T18:00:00Z", "images": ["library/nginx:1.25"]}]
msg:
  description: One line with the manifests deleted, the bytes reclaimed and the bundles remembered.
  returned: always
  type: str
  sample: deleted 1 manifest(s), reclaimed 31457280 bytes; 3 bundle(s) remembered
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.registry_gc import run_module


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            references=dict(type="list", elements="str", required=True),
            registry=dict(type="str", required=True),
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
            tls_ca=dict(type="path"),
            mirror_namespace=dict(type="bool", default=False),
            record=dict(type="path", required=True),
            keep_bundles=dict(type="int", default=3),
            delete=dict(type="bool", default=False),
            push_container=dict(type="str", default="registry-push"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
