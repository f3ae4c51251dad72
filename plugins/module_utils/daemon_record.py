# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the engine last ran with success: a root-only record of daemon.json and the proxy drop-in.

daemon_config's state=present compares the files with it (a change written but not applied is
pending), state=applied writes it after a successful reload or restart, state=rolled_back puts its
files back and remembers the daemon.json the engine refused.
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.fleet.images.plugins.module_utils import atomic_file
from ansible_collections.fleet.images.plugins.module_utils.daemon_host import (
    HOSTNAME,
    Refused,
    WriteFailed,
    daemon_reload,
    put_file,
    read_file,
    remove_file,
)
from ansible_collections.fleet.images.plugins.module_utils.daemon_json import ParseError, changed_keys, parse_config
from ansible_collections.fleet.images.plugins.module_utils.url_secrets import hide_secrets, passwords_in

# How many daemon.json files the engine refused the record remembers (by sha256).
KEEP_REFUSED = 10


def collect_secrets(module, *sources):
    """Register every URL password found in the given texts and values as a secret Ansible masks."""
    for source in sources:
        for secret in passwords_in(source):
            if len(secret) > 1:
                module.no_log_values.add(secret)


def scrub(module, text):
    return hide_secrets(text, module.no_log_values)


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_record(module, path):
    """The record (dict with daemon_json and dropin texts) for daemon.json at `path`, or None."""
    record_path = module.params["applied_record"]
    text = read_file(record_path)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        module.warn("%s is not a record this module wrote (not JSON); it is ignored and rewritten at the next successful apply" % record_path)
        return None
    if not isinstance(record, dict) or record.get("path") != os.path.realpath(path):
        return None
    collect_secrets(module, record.get("daemon_json"), record.get("dropin"))
    return record


def write_record(module, path, daemon_text, dropin_text, refused=()):
    """Record the files the engine runs with (mode 0600 in a 0700 directory: proxy passwords), and the
    sha256 of the daemon.json files it refused (the newest KEEP_REFUSED)."""
    record_path = module.params["applied_record"]
    data = json.dumps(dict(path=os.path.realpath(path), daemon_json=daemon_text, dropin_path=module.params["dropin"], dropin=dropin_text,
                           refused=list(refused)[-KEEP_REFUSED:]), indent=2, sort_keys=True) + "\n"
    try:
        directory = os.path.dirname(record_path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        return atomic_file.atomic_write(record_path, data.encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise WriteFailed(record_path, exc) from None


def pending_changes(record, current, dropin_text, path):
    """(daemon.json keys on disk that the engine does not run yet, whether the drop-in differs), from the record."""
    if record is None:
        return [], False
    applied = {}
    if record.get("daemon_json") is not None:
        try:
            applied = parse_config(record["daemon_json"], path)[0]
        except ParseError:
            applied = {"(unreadable record)": True}
    return changed_keys(applied, current), record.get("dropin") != dropin_text


def refused_before(record, path, text, retry_refused):
    """Refuse `text` (the daemon.json about to be applied) when the engine refused exactly it before."""
    if text is None or record is None or retry_refused or digest(text) not in record.get("refused", []):
        return
    raise Refused("On %s, dockerd refused exactly this %s at an earlier reload or restart, and the configuration it ran before was "
                  "put back: it is not applied again. Change the settings (the earlier failure said what dockerd refused), or set "
                  "retry_refused=true to try it once more. Nothing was written." % (HOSTNAME, path))


def record_applied(module):
    """state=applied: the engine runs the files now on disk (the role calls this after its reload or restart succeeded)."""
    path = module.params["path"]
    daemon_text, dropin_text = read_file(path), read_file(module.params["dropin"])
    collect_secrets(module, daemon_text, dropin_text)
    record = read_record(module, path)
    refused = [item for item in (record or {}).get("refused", []) if daemon_text is None or item != digest(daemon_text)]
    changed = record is None or record.get("daemon_json") != daemon_text or record.get("dropin") != dropin_text \
        or refused != record.get("refused", [])
    if changed and not module.check_mode:
        write_record(module, path, daemon_text, dropin_text, refused)
    return dict(changed=changed, path=path, applied_record=module.params["applied_record"])


def roll_back(module):
    """state=rolled_back: put back the daemon.json and drop-in of the record (what the engine last ran with success)."""
    params = module.params
    path, dropin_path = params["path"], params["dropin"]
    record = read_record(module, path)
    if record is None:
        raise Refused("There is no record at %s of a %s the engine ran with on %s: nothing to roll back to. Restore the file by hand "
                      "(a backup is next to it) and restart Docker." % (params["applied_record"], path, HOSTNAME))
    refused_text = read_file(path)
    if refused_text is not None and refused_text != record.get("daemon_json") and not module.check_mode:
        # the engine refused this file: a later run does not apply it again (retry_refused overrides)
        write_record(module, path, record.get("daemon_json"), record.get("dropin"), record.get("refused", []) + [digest(refused_text)])
    restored = [target for target, wanted in ((path, record.get("daemon_json")), (dropin_path, record.get("dropin")))
                if restore(module, target, wanted)]
    dropin_restored = dropin_path in restored
    if dropin_restored and not module.check_mode:
        daemon_reload(module, dropin_path)
    return dict(changed=bool(restored), path=path, restored=restored, dropin_restored=dropin_restored,
                applied_record=params["applied_record"])


def restore(module, target, wanted):
    """Put `wanted` (None: no file) at `target`; True when it differed."""
    if read_file(target) == wanted:
        return False
    if not module.check_mode:
        if wanted is None:
            remove_file(target)
        else:
            put_file(target, wanted)
    return True
