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

        found = self._host_side(task_vars, directories=directories, read=sorted(paths.values()),
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
        written = []
        if to_write and not self._task.check_mode:
            wrote = self._host_side(task_vars, write=to_write)
            if wrote.get("failed"):
                return dict(result, failed=True, msg="%s: %s (nothing else was written)" % (pki_dir, wrote.get("msg", "writing failed")))
            written = [os.path.basename(path) for path in wrote["written"]]
        elif to_write:
            written = [os.path.basename(item["path"]) for item in to_write]

        result.update(
            changed=bool(found["made"] or written),
            made=found["made"],
            written=written,
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
