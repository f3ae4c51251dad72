# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""bundle_info: read the bundle inside Ansible's process when the task runs on the controller.

The bundle is nearly always on the controller (delegate_to: localhost). A module run there costs
a fresh Python, which on a rerun with nothing to do is a visible part of the time; the read itself
is the same code (module_utils/bundle_contents.py). On any other host, or with become, the module
runs there as usual.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.bundle_contents import read_bundle

ARGUMENT_SPEC = dict(
    bundle=dict(type="path", required=True, aliases=["path"]),
    images=dict(type="list", elements="str", default=[]),
    verify=dict(type="bool", default=False),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if getattr(self._connection, "transport", None) != "local" or self._play_context.become:
            result.update(self._execute_module(module_name="fleet.images.bundle_info", task_vars=task_vars))
            return result
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = os.path.abspath(args["bundle"])
        try:
            result.update(changed=False, **read_bundle(path, args["images"], args["verify"]))
        except BundleError as exc:
            result.update(failed=True, msg=str(exc), bundle=path)
        return result
