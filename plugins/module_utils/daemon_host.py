# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_config's I/O on the host: read files and the unit, ask dockerd and the engine, write files.

Every write goes through atomic_file (a temporary file next to the target, then a rename) and every
failure becomes Refused or WriteFailed, whose message names the host, the file and what to do.
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import stat
import tempfile

from ansible_collections.fleet.images.plugins.module_utils import atomic_file
from ansible_collections.fleet.images.plugins.module_utils import systemd_unit
from ansible_collections.fleet.images.plugins.module_utils.daemon_json import parse_version
from ansible_collections.fleet.images.plugins.module_utils.dockerd_flags import DOCKERD_BINARY_NAMES
from ansible_collections.fleet.images.plugins.module_utils.registry_host import install_ca
from ansible_collections.fleet.images.plugins.module_utils.url_secrets import mask_url

UNIT_DIRECTORIES = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
DOCKERD_SEARCH_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
NEW_FILE_MODE = 0o644
NEW_DIRECTORY_MODE = 0o755
HOSTNAME = platform.node() or "this host"


class Refused(Exception):
    """The change cannot be made; nothing was written. `problems` lists every reason."""

    def __init__(self, message, problems=None, **details):
        super().__init__(message)
        self.problems = problems or []
        self.details = details


class WriteFailed(Exception):
    """Writing a file failed; the message names the host, the file and what to do."""

    def __init__(self, path, exc, what=None):
        reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
        super().__init__("Cannot write %s on %s: %s (in %s). %s was left as it was and no temporary file remains; %s, then run again." % (
            what or path, HOSTNAME, reason, os.path.dirname(os.path.realpath(path)), path,
            "free space there" if exc.errno == errno.ENOSPC else "fix that"))


# ---------------------------------------------------------------------------------------------
# Reading


def read_file(path):
    """The text of a file, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused("%s is not UTF-8 text (byte %d): dockerd cannot read it either. Nothing was written." % (path, exc.start)) from exc


def systemd_is_running():
    return os.path.isdir("/run/systemd/system")


def unit_text_from_files(unit):
    """What `systemctl cat` would print, built from the unit directories (systemd not running)."""
    fragment = next((os.path.join(directory, unit) for directory in UNIT_DIRECTORIES if os.path.isfile(os.path.join(directory, unit))), None)
    seen, dropins = set(), {}
    for directory in reversed(UNIT_DIRECTORIES):
        folder = os.path.join(directory, unit + ".d")
        real = os.path.realpath(folder)
        if real in seen or not os.path.isdir(folder):
            continue
        seen.add(real)
        for name in os.listdir(folder):
            if name.endswith(".conf"):
                # a higher-priority directory (earlier in UNIT_DIRECTORIES, visited later) wins
                dropins[name] = os.path.join(folder, name)
    parts = []
    for path in ([fragment] if fragment else []) + [dropins[name] for name in sorted(dropins)]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parts.append("# %s\n%s" % (path, handle.read()))
    return "\n\n".join(parts)


def read_unit(module, unit):
    """The parsed unit (or None) and the dockerd argv it starts, environment expanded."""
    systemctl = module.get_bin_path("systemctl")
    text = ""
    if systemctl and systemd_is_running():
        rc, out, dummy = module.run_command([systemctl, "cat", "--no-pager", unit], environ_update={"LC_ALL": "C"})
        if rc == 0:
            text = out
    if not text.strip():
        text = unit_text_from_files(unit)
    if not text.strip():
        return None, []
    info = systemd_unit.parse_unit(text)
    if not info.exec_start:
        return info, []
    environment = dict(info.environment)
    for path, optional in info.environment_files:
        content = read_file(path)
        if content is None:
            if not optional:
                module.warn("%s names EnvironmentFile=%s, which does not exist" % (info.exec_start_file, path))
            continue
        environment.update(systemd_unit.parse_environment_file(content))
    try:
        return info, systemd_unit.expand_exec_start(info.exec_start, environment)
    except systemd_unit.UnitError as exc:
        module.warn("%s: %s; the unit's flags are not checked" % (info.exec_start_file, exc))
        return info, []


# ---------------------------------------------------------------------------------------------
# dockerd and the engine


def find_dockerd(module, unit_argv):
    if module.params["dockerd_path"]:
        path = module.params["dockerd_path"]
        return path if os.access(path, os.X_OK) else None
    if unit_argv and os.path.basename(unit_argv[0]) in DOCKERD_BINARY_NAMES and os.access(unit_argv[0], os.X_OK):
        return unit_argv[0]
    return module.get_bin_path("dockerd", opt_dirs=DOCKERD_SEARCH_DIRS)


def probe_dockerd(module, binary):
    """(version tuple or None, version text, has --validate)."""
    if not binary:
        return None, None, False
    rc, out, err = module.run_command([binary, "--version"], environ_update={"LC_ALL": "C"})
    version_text = (out or err).strip() if rc == 0 else None
    rc, out, err = module.run_command([binary, "--help"], environ_update={"LC_ALL": "C"})
    has_validate = "--validate" in (out + err)
    return parse_version(version_text), version_text, has_validate


def ask_engine(params):
    """What the running engine says: version, running containers, live-restore. Never fails the module."""
    # Imported here: a run with nothing to write never asks the engine, and skips the SDK's import.
    from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
        DockerConnectionError,
        DockerException,
        RequestException,
        build_client,
    )

    facts = dict(engine_version=None, running_containers=None, live_restore=None, error=None)
    try:
        client = build_client(params)
    except DockerConnectionError as exc:
        facts["error"] = str(exc)
        return facts
    try:
        facts["engine_version"] = client.version().get("Version")
        info = client.info()
        facts["running_containers"] = info.get("ContainersRunning")
        facts["live_restore"] = info.get("LiveRestoreEnabled")
    except (DockerException, RequestException, OSError, ValueError) as exc:
        # Only means falling back to the installed binary: reported, never fatal.
        facts["error"] = "the engine answered the ping but not the version/info request: %s" % exc
    finally:
        client.close()
    return facts


def dockerd_validate(module, binary, text, real_path):
    """(passed, what dockerd said) for `dockerd --validate` on `text`, written into a private scratch
    directory of the system's temp dir (mode 0700, removed afterwards; nothing is created next to the
    real file). Not Ansible's remote_tmp: on a fresh host, making that one prints a warning."""
    scratch = tempfile.mkdtemp(prefix="fleet-images-daemon-")
    try:
        try:
            candidate = atomic_file.write_temp(scratch, os.path.basename(real_path), text.encode("utf-8"))
        except OSError as exc:
            raise WriteFailed(real_path, exc, "a candidate of %s for dockerd --validate" % real_path) from None
        rc, out, err = module.run_command([binary, "--validate", "--config-file", candidate], environ_update={"LC_ALL": "C"})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    said = " ".join(part.strip() for part in (out, err) if part and part.strip()).replace(candidate, real_path)
    return rc == 0, mask_url(said)


def daemon_reload(module, dropin_path):
    """systemctl daemon-reload after a drop-in changed; True when it ran."""
    systemctl = module.get_bin_path("systemctl")
    if not (systemctl and systemd_is_running()):
        return False
    rc, out, err = module.run_command([systemctl, "daemon-reload"])
    if rc != 0:
        raise Refused("%s was written on %s but systemctl daemon-reload failed: %s. daemon.json was not changed; fix systemd and run again "
                      "(the next run applies the drop-in)." % (dropin_path, HOSTNAME, (err or out).strip()))
    return True


# ---------------------------------------------------------------------------------------------
# Writing


def put_file(path, text):
    """Replace `path` (its target, when it is a symlink, which stays) with `text` through atomic_file,
    keeping an existing file's mode and owner; a new file (and its directory) gets NEW_FILE_MODE."""
    real = os.path.realpath(path)
    try:
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            os.makedirs(directory, NEW_DIRECTORY_MODE)
        try:
            info = os.stat(real)
            mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
        except FileNotFoundError:
            mode, owner = NEW_FILE_MODE, None
        atomic_file.atomic_write(real, text.encode("utf-8"), mode=mode, owner=owner)
    except OSError as exc:
        raise WriteFailed(path, exc) from None


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WriteFailed(path, exc, "the removal of %s" % path) from None


def make_backup(path, keep):
    """(the copy of `path`, the older copies removed beyond the `keep` newest)."""
    try:
        copy = atomic_file.backup_copy(path)
    except OSError as exc:
        # the backup comes first: when it cannot be written, neither is `path`
        raise WriteFailed(path, exc) from None
    return copy, atomic_file.prune_backups(path, keep)


def write_ca(ca_path, ca_cert, check_mode):
    """The one CA writer (registry_host.install_ca); True when the file changed (or would)."""
    try:
        return install_ca(ca_path, ca_cert, check_mode)
    except OSError as exc:
        raise WriteFailed(ca_path, exc) from None
