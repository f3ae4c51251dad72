#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_trust
short_description: Make Docker trust a registry's CA
version_added: 0.1.0
description:
  - Writes a registry's CA certificate where Docker looks for it, C(CERTS_D/HOST:PORT/ca.crt) (mode 0644,
    directory 0755, owned by root). Docker reads it at each connection to that registry, so no restart is needed.
  - Optionally also writes it into the system trust store's directory (then run C(update-ca-certificates),
    for example from a handler, when RV(system_store_changed) is true).
  - Each file is written atomically and only when its content or mode differs. Needs only Python's standard
    library on the host.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  registry:
    description:
      - The registry's address as clients use it, V(HOST:PORT) (for example V(registry1.site.example:5000)).
    type: str
    required: true
  ca_cert:
    description:
      - The CA certificate, PEM text. Required with O(state=present).
    type: str
  certs_d:
    description:
      - Docker's per-registry certificate directory.
    type: path
    default: /etc/docker/certs.d
  system_store_path:
    description:
      - Also write the CA to this file (for example
        V(/usr/local/share/ca-certificates/site-registry.crt)), or remove it with O(state=absent).
    type: path
  state:
    description:
      - V(present) writes the CA; V(absent) removes C(ca.crt), the registry's directory when it is then empty,
        and the O(system_store_path) file.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.registry_pki
  - module: fleet.images.registry_deploy
"""

EXAMPLES = r"""
- name: Trust the site registry's CA
  fleet.images.registry_trust:
    registry: registry1.site.example:5000
    ca_cert: "{{ lookup('ansible.builtin.file', 'files/site-ca.crt') }}"
"""

RETURN = r"""
path:
  description: The CA file Docker reads.
  returned: always
  type: str
  sample: /etc/docker/certs.d/registry1.site.example:5000/ca.crt
docker_changed:
  description: Whether that file (or its directory) changed.
  returned: always
  type: bool
  sample: true
system_store_changed:
  description: Whether the O(system_store_path) file changed.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.registry_host import DOCKER_CERTS_D, trust_registry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            registry=dict(type="str", required=True),
            ca_cert=dict(type="str"),
            certs_d=dict(type="path", default=DOCKER_CERTS_D),
            system_store_path=dict(type="path"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["ca_cert"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = trust_registry(params["registry"], params["ca_cert"], params["certs_d"], params["system_store_path"],
                                params["state"] == "present", module.check_mode)
    except ValueError as exc:
        module.fail_json(msg="%s: %s" % (params["registry"], exc))
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or params["registry"], exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
