"""sha256 of files and of streams as they are written: the same digests coreutils computes."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess

import pytest

from ansible_collections.fleet.images.plugins.module_utils.hashing import HashingWriter, hash_file, normalize_sha256


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 17])
def test_hash_file_matches_sha256sum(tmp_path, size):
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(size))
    digest, counted = hash_file(str(path), buffer_size=1024 * 1024)
    assert counted == size
    assert digest == subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


def test_hashing_writer_hashes_what_it_writes():
    raw = io.BytesIO()
    writer = HashingWriter(raw)
    for piece in (b"abc", b"", b"d" * 100000):
        writer.write(piece)
    assert writer.size == 100003
    assert writer.hexdigest() == hashlib.sha256(raw.getvalue()).hexdigest()


@pytest.mark.parametrize("value, expected", [
    ("a" * 64, "a" * 64),
    ("sha256:" + "A" * 64, "a" * 64),
    ("  " + "b" * 64 + "\n", "b" * 64),
    ("a" * 63, None),
    ("md5:" + "a" * 64, None),
    (None, None),
    (12, None),
])
def test_normalize_sha256(value, expected):
    assert normalize_sha256(value) == expected
