# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's staging directory, root's alone: checked (never repaired) before every use.

Local users of a host are hostile: a directory they made, or could rename or replace (a parent
they can write to, a symbolic link on the way), would let them swap what root later reads, loads
or installs. So every component of the path is looked at with lstat (no link followed), the
missing ones are made with mode 0700, and anything else is refused with what to do. Nothing found
there is ever chmodded, chowned or followed. Standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time


class StagingError(Exception):
    """The staging directory cannot be trusted or made; the message says which path and what to do."""


ADVICE = (
    "fleet.images never changes the owner or mode of a directory it did not make: check what it holds, remove it "
    "(or fix it by hand), or set offline_images_remote_dir to a path under a directory only root can write to"
)


def _refuse(path, staging, problem):
    return StagingError("staging directory %s: %s %s; refusing to use it. %s" % (staging, path, problem, ADVICE))


def _check_component(path, staging, final, owner):
    """lstat one existing component; raise StagingError unless it is a safe directory."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, staging, "is a symbolic link (to %s)" % os.readlink(path))
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(path, staging, "is not a directory")
    owners = (owner,) if final else (0, owner)
    if info.st_uid not in owners:
        raise _refuse(path, staging, "is owned by uid %d, not by %s" % (info.st_uid, "uid %d" % owner if final else "root"))
    mode = stat.S_IMODE(info.st_mode)
    if final and mode & 0o077:
        raise _refuse(path, staging, "has mode %04o: other users may read or write it (expected 0700)" % mode)
    if mode & 0o022:
        raise _refuse(path, staging, "has mode %04o: users other than root may write to it" % mode)


def private_dir(path, create=True):
    """Make sure `path` is a directory only this user (root) can use. Returns True when it was made now.

    Every parent must be a real directory (no symbolic link) owned by root (or this user) that no
    one else can write to; `path` itself must be owned by this user with no permission for group or
    others. Missing components are made (mode 0700) when `create`; nothing existing is changed.
    """
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path.rstrip("/") or path == "/":
        raise StagingError("staging directory %r must be an absolute, normalized path below / (no '..', no '//')" % (path,))
    owner = os.geteuid()
    parts = path.strip("/").split("/")
    created = False
    current = ""
    for index, part in enumerate(parts):
        current += "/" + part
        final = index == len(parts) - 1
        try:
            _check_component(current, path, final, owner)
            continue
        except FileNotFoundError:
            if not create:
                raise StagingError("staging directory %s does not exist (%s is missing)" % (path, current)) from None
        try:
            os.mkdir(current, 0o700)
            created = True
        except FileExistsError:
            pass  # someone made it in between: judged just below, like any existing directory
        except OSError as exc:
            raise StagingError("cannot make the staging directory %s (%s: %s): free space or fix the path, or set "
                               "offline_images_remote_dir" % (path, current, exc.strerror or exc)) from exc
        _check_component(current, path, final, owner)
    return created


def newest_mtime(path):
    """The newest modification time in the tree at `path` (links not followed); a writer keeps it fresh."""
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except FileNotFoundError:
                    pass
    return newest


def remove_stale(directory, older_than, now=None, dry_run=False):
    """Remove the entries of `directory` in which nothing was written for `older_than` seconds.

    A transfer that is still running keeps writing, so its entry stays; what a killed run left
    behind goes. Returns the removed paths. A missing directory has nothing to remove.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            if now - newest_mtime(path) < older_than:
                continue
            if dry_run:
                removed.append(path)
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _check_names(directories, clean):
    bad = [name for name in directories + clean
           if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/"))]
    unknown = [name for name in clean if name not in directories]
    if bad or unknown:
        raise StagingError("staging_dir: directories and clean take relative paths of subdirectories such as images or "
                           "blobs/sha256 (no '.', '..' or empty part; clean among directories); "
                           "got %s" % ", ".join(repr(name) for name in bad + unknown))


def prepare(path, directories=(), clean=(), remove_stale_after=60, check_mode=False):
    """Make or check the staging directory `path` and its `directories`, then empty `clean` of stale entries.

    Returns (created, removed): the directories made and the entries removed (in check mode, what would be).
    `remove_stale_after` is in minutes (0: never remove). Raises StagingError with what to do.
    """
    directories, clean = list(directories), list(clean)
    _check_names(directories, clean)
    created, removed = [], []
    try:
        for directory in [path] + [os.path.join(path, name) for name in directories]:
            if check_mode and not os.path.lexists(directory):
                created.append(directory)
            elif private_dir(directory, create=not check_mode):
                created.append(directory)
        for name in clean:
            directory = os.path.join(path, name)
            if remove_stale_after > 0 and directory not in created:
                removed += remove_stale(directory, remove_stale_after * 60, dry_run=check_mode)
    except OSError as exc:
        raise StagingError("staging directory %s: %s: %s" % (path, getattr(exc, "filename", None) or path, exc.strerror or exc)) from exc
    return created, removed


def _check_files(names):
    bad = [name for name in names
           if not isinstance(name, str) or not name or name.startswith("/")
           or any(part in ("", ".", "..") for part in name.split("/"))]
    if bad:
        raise StagingError("staging_dir: remove takes relative paths of files inside the staging directory such as "
                           "blobs/sha256/<hex> or images/<name>.tar (no '/' at the start, no '.', '..' or empty part); "
                           "got %s" % ", ".join(repr(name) for name in bad))


def _open_dir(top_fd, parts):
    """Open the directory `parts` below `top_fd` without following a link; None when a part is missing."""
    fd = os.dup(top_fd)
    for index, part in enumerate(parts):
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            child = None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            raise StagingError("staging_dir: %s is a symbolic link or a file, not a directory; refusing to remove anything "
                               "below it (nothing was followed): check what it is and remove it by hand"
                               % "/".join(parts[:index + 1])) from None
        finally:
            os.close(fd)
        if child is None:
            return None
        fd = child
    return fd


def _remove_one(top_fd, name, check_mode):
    """Unlink `name` (relative) below `top_fd`; a link is removed itself, never followed. True when it was there."""
    parts = name.split("/")
    fd = _open_dir(top_fd, parts[:-1])
    if fd is None:
        return False
    try:
        info = os.lstat(parts[-1], dir_fd=fd)
        if stat.S_ISDIR(info.st_mode):
            raise StagingError("staging_dir: %s is a directory, not a staged file; nothing of it was removed" % name)
        if not check_mode:
            os.unlink(parts[-1], dir_fd=fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def remove_files(path, names, check_mode=False):
    """Remove the files `names` (relative to the staging directory `path`); returns the paths removed.

    `path` is checked like any use of it (a missing one holds nothing to remove); no symbolic link
    on the way is followed (a link in place of a file is removed itself), a directory is refused.
    """
    names = list(names)
    _check_files(names)
    if not names or not os.path.lexists(path):
        return []
    private_dir(path, create=False)
    removed = []
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in names:
            if _remove_one(top, name, check_mode):
                removed.append(os.path.join(path, name))
    except OSError as exc:
        raise StagingError("staging directory %s: cannot remove %s: %s" % (path, name, exc.strerror or exc)) from exc
    finally:
        os.close(top)
    return removed
