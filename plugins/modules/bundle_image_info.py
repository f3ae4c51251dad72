#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_image_info
short_description: Tell which of a bundle's images a Docker Engine already holds
version_added: 0.1.0
description:
  - For each bundle image, says what M(fleet.images.image_load) would do with it on this engine, asking the engine
    only, by the same identity rule (see C(docs/bundle-format.md)) - V(present) (nothing to do), V(tag) (the image
    is there, some recorded tags are missing) or V(load) (its tarball is needed).
  - Needs no bundle directory on the host and reads no tarball, so it can run before anything is copied; the
    C(fleet.images.offline_images) role uses it to send each host only the tarballs it lacks.
  - Changes nothing.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
options:
  images:
    description:
      - The images, as the bundle's manifest records them (the C(images) list M(fleet.images.bundle_info) returns,
        as it is; other keys are ignored).
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    support: full
    details: Reads only; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.bundle_info
  - module: fleet.images.image_load
"""

EXAMPLES = r"""
- name: Read the bundle on the controller
  fleet.images.bundle_info:
    path: /media/usb/bundle
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Ask each host's engine which images it lacks
  fleet.images.bundle_image_info:
    images: "{{ bundle.images }}"
  register: wanted

- name: Show the tarballs each host needs
  ansible.builtin.debug:
    msg: "{{ wanted.load_files }}"
"""

RETURN = r"""
images:
  description: One entry per image, in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    references:
      description: The references the bundle records for it.
      type: list
      elements: str
    tags:
      description: The tags it must carry.
      type: list
      elements: str
    file:
      description: Its tarball, relative to the bundle directory.
      type: str
    action:
      description: V(present), V(tag) or V(load).
      type: str
    id:
      description: Its image ID in this engine; null when it must be loaded.
      type: str
    tags_missing:
      description: The recorded tags it lacks (all of them for V(load)).
      type: list
      elements: str
load_files:
  description: The tarballs this engine needs, each once.
  returned: success
  type: list
  elements: str
  sample: [images/nginx_1.25-1a2b3c4d5e6f.tar.zst]
tag_files:
  description: The tarballs of images that are present but lack tags (nothing to copy; image_load only tags them).
  returned: success
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerException,
    RequestException,
    connect,
    docker_error_message,
    docker_host_from,
)
from ansible_collections.fleet.images.plugins.module_utils.image_transfer import plan_entries


def files_with(plans, action):
    """The distinct files of the plans with `action`, in order."""
    return list(dict.fromkeys(plan["file"] for plan in plans if plan["action"] == action))


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(images=dict(type="list", elements="dict", required=True)),
        supports_check_mode=True,
    )
    entries = module.params["images"]
    try:
        for index, entry in enumerate(entries):
            bundle.validate_entry(entry, "images[%d]" % index)
    except BundleError as exc:
        module.fail_json(msg="%s (give the images list that fleet.images.bundle_info returns)" % exc)
    client = connect(module)
    try:
        plans = plan_entries(client, docker_host_from(module.params), entries)
    except (DockerException, RequestException) as exc:
        module.fail_json(msg=docker_error_message(exc, "asking the engine about the bundle's images"), exception=traceback.format_exc())
    module.exit_json(changed=False, images=plans, load_files=files_with(plans, "load"), tag_files=files_with(plans, "tag"))


if __name__ == "__main__":
    main()
