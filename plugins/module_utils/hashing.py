# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sha256 of files and of streams being written, in one pass and bounded memory."""

from __future__ import annotations

import hashlib
import os
import re
import stat

HASH_BUFFER = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def normalize_sha256(value):
    """Return the 64 lowercase hex digits of a sha256 given as hex or as 'sha256:hex', else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    return text if SHA256_HEX.match(text) else None


class NotRegularFile(OSError):
    """The path is a symbolic link, a FIFO, a device or a directory: never read as a tarball."""


def open_regular(path):
    """Open `path` for reading as an unbuffered file whose descriptor is the one every later read uses.

    Refuses a symbolic link as the last component (O_NOFOLLOW) and anything that is not a regular
    file (checked with fstat on the opened descriptor, so a swap after the check changes nothing:
    the bytes read are those of the file opened here). O_NONBLOCK keeps a FIFO from hanging the open.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise NotRegularFile(exc.errno, "%s is a symbolic link; refusing to follow it" % path) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(0, "%s is not a regular file (%s); refusing to read it" % (path, _kind(mode)))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def hash_handle(handle, buffer_size=HASH_BUFFER):
    """Return (sha256 hex, size in bytes) of what `handle` gives from its position to its end."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    while True:
        count = handle.readinto(buffer)
        if not count:
            break
        digest.update(view[:count])
        size += count
    return digest.hexdigest(), size


def hash_file(path, buffer_size=HASH_BUFFER):
    """Return (sha256 hex, size in bytes) of the file at `path`, read once into a reused buffer."""
    with open(path, "rb", buffering=0) as handle:
        return hash_handle(handle, buffer_size)


class HashingWriter:
    """A file-like wrapper that hashes and counts every byte written through it."""

    def __init__(self, raw):
        self._raw = raw
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self._digest.update(data)
        self.size += len(data)
        self._raw.write(data)
        return len(data)

    def hexdigest(self):
        return self._digest.hexdigest()
