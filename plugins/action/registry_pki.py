# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""registry_pki: the registry's CA and server certificate, kept right with one remote module run.

The registry_pki module on the registry host makes the directories, returns the four files and the
host's names; the crypto runs here, in this process, on the controller (module_utils/pki.py);
only files whose content or mode must change go back, in a second run of the module.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.images.plugins.module_utils.pki import FILE_MODES, PkiError, plan_pki, subject_alt_names
from ansible_collections.fleet.images.plugins.module_utils.registry_host import PKI_ARGUMENT_SPEC

HOST_SIDE = "fleet.images.registry_pki"


def wanted_names(args, names):
    dns_names = list(args["dns_names"]) + ([names.get("fqdn", ""), names.get("hostname", "")] if args["host_dns_names"] else [])
    ip_addresses = list(args["ip_addresses"]) + ([names.get("default_ipv4", "")] if args["host_ip_address"] else [])
    return subject_alt_names(dns_names, ip_addresses)


def changed_files(found, plan):
    """{file name: content} of the planned files whose content or mode differs from what the host holds."""
    return {name: content for name, content in plan["files"].items()
            if found["files"].get(name) != {"content": content, "mode": "%04o" % FILE_MODES[name]}}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=PKI_ARGUMENT_SPEC)
        for option in ("ca_valid_days", "cert_valid_days"):
            if args[option] < 1:
                return dict(result, failed=True, msg="registry_pki: %s is %d; it must be at least 1" % (option, args[option]))
        found = self._host_side(task_vars, args)
        if found.get("failed"):
            return dict(result, failed=True, msg="%s: %s" % (args["path"], found.get("msg", "the registry host's side failed")))
        try:
            san = wanted_names(args, found.get("names", {}))
            plan = plan_pki({name: file["content"] for name, file in found["files"].items()}, args["ca_common_name"],
                            args["common_name"], san, args["ca_valid_days"], args["cert_valid_days"], args["renew_days"])
        except PkiError as exc:
            return dict(result, failed=True, msg="registry_pki: %s" % exc)
        to_write = changed_files(found, plan)
        ca_cert = plan["files"]["ca.crt"]
        trust = bool(args["docker_trust"]) and found.get("trust") != {"content": ca_cert, "mode": "0644"}
        written = sorted(to_write)
        if (to_write or trust) and not self._task.check_mode:
            wrote = self._host_side(task_vars, dict(args, _write=to_write, _trust_ca=ca_cert if trust else None))
            if wrote.get("failed"):
                # Each file is written whole or not at all; the next run completes the set.
                return dict(result, failed=True, msg="%s: %s (written before the failure: %s)"
                            % (args["path"], wrote.get("msg", "writing failed"), ", ".join(wrote.get("written", [])) or "none"))
            written, trust = wrote["written"], wrote["trusted"]
        result.update(
            changed=bool(found["made"] or written or trust),
            made=found["made"],
            written=written,
            trusted=trust,
            # Why each new file is new (the file names and reasons only, never a key).
            reasons=plan["reasons"],
            subject_alt_names=san,
            server_not_after=plan["server_not_after"].isoformat(),
            ca_cert=ca_cert,
        )
        return result

    def _host_side(self, task_vars, module_args):
        # The result carries the private keys: it stays in this process, only what run() picks leaves it.
        return self._execute_module(module_name=HOST_SIDE, module_args=module_args, task_vars=task_vars)
