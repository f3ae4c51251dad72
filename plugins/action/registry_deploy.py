# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""registry_deploy: the htpasswd file's bcrypt hashes are made on the controller, the registry on its host.

With users, a first short run of the registry_deploy module reads the htpasswd file on the host;
module_utils/htpasswd.py plans it here (an unchanged password keeps its hash byte for byte, a new
or changed one is hashed with the controller's bcrypt); the module then deploys with that plan.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.fleet.images.plugins.module_utils.htpasswd import BCRYPT_ROUNDS, HtpasswdError, bcrypt_backend, plan_htpasswd

MODULE = "fleet.images.registry_deploy"
# The options this plugin reads (the module validates them all again).
USERS_SPEC = dict(
    name=dict(type="str", default="registry"),
    state=dict(type="str", default="present"),
    users=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
    )),
    htpasswd_path=dict(type="path"),
    bcrypt_cost=dict(type="int", default=BCRYPT_ROUNDS),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        module_args = dict(self._task.args)
        checked = ArgumentSpecValidator(USERS_SPEC).validate({key: module_args[key] for key in USERS_SPEC if key in module_args})
        options = checked.validated_parameters
        if options["users"] and options["state"] != "absent" and not checked.error_messages:
            found = self._execute_module(module_name=MODULE, module_args=dict(module_args, _read_htpasswd=True), task_vars=task_vars)
            if found.get("failed"):
                return dict(result, failed=True, msg=found.get("msg", "reading the htpasswd file failed"))
            try:
                plan = plan_htpasswd(options["users"], found["htpasswd"], bcrypt_backend(),
                                     options["htpasswd_path"] or "htpasswd of registry %s" % options["name"], options["bcrypt_cost"])
            except HtpasswdError as exc:
                return dict(result, failed=True, msg="registry %s: %s" % (options["name"], exc))
            # Only file texts: the user names in the module's result must not be masked as no_log values.
            module_args["_htpasswd"] = dict(before=found["htpasswd"], content=plan.content)
        result.update(self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars))
        return result
