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
  - Reports the interpreter that runs modules on the host and whether it has the Docker SDK for Python
    (C(docker)) and C(requests), which every other module of this collection that talks to an engine needs,
    or the packages given in O(packages).
  - By default (O(check=find)) it locates each package and reads its installed version without importing it,
    as importing the SDK costs about a fifth of a second of CPU on a small host, paid on every host of every run.
    O(check=import) imports them, which also catches a broken installation (a dependency missing); a module
    that then cannot import the SDK fails with the import error either way.
  - Never fails for a missing SDK; it says so in RV(usable) and RV(error). One module run answers what would
    otherwise take fact gathering and a command, which matters on reruns across a fleet.
  - Talks to no Docker Engine. The C(fleet.images.offline_images) role uses it to decide which hosts need the SDK
    installed from a bundle's wheels.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  packages:
    description:
      - The Python packages (import names) that must be there for RV(usable).
      - The default is what this collection's engine modules need.
    type: list
    elements: str
    default: [docker, requests]
  check:
    description:
      - V(find) locates each package and reads its version from its installed metadata, importing nothing.
      - V(import) imports each package.
    type: str
    choices: [find, import]
    default: find
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
  description: Each package's version (C(unknown) when it has none on record), or null when it is missing or cannot be imported.
  returned: always
  type: dict
  sample: {docker: 5.0.3, requests: 2.28.1}
usable:
  description: Whether every package in O(packages) is there (O(check=find)) or imports (O(check=import)).
  returned: always
  type: bool
error:
  description: For each package missing (or failing to import), one line (empty when RV(usable)).
  returned: always
  type: str
  sample: "docker: No module named 'docker'"
"""

import importlib
import importlib.util
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


def _installed_version(name):
    try:
        from importlib import metadata
    except ImportError:  # Python before 3.8
        return "unknown"
    try:
        return metadata.version(name)
    except Exception:  # no distribution of that name (import name and distribution name differ)
        return "unknown"


def find_versions(names):
    """Like import_versions, but locating each package instead of importing it."""
    versions, errors = {}, []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            spec, reason = None, str(exc).strip() or type(exc).__name__
        else:
            reason = "No module named '%s'" % name
        if spec is None:
            versions[name] = None
            errors.append("%s: %s" % (name, reason))
        else:
            versions[name] = _installed_version(name)
    return versions, errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=["docker", "requests"]),
            check=dict(type="str", choices=["find", "import"], default="find"),
        ),
        supports_check_mode=True,
    )
    probe = find_versions if module.params["check"] == "find" else import_versions
    versions, errors = probe(module.params["packages"])
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
