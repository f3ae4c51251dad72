#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_push
short_description: Put a version 2 bundle's images into a registry over its HTTP API, with no Docker Engine
version_added: 0.1.0
description:
  - Puts the images of a version 2 bundle (content-addressed, C(blobs/sha256/)) into a registry through the registry's
    HTTP API (C(/v2/)). No Docker Engine is involved (nothing is loaded, nothing is pushed from an engine).
    M(fleet.images.image_push) is the module for images that are in an engine (and for version 1 bundles, after
    M(fleet.images.image_load)).
  - Names in the registry are those M(fleet.images.image_push) uses (the source registry's host dropped; with
    O(mirror_namespace=true) Docker Hub's official images under C(library/)), one tag per reference of each image.
  - "The registry is asked first (C(HEAD)): a tag that already names the image's manifest is left alone and nothing
    else is asked for that image; otherwise each blob (config, layers) the target repository lacks is mounted from
    another repository of the registry that holds it, or uploaded from O(bundle)'s C(blobs/sha256/) file; then the
    manifest is put under each tag."
  - Every upload is verified while it streams; a file whose bytes are not the digest it is named after is refused
    and its upload cancelled, so the registry never holds a damaged blob. A cut-off upload leaves nothing in the
    registry; the next run uploads that blob again.
  - "Refused before anything is uploaded: an image whose blobs neither the registry nor O(bundle) holds (with the
    files named), and, for a differential bundle (C(requires) in bundle.json), a blob that only the base bundle
    carries and the registry lacks (push the base bundle first)."
  - O(bundle) may be a partial copy of the bundle (the registry role's staging directory), holding bundle.json and the
    files the upload reads. Run the module in check mode first to learn them (RV(needed_files)).
extends_documentation_fragment:
  - fleet.images.docker.attributes
attributes:
  check_mode:
    support: full
    details: Asks the registry what it lacks and reports what would be sent (RV(needed_files), RV(images)); sends
      nothing. The files need not be in O(bundle) yet.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run asks one C(HEAD) per tag and sends nothing.
options:
  bundle:
    description:
      - Directory holding the bundle's C(bundle.json) (format version 2) and the blobs to upload, on the host the
        module runs on.
    type: path
    required: true
  images:
    description:
      - References of the bundle's images to put into the registry (as the bundle names them). Empty means every image.
    type: list
    elements: str
    default: []
  registry:
    description:
      - The registry, C(host:port), as this host reaches it (the registry role uses the push endpoint
        C(127.0.0.1:5001) on the registry host).
    type: str
    required: true
  mirror_namespace:
    description:
      - Put Docker Hub's official images under C(library/), for hosts that use the registry as a C(registry-mirrors) entry.
    type: bool
    default: false
  username:
    description:
      - User for basic authentication.
    type: str
  password:
    description:
      - Password of O(username). Never in a message or result.
    type: str
  tls_ca:
    description:
      - CA certificate (PEM) to verify the registry's certificate with; defaults to the system trust store.
    type: path
  insecure:
    description:
      - The registry serves plain HTTP.
    type: bool
    default: false
seealso:
  - module: fleet.images.image_push
  - module: fleet.images.image_save
author:
  - fleet.images contributors (!UNKNOWN)
requirements:
  - requests (Python) on the host the module runs on
"""

EXAMPLES = r"""
- name: Ask the site registry which files of the bundle it lacks
  fleet.images.bundle_push:
    bundle: /var/lib/fleet-images/staging/bundle
    registry: 127.0.0.1:5001
    mirror_namespace: true
    username: fleet-push
    password: "{{ registry_push_password }}"
    tls_ca: /etc/fleet-images/registry/registry/ca.crt
  check_mode: true
  register: probe

- name: Upload them (after staging probe.needed_files)
  fleet.images.bundle_push:
    bundle: /var/lib/fleet-images/staging/bundle
    registry: 127.0.0.1:5001
    mirror_namespace: true
    username: fleet-push
    password: "{{ registry_push_password }}"
    tls_ca: /etc/fleet-images/registry/registry/ca.crt
  when: probe is changed
"""

RETURN = r"""
registry:
  description: The registry, as host:port.
  returned: success
  type: str
  sample: 127.0.0.1:5001
needed_files:
  description:
    - Bundle-relative files this run reads (in check mode, would read) from O(bundle) because no repository of the
      registry holds them; what the registry role stages on the registry host.
  returned: success
  type: list
  elements: str
  sample: [blobs/sha256/6f0e2c3a9d1b4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab]
images:
  description: One item per image, in the bundle's order (contract C2 of the collection's result shape).
  returned: success
  type: list
  elements: dict
  contains:
    reference:
      description: The reference as asked (the image's first reference when every image was asked).
      type: str
      sample: nginx:1.25
    references:
      description: Every reference of the image; each became a tag in the registry.
      type: list
      elements: str
      sample: [nginx:1.25]
    image_id:
      description: The image ID the bundle records.
      type: str
      sample: sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6
    action:
      description: C(pushed) (blobs sent), C(tagged) (the registry held the manifest; only tags put) or C(unchanged).
      type: str
      sample: pushed
    bytes:
      description: Bytes uploaded for the image (blobs and manifests); 0 when unchanged. In check mode, what would be.
      type: int
      sample: 5239871
    digest:
      description: The image's manifest digest (as in the bundle and, afterwards, in the registry).
      type: str
      sample: sha256:e9ad1b8b1e5a1dc5bb5f5c42e1a8e0b6b0c56f7bfbf3bb1de5e08f6e7d0f1d2c
    targets:
      description: The image's names in the registry, C(registry/repository:tag).
      type: list
      elements: str
      sample: [127.0.0.1:5001/library/nginx:1.25]
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6
      action: pushed
      bytes: 5239871
      digest: sha256:e9ad1b8b1e5a1dc5bb5f5c42e1a8e0b6b0c56f7bfbf3bb1de5e08f6e7d0f1d2c
      targets: [127.0.0.1:5001/library/nginx:1.25]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.registry import RegistryConfigError
from ansible_collections.fleet.images.plugins.module_utils.registry_api import RegistryApiError, api_session
from ansible_collections.fleet.images.plugins.module_utils.registry_blobs import BlobError
from ansible_collections.fleet.images.plugins.module_utils.registry_ingest import IngestError, ingest_bundle


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bundle=dict(type="path", required=True),
            images=dict(type="list", elements="str", default=[]),
            registry=dict(type="str", required=True),
            mirror_namespace=dict(type="bool", default=False),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            tls_ca=dict(type="path"),
            insecure=dict(type="bool", default=False),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        session = api_session(params["tls_ca"], params["username"], params["password"])
        result = ingest_bundle(session, params, module.check_mode)
    except (BundleError, RegistryConfigError, RegistryApiError, BlobError, IngestError, OSError) as exc:
        module.fail_json(msg=str(exc), registry=params["registry"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
