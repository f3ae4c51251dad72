#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: staging_dir
short_description: Make or check a host's root-only staging directory, and remove what killed runs left there
version_added: 0.1.0
description:
  - Makes sure O(path) is a directory only the user the module runs as (root) can use, before anything is
    copied into it, read from it, loaded or installed. Every parent must be a real directory (no symbolic link)
    owned by root that no other user can write to, and O(path) and each of O(directories) must be owned by
    that user with no permission for group or others (0700).
  - Missing directories are made with mode 0700. An existing one that fails a check is refused with a message
    naming the host's path and what to do; the module never changes the owner or mode of anything it finds,
    and never follows a symbolic link.
  - Removes, in each of O(clean), the entries in which nothing was written for O(remove_stale_after) minutes,
    what a killed or failed copy left behind (Ansible's remote temporary directories, partial files). An entry
    a concurrent run is still writing stays.
  - With O(remove), the module instead removes those files from O(path) (what was staged there), in one run.
extends_documentation_fragment:
  - fleet.images.docker.attributes
options:
  path:
    description:
      - The staging directory, an absolute path.
    type: path
    required: true
  directories:
    description:
      - Subdirectories of O(path) to make or check the same way, as relative paths (V(images), V(blobs/sha256));
        every directory on the way is checked (and made when absent) like O(path).
    type: list
    elements: str
    default: []
  clean:
    description:
      - Subdirectories of O(path) (among O(directories)) whose stale entries are removed.
    type: list
    elements: str
    default: []
  remove_stale_after:
    description:
      - Minutes without any write after which an entry of O(clean) is left over from an earlier run.
    type: int
    default: 60
  remove:
    description:
      - Files to remove from O(path), as relative paths (V(blobs/sha256/<hex>), V(images/<name>.tar)). A name that is
        not a plain relative path inside O(path) (absolute, or with a V(.), V(..) or empty part) is refused before
        anything is removed; a directory is refused.
      - O(path) is checked as above but never made (a missing one holds nothing to remove). No symbolic link on the
        way is followed; a link in place of a file is removed itself, a link in place of a subdirectory on the way is
        refused (what it points to is left alone). A file already gone is not an error.
      - Mutually exclusive with O(directories) and O(clean).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Checks what exists; makes and removes nothing, and reports what it would.
  diff_mode:
    support: none
  idempotent:
    support: full
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - module: fleet.images.image_load
"""

EXAMPLES = r"""
- name: Make or check the staging directory, and remove what a killed copy left in it
  fleet.images.staging_dir:
    path: /var/lib/fleet-images/staging
    directories: [images, tmp]
    clean: [images, tmp]

- name: Remove staged files (one run for all of them)
  fleet.images.staging_dir:
    path: /var/lib/fleet-images/staging
    remove: [images/app.tar, blobs/sha256/0123abcd]
"""

RETURN = r"""
path:
  description: The staging directory.
  returned: always
  type: str
  sample: /var/lib/fleet-images/staging
created:
  description: The directories made by this run (in check mode, that it would make).
  returned: success
  type: list
  elements: str
  sample: [/var/lib/fleet-images/staging]
removed:
  description:
    - The stale entries removed by this run (in check mode, that it would remove); with O(remove), the files
      removed (those that were there).
  returned: success
  type: list
  elements: str
  sample: [/var/lib/fleet-images/staging/tmp/ansible-tmp-1733230000.12-4711-99887766]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.staging import StagingError, prepare, remove_files


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            directories=dict(type="list", elements="str", default=[]),
            clean=dict(type="list", elements="str", default=[]),
            remove_stale_after=dict(type="int", default=60),
            remove=dict(type="list", elements="str", default=[]),
        ),
        mutually_exclusive=[("remove", "directories"), ("remove", "clean")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["remove"]:
            created, removed = [], remove_files(params["path"], params["remove"], module.check_mode)
        else:
            created, removed = prepare(params["path"], params["directories"], params["clean"], params["remove_stale_after"], module.check_mode)
    except StagingError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(created or removed), path=params["path"], created=created, removed=removed)


if __name__ == "__main__":
    main()
