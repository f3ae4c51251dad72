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
pulled:
  description: Images pulled (or, in check mode, that would be pulled).
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The bundle's reference.
      type: str
    source:
      description: The name pulled from the site registry.
      type: str
    image_id:
      description: The image ID.
      type: str
  sample: [{"reference": "nginx:1.25", "source": "registry.site.example:5000/library/nginx:1.25", "image_id": "sha256:3f1e..."}]
tagged:
  description: Images already on the host under another name, given the bundle's missing tags without a pull.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The bundle's reference.
      type: str
    image_id:
      description: The image ID.
      type: str
    tags:
      description: The tags set.
      type: list
      elements: str
present:
  description:
    - Images already on the host with the bundle's identity under every recorded tag.
    - Not called C(skipped), which Ansible reads as "the task was skipped".
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The bundle's reference.
      type: str
    image_id:
      description: The image ID.
      type: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils import image_archive, image_transfer, registry
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerConnectionError,
    build_client,
    docker_error_message,
    docker_host_from,
)

try:
    from docker.errors import DockerException, ImageNotFound
except ImportError:
    DockerException = ImageNotFound = Exception


def entry_problem(image):
    """What is wrong with one `images` entry, or None."""
    references, tags, image_id = image.get("references"), image.get("tags"), image.get("image_id")
    if not isinstance(references, list) or not references or not all(isinstance(item, str) for item in references):
        return "needs references: a non-empty list of image references (as bundle_info returns them)"
    if not isinstance(tags, list) or not all(isinstance(item, str) and "@" not in item for item in tags):
        return "%s needs tags: a list of name:tag references" % references[0]
    if not isinstance(image_id, str) or not image_id.startswith("sha256:"):
        return "%s needs image_id: the sha256:... ID the bundle records" % references[0]
    return None


def inspect_or_none(client, name):
    try:
        return client.api.inspect_image(name)
    except ImageNotFound:
        return None


def pull_one(client, image, site_registry, mirror_namespace, auth, check_mode, engine_name="the engine"):
    """Get one image onto the engine; returns ("pulled" | "tagged" | "present", record).

    Whether the image is already there is decided as image_load decides it (image_archive.plan_load:
    the recorded tags resolve to the image's identity), so both strategies agree on "present".
    """
    reference = image["references"][0]
    identity = image_archive.identity_digests(image)
    action, present_id, tags_to_set = image_archive.plan_load(image, lambda name: inspect_or_none(client, name))
    if action == "present":
        return "present", {"reference": reference, "image_id": present_id}
    if action == "tag":
        if not check_mode:
            for bundle_tag in tags_to_set:
                client.api.tag(present_id, *image_ref.repository_and_tag(bundle_tag))
        return "tagged", {"reference": reference, "image_id": present_id, "tags": tags_to_set}
    # The same name the registry role pushed the image under (module_utils/registry.py).
    tag, source = registry.target_reference(reference, site_registry, mirror_namespace)[1:]
    record = {"reference": reference, "source": source, "image_id": image["image_id"]}
    if check_mode:
        return "pulled", record
    # streamed, so the registry's own error and an engine that stops half way are both reported as such
    image_transfer.pull_image(client, source, None, engine_name, auth=auth)
    attrs = inspect_or_none(client, source)
    got = attrs["Id"] if attrs else None
    if got not in identity:
        # Leave nothing that looks like the bundle's image behind.
        if attrs:
            client.api.remove_image(source)
        raise ValueError("the site registry served %s as %s, but the bundle holds %s for %s: was another image pushed under "
                         "that name? Push the bundle again (registry role)." % (source, got, " or ".join(identity), reference))
    for bundle_tag in tags_to_set:
        client.api.tag(got, *image_ref.repository_and_tag(bundle_tag))
    if source not in tags_to_set:
        client.api.remove_image(source, noprune=True)
    record["image_id"] = got
    return "pulled", record


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            images=dict(type="list", elements="dict", required=True),
            registry=dict(type="str", required=True),
            mirror_namespace=dict(type="bool", default=False),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    params = module.params
    auth = {"username": params["username"], "password": params["password"]} if params["username"] else None
    try:
        client = build_client(params)
    except DockerConnectionError as exc:
        module.fail_json(msg=str(exc))
    result = {"pulled": [], "tagged": [], "present": []}
    for index, image in enumerate(params["images"]):
        problem = entry_problem(image)
        if problem:
            module.fail_json(msg="images[%d]: %s" % (index, problem))
    for image in params["images"]:
        try:
            outcome, record = pull_one(client, image, params["registry"], params["mirror_namespace"], auth, module.check_mode,
                                       docker_host_from(params))
        except (ValueError, registry.RegistryConfigError, image_transfer.TransferError) as exc:
            module.fail_json(msg=str(exc), **result)
        except DockerException as exc:
            module.fail_json(msg=docker_error_message(exc, "pulling %s from %s" % (image["references"][0], params["registry"])),
                             exception=traceback.format_exc(), **result)
        result[outcome].append(record)
    module.exit_json(changed=bool(result["pulled"] or result["tagged"]), **result)


if __name__ == "__main__":
    main()
