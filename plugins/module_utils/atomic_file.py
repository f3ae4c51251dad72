# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Whole-file writes: a reader sees the old content or the new, never half of it. Standard library only.

Temporary files are named `.<name>.<random>.tmp` next to their target; a failed write (a full
disk) removes its own, and remove_stale_temps() removes those a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time


def fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(directory, name, data, mode=None):
    """A new temporary file `.<name>.*.tmp` in `directory` holding `data` (bytes), fsynced.

    On any failure (ENOSPC included) the temporary file is removed before the error propagates.
    """
    fd, temp_path = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp_path, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    return temp_path


def atomic_write(path, data, mode=0o644, owner=None):
    """Write bytes to `path` through a temp file in the same directory, fsync, then rename over it
    (with `mode`, and `owner` (uid, gid) when given).

    Returns False, writing nothing, when the file already holds exactly `data`.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    with atomic_stream(path, mode, owner=owner) as handle:
        handle.write(data)
    return True


@contextlib.contextmanager
def atomic_stream(path, mode=0o644, temp_name=None, owner=None):
    """A binary file to write `path`'s new content into, however large: when the block ends without an
    error it is fsynced, given `mode` (and `owner` (uid, gid) when given) and renamed over `path` (then
    the directory is fsynced); when it fails, it is removed. Its name is
    `.<temp_name or name>.<random>.tmp`, in `path`'s directory."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(prefix=".%s." % (temp_name or os.path.basename(path)), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            os.chown(temp_path, *owner)
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    fsync_directory(directory)


def _temp_pattern(path):
    return re.compile(r"^\.%s\.[^/]+\.tmp$" % re.escape(os.path.basename(path)))


def stale_temps(path):
    """The `.<name>.*.tmp` files next to `path` (its real directory) that an interrupted write left."""
    directory = os.path.dirname(os.path.realpath(path))
    pattern = _temp_pattern(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in sorted(names) if pattern.match(name)]


def remove_stale_temps(path):
    """Remove the stale_temps() of `path` (regular files; a symlink is unlinked, never followed); return them."""
    removed = []
    for candidate in stale_temps(path):
        with contextlib.suppress(FileNotFoundError):
            kind = os.lstat(candidate).st_mode
            if stat.S_ISREG(kind) or stat.S_ISLNK(kind):
                os.unlink(candidate)
                removed.append(candidate)
    return removed


def backup_copy(path):
    """Copy `path` to `<path>.<pid>.<YYYY-mm-dd@HH:MM:SS>~` (AnsibleModule.backup_local's naming) with its
    mode, through a temporary file: a full disk leaves no partial copy. Returns the copy's path."""
    real = os.path.realpath(path)
    with open(real, "rb") as handle:
        data = handle.read()
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    destination = "%s.%s.%s~" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S", time.localtime()))
    # the temporary file is named after `path`, so remove_stale_temps(path) also finds an interrupted copy's
    with atomic_stream(destination, mode, temp_name=os.path.basename(path)) as handle:
        handle.write(data)
    return destination


# AnsibleModule.backup_local names a copy <file>.<pid>.<YYYY-mm-dd@HH:MM:SS>~
_BACKUP_SUFFIX = r"\.(\d+)\.(\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d)~$"


def backups_of(path):
    """The backup_local copies of `path`, oldest first (by the time in their name, then mtime)."""
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile("^" + re.escape(os.path.basename(path)) + _BACKUP_SUFFIX)
    found = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.match(name)
        candidate = os.path.join(directory, name)
        if match and os.path.isfile(candidate) and not os.path.islink(candidate):
            found.append((match.group(2), os.lstat(candidate).st_mtime, candidate))
    return [candidate for dummy, dummy2, candidate in sorted(found)]


def prune_backups(path, keep):
    """Remove all but the `keep` newest backup_local copies of `path`; return the paths removed."""
    backups = backups_of(path)
    excess = backups[:max(len(backups) - keep, 0)]
    for candidate in excess:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(candidate)
    return excess
