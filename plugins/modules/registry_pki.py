#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name (plugins/action/registry_pki.py) runs on the controller and runs this
# module on the registry host: once to read the files and the host's names, once more to write what changed.

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_pki
short_description: Keep a registry's own CA and TLS server certificate right, on its host
version_added: 0.1.0
description:
  - Keeps, in a directory of the registry host, an EC P-256 CA key and self-signed CA certificate
    (C(ca.key), C(ca.crt)) and a server key and certificate signed by that CA (C(server.key), C(server.crt))
    for the names and addresses clients use. Keys are mode 0600, certificates 0644, the directory 0700, its
    parent 0755, all owned by root.
  - Keeps every key and certificate that is still right, byte for byte. Makes a new CA certificate when it is
    missing, unreadable, not for the CA key, named differently or within O(renew_days) of its expiry. Issues a
    new server certificate when it is missing, unreadable, not for the server key, not signed by the CA, its
    names differ from the wanted ones, or it expires within O(renew_days). RV(reasons) says why.
  - The cryptography runs on the controller (Python C(cryptography), which ansible-core requires); the registry
    host needs only Python's standard library. With nothing to change, it costs one module run on the host;
    files are written atomically, only those that change.
  - The result carries the CA certificate (public), never a key.
  - The CA for O(docker_trust) is written by the same code as M(fleet.images.registry_trust) and
    M(fleet.images.daemon_config) use for CA trust.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  path:
    description:
      - The PKI directory on the registry host, for example V(/etc/fleet-images/registry/registry/pki).
    type: path
    required: true
  common_name:
    description:
      - The server certificate's common name, the name clients use for the registry.
    type: str
    required: true
  dns_names:
    description:
      - DNS names the server certificate is valid for (subject alternative names). V(localhost) is left out.
    type: list
    elements: str
    default: []
  ip_addresses:
    description:
      - IP addresses the server certificate is valid for.
    type: list
    elements: str
    default: []
  host_dns_names:
    description:
      - Also add the host's FQDN and short host name, as the host reports them, to O(dns_names).
    type: bool
    default: true
  host_ip_address:
    description:
      - Also add the IPv4 address of the host's default route's interface (the first routed interface when
        it has no default route) to O(ip_addresses).
    type: bool
    default: true
  ca_common_name:
    description:
      - The CA certificate's common name.
    type: str
    default: fleet.images registry CA
  ca_valid_days:
    description:
      - Validity of a new CA certificate, in days.
    type: int
    default: 3650
  cert_valid_days:
    description:
      - Validity of a new server certificate, in days.
    type: int
    default: 365
  renew_days:
    description:
      - Renew a certificate that expires within this many days.
    type: int
    default: 30
  docker_trust:
    description:
      - Also install the CA where the host's own Docker looks for it for this registry address, V(HOST:PORT)
        (C(CERTS_D/HOST:PORT/ca.crt), 0644), as the registry host pushes through its own engine. RV(trusted) says
        whether it was written.
    type: str
    default: ""
  certs_d:
    description:
      - Docker's per-registry certificate directory, for O(docker_trust).
    type: path
    default: /etc/docker/certs.d
  _write:
    description:
      - Private, set by the action plugin of the same name only (the files its second run on the host writes).
        Do not set it.
    type: dict
  _trust_ca:
    description:
      - Private, set by the action plugin of the same name only (the CA its second run trusts for O(docker_trust)).
        Do not set it.
    type: str
attributes:
  action:
    description: Runs on the controller as an action plugin, which runs this module on the host to read and write the files.
    support: full
  check_mode:
    support: full
    details: Reads the files and reports which ones it would write and why.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.registry_deploy
  - module: fleet.images.registry_trust
"""

EXAMPLES = r"""
- name: Keep the registry's CA and certificate right
  fleet.images.registry_pki:
    path: /etc/fleet-images/registry/registry/pki
    common_name: registry1.site.example
    dns_names: [registry1.site.example, registry1]
  register: pki

- name: Trust its CA on the clients
  ansible.builtin.copy:
    content: "{{ pki.ca_cert }}"
    dest: /etc/docker/certs.d/registry1.site.example:5000/ca.crt
    mode: "0644"
  delegate_to: "{{ item }}"
  loop: "{{ groups['docker_hosts'] }}"
"""

RETURN = r"""
ca_cert:
  description: The CA certificate (PEM), for the clients to trust.
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUJ...\n-----END CERTIFICATE-----\n"
written:
  description: The files written (or, in check mode, that would be), by name.
  returned: success
  type: list
  elements: str
  sample: [server.crt]
trusted:
  description: Whether the O(docker_trust) CA file was written (or, in check mode, would be).
  returned: success
  type: bool
  sample: true
reasons:
  description: For each new file, why it is new.
  returned: success
  type: dict
  sample: {"server.crt": "its names changed: it lacks DNS:registry.example"}
made:
  description: The directories made, or whose mode or owner was corrected.
  returned: success
  type: list
  elements: str
  sample: [/etc/fleet-images/registry/registry/pki]
subject_alt_names:
  description: The server certificate's names and addresses.
  returned: success
  type: list
  elements: str
  sample: ["DNS:registry1", "IP:10.0.0.5"]
server_not_after:
  description: When the server certificate expires (ISO 8601, UTC).
  returned: success
  type: str
  sample: "2027-12-01T22:00:00+00:00"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.registry_host import PKI_ARGUMENT_SPEC, pki_host_side


def main():
    # _write and _trust_ca are set by the action plugin only, for its second run (the files to write, the CA to trust).
    module = AnsibleModule(
        argument_spec=dict(
            PKI_ARGUMENT_SPEC,
            _write=dict(type="dict", no_log=True),
            _trust_ca=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    try:
        result = pki_host_side(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg="registry_pki: %s" % exc)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or module.params["path"], exc.strerror or exc), written=getattr(exc, "written", []))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
