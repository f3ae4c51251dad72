# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sha256 of files and of streams being written, in one pass and bounded memory."""

from __future__ import annotations

import hashlib
import re

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


def hash_file(path, buffer_size=HASH_BUFFER):
    """Return (sha256 hex, size in bytes) of the file at `path`, read once into a reused buffer."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size


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
