#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_sdk_info
short_description: Tell whether the Python that runs modules on a host can use the Docker SDK for Python
version_added: 0.1.0
description:
  - Reports the interpreter that runs modules on the host and whether it imports the Docker SDK for Python
    (C(docker)) and C(requests), which every other module of this collection that talks to an engine needs,
    or the packages given in O(packages).
  - Never fails for a missing SDK; it says so in RV(usable) and RV(error). One module run answers what would
    otherwise take fact gathering and a command, which matters on reruns across a fleet.
  - Talks to no Docker Engine. The C(fleet.images.offline_images) role uses it to decide which hosts need the SDK
    installed from a bundle's wheels.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  packages:
    description:
      - The Python packages (import names) that must import for RV(usable).
      - The default is what this collection's engine modules need.
    type: list
    elements: str
    default: [docker, requests]
attributes:
  check_mode:
    support: full
    details: Reads only.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Ask the host's Python about the Docker SDK
  fleet.images.docker_sdk_info:
  register: sdk

- name: Say what is missing
  ansible.builtin.debug:
    msg: "{{ sdk.python }} cannot use the Docker SDK: {{ sdk.error }}"
  when: not sdk.usable
"""

RETURN = r"""
python:
  description: The interpreter that ran the module (the host's module interpreter).
  returned: always
  type: str
  sample: /usr/bin/python3.11
python_version:
  description: Its version.
  returned: always
  type: str
  sample: 3.11.2
versions:
  description: Each package's version (C(unknown) when it has no C(__version__)), or null when it cannot be imported.
  returned: always
  type: dict
  sample: {docker: 5.0.3, requests: 2.28.1}
usable:
  description: Whether every package in O(packages) imports.
  returned: always
  type: bool
error:
  description: The last line of each failed import (empty when RV(usable)).
  returned: always
  type: str
  sample: "docker: No module named 'docker'"
"""

import importlib
import platform
import sys

from ansible.module_utils.basic import AnsibleModule


def import_versions(names):
    """{name: version or None} and the import errors, one line per package that does not import."""
    versions, errors = {}, []
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken install raises more than ImportError; report it, never fail
            versions[name] = None
            message = str(exc).strip() or type(exc).__name__
            errors.append("%s: %s" % (name, message.splitlines()[-1]))
        else:
            versions[name] = getattr(module, "__version__", "unknown")
    return versions, errors


def main():
    module = AnsibleModule(
        argument_spec=dict(packages=dict(type="list", elements="str", default=["docker", "requests"])),
        supports_check_mode=True,
    )
    versions, errors = import_versions(module.params["packages"])
    module.exit_json(
        changed=False,
        python=sys.executable,
        python_version=platform.python_version(),
        versions=versions,
        usable=not errors,
        error="; ".join(errors),
    )


if __name__ == "__main__":
    main()
