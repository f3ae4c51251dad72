#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_pki_files
short_description: The registry host's side of fleet.images.registry_pki
version_added: 0.2.0
description:
  - Makes the registry's configuration and PKI directories (owned by root, with the given modes), returns the
    current content and mode of the PKI files it is asked to read, and writes the files it is given, each
    atomically (temporary file, fsync, rename) and only when its content or mode differs.
  - Can also return the host's own names (FQDN, short host name, the IPv4 address of its default route's
    interface), which the registry's certificate carries by default.
  - M(fleet.images.registry_pki) runs it, once per run when nothing changes; you rarely call it yourself.
    It needs only the Python standard library on the host.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  directories:
    description:
      - Directories to make (parents first), each a dict with C(path) and C(mode) (octal string).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      mode:
        description: Its mode, for example V(0700).
        type: str
        required: true
  read:
    description:
      - Paths of files whose content and mode to return. A missing file is left out of RV(files).
    type: list
    elements: path
    default: []
  write:
    description:
      - Files to write, each a dict with C(path), C(content) and C(mode).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      content:
        description: Its text. Never logged.
        type: str
        required: true
      mode:
        description: Its mode, for example V(0600).
        type: str
        required: true
  names:
    description:
      - Return the host's own names in RV(names).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reads, and reports what it would make or write.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.registry_pki
"""

EXAMPLES = r"""
- name: Read the registry's PKI files and the host's names
  fleet.images.registry_pki_files:
    directories:
      - {path: /etc/fleet-images/registry/registry, mode: "0755"}
      - {path: /etc/fleet-images/registry/registry/pki, mode: "0700"}
    read: [/etc/fleet-images/registry/registry/pki/ca.crt]
    names: true
  register: pki_files
"""

RETURN = r"""
files:
  description: For each file of O(read) that exists, its content and mode.
  returned: always
  type: dict
  sample: {"/etc/fleet-images/registry/registry/pki/ca.crt": {"content": "-----BEGIN CERTIFICATE-----...", "mode": "0644"}}
made:
  description: The directories made, or whose mode or owner was corrected.
  returned: always
  type: list
  elements: str
written:
  description: The files of O(write) whose content or mode changed.
  returned: always
  type: list
  elements: str
names:
  description: The host's C(fqdn), C(hostname) and C(default_ipv4) (each empty when unknown).
  returned: when O(names=true)
  type: dict
  sample: {"fqdn": "registry1.site.example", "hostname": "registry1", "default_ipv4": "10.0.0.5"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.registry_host import ensure_directory, holds, own_names, read_file, write_file


def octal(module, value, where):
    try:
        return int(value, 8)
    except (TypeError, ValueError):
        module.fail_json(msg="%s: mode %r is not an octal mode such as 0600" % (where, value))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[],
                             options=dict(path=dict(type="path", required=True), mode=dict(type="str", required=True))),
            read=dict(type="list", elements="path", default=[]),
            write=dict(type="list", elements="dict", default=[],
                       options=dict(path=dict(type="path", required=True), content=dict(type="str", required=True, no_log=True),
                                    mode=dict(type="str", required=True))),
            names=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    result = dict(changed=False, files={}, made=[], written=[])
    try:
        for directory in module.params["directories"]:
            if ensure_directory(directory["path"], octal(module, directory["mode"], directory["path"]), module.check_mode):
                result["made"].append(directory["path"])
        for path in module.params["read"]:
            found = read_file(path)
            if found is not None:
                result["files"][path] = found
        for item in module.params["write"]:
            mode = octal(module, item["mode"], item["path"])
            if module.check_mode:
                if not holds(item["path"], item["content"], mode):
                    result["written"].append(item["path"])
            elif write_file(item["path"], item["content"], mode):
                result["written"].append(item["path"])
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "registry PKI", exc.strerror or exc), **result)
    if module.params["names"]:
        result["names"] = own_names()
    result["changed"] = bool(result["made"] or result["written"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
