#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_push
short_description: Push local images into a registry under the names clients use, skipping those it already holds
version_added: 0.1.0
description:
  - Pushes images that are in the host's Docker Engine into a registry (typically the site registry run by
    M(fleet.images.registry_deploy), after M(fleet.images.image_load) put them in the engine).
  - "Names in the registry: the source registry's host is dropped (V(registry.example.com/team/app:2.1) becomes
    C(REGISTRY/team/app:2.1)); Docker Hub images keep their path (V(bitnami/redis:7) becomes C(REGISTRY/bitnami/redis:7),
    V(nginx:1.25) becomes C(REGISTRY/nginx:1.25))."
  - With O(mirror_namespace=true), Docker Hub's official images go under C(library/) (C(REGISTRY/library/nginx:1.25)),
    the path a Docker Engine asks a C(registry-mirrors) entry for, so hosts using the registry as a mirror keep
    pulling V(nginx:1.25) unchanged.
  - An image is not pushed again when the registry already holds it under that name. The module asks the registry
    (C(HEAD /v2/<name>/manifests/<tag>)) for the manifest digest and compares it with the digests the engine recorded
    for that registry (C(RepoDigests)); when the engine has no record (an image freshly loaded from a bundle), it
    compares the manifest's config digest with the image ID.
  - Logs in through the engine (the Docker SDK) with O(username) and O(password); the credentials are not written to
    any file on the host.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
attributes:
  check_mode:
    support: full
    details: Asks the registry which images it holds and reports what would be pushed; tags and pushes nothing.
  diff_mode:
    support: full
    details: Lists the target names the registry holds before and after.
  idempotent:
    support: full
    details:
      - Against a registry that wants a bearer token instead of basic authentication, the module cannot ask it
        which images it holds and pushes every time (the engine then finds the layers present and sends none).
options:
  images:
    description:
      - References of images in the engine, as they were pulled or loaded (V(nginx:1.25),
        V(registry.example.com/team/app:2.1)). A reference needs a tag.
    type: list
    elements: str
    required: true
  registry:
    description:
      - The registry as clients name it, C(host:port) (the same string as in C(/etc/docker/certs.d/HOST:PORT)).
      - The engine must be able to reach and trust it under that name.
    type: str
    required: true
  mirror_namespace:
    description:
      - Push Docker Hub's official images under C(library/), for hosts that use the registry as a C(registry-mirrors) entry.
    type: bool
    default: false
  username:
    description:
      - User to log in with (basic authentication, as the C(htpasswd) users of M(fleet.images.registry_deploy)).
    type: str
  password:
    description:
      - Password of O(username).
    type: str
  tls_ca:
    description:
      - CA certificate (PEM) the module verifies the registry's certificate with when it asks which images it holds.
      - Defaults to C(/etc/docker/certs.d/<registry>/ca.crt) when that file exists, otherwise the system trust store.
    type: path
  insecure:
    description:
      - The registry serves plain HTTP. The engine must list it in C(insecure-registries).
    type: bool
    default: false
  force:
    description:
      - Push every image without asking the registry first.
    type: bool
    default: false
seealso:
  - module: fleet.images.registry_deploy
  - module: fleet.images.image_load
  - module: community.docker.docker_image_push
author:
  - fleet.images contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Push the bundle's images into the site registry, Docker Hub images under library/ for mirror use
  fleet.images.image_push:
    images: [nginx:1.25, registry.example.com/team/app:2.1]
    registry: registry.site.example:5000
    mirror_namespace: true
    username: ci
    password: "{{ vault_registry_ci_password }}"
"""

RETURN = r"""
registry:
  description: The registry, as host:port.
  returned: success
  type: str
  sample: registry.site.example:5000
images:
  description: One item per entry of O(images), in that order (the collection's one per-image result shape).
  returned: success
  type: list
  elements: dict
  contains:
    reference:
      description: The reference as asked (the image in the engine).
      type: str
      sample: nginx:1.25
    references:
      description: The same reference, as a list (the shape every image module returns).
      type: list
      elements: str
      sample: [nginx:1.25]
    image_id:
      description: The image ID in the engine.
      type: str
      sample: sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6
    action:
      description: C(pushed) (or, in check mode, would be pushed) or C(unchanged) (the registry already held it under its target name).
      type: str
      sample: pushed
    bytes:
      description:
        - Layer bytes the engine reported uploading (0 for layers the registry already held, and when unchanged).
        - In check mode, the image's size in the engine (at most that would move).
      type: int
      sample: 5239871
    target:
      description: The image's name in the registry.
      type: str
      sample: registry.site.example:5000/library/nginx:1.25
    digest:
      description: The manifest digest the registry holds under the target name (null in check mode for an image to push).
      type: str
      sample: sha256:e9ad1b8b1e5a1dc5bb5f5c42e1a8e0b6b0c56f7bfbf3bb1de5e08f6e7d0f1d2c
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6
      action: pushed
      bytes: 5239871
      target: registry.site.example:5000/library/nginx:1.25
      digest: sha256:e9ad1b8b1e5a1dc5bb5f5c42e1a8e0b6b0c56f7bfbf3bb1de5e08f6e7d0f1d2c
diff:
  description: With C(--diff), the target names the registry holds before and after.
  returned: success and diff mode
  type: dict
  contains:
    before:
      description: The target names present before the push.
      type: dict
      sample: {"present": []}
    after:
      description: The target names present after the push.
      type: dict
      sample: {"present": ["registry.site.example:5000/library/nginx:1.25"]}
  sample: {"before": {"present": []}, "after": {"present": ["registry.site.example:5000/library/nginx:1.25"]}}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    APIError, DockerException, RequestException, connect, docker_error_message,
)
from ansible_collections.fleet.images.plugins.module_utils.registry import RegistryConfigError
from ansible_collections.fleet.images.plugins.module_utils.registry_push import ImagePushError, push_images


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            images=dict(type="list", elements="str", required=True),
            registry=dict(type="str", required=True),
            mirror_namespace=dict(type="bool", default=False),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            tls_ca=dict(type="path"),
            insecure=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    client = connect(module)
    try:
        result = push_images(client, module.params, module.check_mode)
    except (ImagePushError, RegistryConfigError) as exc:
        module.fail_json(msg=str(exc), registry=module.params["registry"])
    except (APIError, DockerException, RequestException) as exc:
        module.fail_json(msg=docker_error_message(exc, "pushing images to %s" % module.params["registry"]), exception=traceback.format_exc())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
