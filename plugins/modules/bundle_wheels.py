#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_wheels
short_description: Record a bundle's Python wheels in its bundle.json and SHA256SUMS
version_added: 0.1.0
description:
  - Lists every regular C(.whl) file in the bundle's C(wheels/) directory in C(bundle.json) (a C(wheels) list of
    C(file), C(size) and C(sha256)) and in C(SHA256SUMS), so that C(sha256sum -c SHA256SUMS),
    M(fleet.images.bundle_info) and the hosts (before C(pip) runs) check them.
  - Holds the bundle's lock while it writes, like M(fleet.images.image_save); writes nothing when the list is
    already as recorded.
  - Used by C(playbooks/bundle.yml) after it downloads the wheels; runs where the bundle is (the controller).
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  bundle:
    description:
      - The bundle directory (it must already hold a C(bundle.json)).
      - The same option name as in every module of the collection that takes a bundle.
    type: path
    required: true
    aliases: [path]
attributes:
  check_mode:
    support: full
    details: Reports whether the list would change; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.bundle_info
"""

EXAMPLES = r"""
- name: Record the wheels in bundle.json and SHA256SUMS
  fleet.images.bundle_wheels:
    bundle: /media/usb/bundle
  delegate_to: localhost
"""

RETURN = r"""
wheels:
  description: The wheels as bundle.json now lists them.
  returned: success
  type: list
  elements: dict
  sample: [{"file": "wheels/requests-2.32.3-py3-none-any.whl", "size": 64928, "sha256": "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6"}]
  contains:
    file:
      description: The wheel, relative to the bundle directory.
      type: str
      sample: wheels/requests-2.32.3-py3-none-any.whl
    size:
      description: Size in bytes.
      type: int
      sample: 64928
    sha256:
      description: The wheel's sha256.
      type: str
      sample: 70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError, load_manifest
from ansible_collections.fleet.images.plugins.module_utils.bundle_contents import record_wheels, wheel_files


def main():
    module = AnsibleModule(argument_spec=dict(bundle=dict(type="path", required=True, aliases=["path"])), supports_check_mode=True)
    path = os.path.abspath(module.params["bundle"])
    try:
        if module.check_mode:
            listed = load_manifest(path).get("wheels")
            changed = listed is None or [entry["file"] for entry in listed] != wheel_files(path)
            module.exit_json(changed=changed, wheels=listed or [])
        changed, wheels = record_wheels(path)
    except BundleError as exc:
        module.fail_json(msg=str(exc), path=path)
    except OSError as exc:
        module.fail_json(msg="cannot record the wheels of bundle %s: %s: %s" % (path, exc.filename or path, exc.strerror or exc), path=path)
    module.exit_json(changed=changed, wheels=wheels)


if __name__ == "__main__":
    main()
