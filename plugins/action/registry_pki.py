# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""registry_pki: the registry's CA and server certificate, kept right with one remote module run.

The registry host's side (registry_pki_files) makes the directories, returns the four files and the
host's names; the crypto runs here, in this process, on the controller (module_utils/pki.py);
only files whose content or mode must change go back, in a second remote run.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.images.plugins.module_utils.pki import FILE_MODES, PkiError, plan_pki, subject_alt_names
from ansible_collections.fleet.images.plugins.module_utils.registry_host import DOCKER_CERTS_D, docker_ca_path, registry_address_problem

HOST_SIDE = "fleet.images.registry_pki_files"

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    common_name=dict(type="str", required=True),
    dns_names=dict(type="list", elements="str", default=[]),
    ip_addresses=dict(type="list", elements="str", default=[]),
    host_dns_names=dict(type="bool", default=True),
    host_ip_address=dict(type="bool", default=True),
    ca_common_name=dict(type="str", default="fleet.images registry CA"),
    ca_valid_days=dict(type="int", default=3650),
    cert_valid_days=dict(type="int", default=365),
    renew_days=dict(type="int", default=30),
    docker_trust=dict(type="str", default=""),
    certs_d=dict(type="path", default=DOCKER_CERTS_D),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for option in ("ca_valid_days", "cert_valid_days"):
            if args[option] < 1:
                return dict(result, failed=True, msg="registry_pki: %s is %d; it must be at least 1" % (option, args[option]))
        pki_dir = args["path"].rstrip("/") or "/"
        directories = [{"path": os.path.dirname(pki_dir), "mode": "0755"}, {"path": pki_dir, "mode": "0700"}]
        paths = {name: os.path.join(pki_dir, name) for name in FILE_MODES}
        # The registry host pushes through its own engine, which must trust the CA too.
        trust_path = None
        if args["docker_trust"]:
            problem = registry_address_problem(args["docker_trust"], args["certs_d"])
            if problem:
                return dict(result, failed=True, msg="registry_pki: docker_trust: %s" % problem)
            trust_path = docker_ca_path(args["docker_trust"], args["certs_d"])

        found = self._host_side(task_vars, directories=directories, read=sorted(paths.values()) + ([trust_path] if trust_path else []),
                                names=args["host_dns_names"] or args["host_ip_address"])
        if found.get("failed"):
            return dict(result, failed=True, msg="%s: %s" % (pki_dir, found.get("msg", "the registry host's side failed")))
        names = found.get("names", {})
        dns_names = list(args["dns_names"]) + ([names.get("fqdn", ""), names.get("hostname", "")] if args["host_dns_names"] else [])
        ip_addresses = list(args["ip_addresses"]) + ([names.get("default_ipv4", "")] if args["host_ip_address"] else [])
        current = {name: found["files"][path]["content"] for name, path in paths.items() if path in found["files"]}
        try:
            san = subject_alt_names(dns_names, ip_addresses)
            plan = plan_pki(current, args["ca_common_name"], args["common_name"], san,
                            args["ca_valid_days"], args["cert_valid_days"], args["renew_days"])
        except PkiError as exc:
            return dict(result, failed=True, msg="registry_pki: %s" % exc)

        to_write = []
        for name, content in sorted(plan["files"].items()):
            mode = "%04o" % FILE_MODES[name]
            if found["files"].get(paths[name]) != {"content": content, "mode": mode}:
                to_write.append({"path": paths[name], "content": content, "mode": mode})
        trust_dirs = []
        if trust_path and found["files"].get(trust_path) != {"content": plan["files"]["ca.crt"], "mode": "0644"}:
            to_write.append({"path": trust_path, "content": plan["files"]["ca.crt"], "mode": "0644"})
            trust_dirs = [{"path": os.path.dirname(trust_path), "mode": "0755"}]
        written = []
        if to_write and not self._task.check_mode:
            wrote = self._host_side(task_vars, directories=trust_dirs, write=to_write)
            if wrote.get("failed"):
                # Each file is written whole or not at all; the next run completes the set.
                done = [os.path.basename(path) for path in wrote.get("written", [])]
                return dict(result, failed=True, msg="%s: %s (written before the failure: %s)"
                            % (pki_dir, wrote.get("msg", "writing failed"), ", ".join(done) or "none"))
            written = wrote["written"]
        elif to_write:
            written = [item["path"] for item in to_write]
        trusted = trust_path in written

        result.update(
            changed=bool(found["made"] or written),
            made=found["made"],
            written=[os.path.basename(path) for path in written if path != trust_path],
            trusted=trusted,
            # Why each new file is new (the file names and reasons only, never a key).
            reasons=plan["reasons"],
            subject_alt_names=san,
            server_not_after=plan["server_not_after"].isoformat(),
            ca_cert=plan["files"]["ca.crt"],
        )
        return result

    def _host_side(self, task_vars, **module_args):
        # The result carries the private keys: it stays in this process, only what run() picks leaves it.
        return self._execute_module(module_name=HOST_SIDE, module_args=module_args, task_vars=task_vars)
