"""Compression by content: detection, streaming round trips (zstd through zstandard), and damage."""

from __future__ import annotations

import io
import os
import random
import re
import socket
import tarfile
import tracemalloc

import pytest

from ansible_collections.fleet.images.plugins.module_utils import compression
from ansible_collections.fleet.images.plugins.module_utils.compression import (
    CompressionError,
    check_level,
    compressing_writer,
    detect_compression,
    detect_file,
    iter_chunks,
    open_decompressed,
)


def tar_bytes(size=3 * 1024 * 1024, seed=1):
    """A tar of half random, half repetitive data, like image layers."""
    rng = random.Random(seed)
    payload = rng.randbytes(size // 2) + b"layer data " * (size // 22)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("layer.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def compress(data, kind, level=None, chunk=65536):
    out = io.BytesIO()
    writer = compressing_writer(out, kind, level)
    for start in range(0, len(data), chunk):
        writer.write(data[start:start + chunk])
    writer.close()
    return out.getvalue()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def plain():
    return tar_bytes()


@pytest.mark.parametrize("head, expected", [
    (b"\x1f\x8b\x08\x00rest", "gzip"),
    (b"\x28\xb5\x2f\xfdrest", "zstd"),
    (b"\x50\x2a\x4d\x18\x04\x00\x00\x00skip", "zstd"),   # a skippable frame first
    (b"\x5f\x2a\x4d\x18", "zstd"),
    (b"PK\x03\x04", None),
    (b"", None),
    (b"{\"json\": true}", None),
])
def test_detect_by_magic_bytes(head, expected):
    assert detect_compression(head) == expected


def test_detect_plain_tar_with_and_without_ustar_magic(plain):
    assert detect_compression(plain[:512]) == "none"
    v7 = io.BytesIO()
    with tarfile.open(fileobj=v7, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("x")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    header = bytearray(v7.getvalue()[:512])
    header[257:265] = b"\x00" * 8          # strip the magic: an old V7 header
    header[148:156] = b" " * 8
    header[148:156] = ("%06o\x00 " % sum(header)).encode()
    assert detect_compression(bytes(header)) == "none"
    header[0] ^= 0xFF                      # now the checksum no longer matches
    assert detect_compression(bytes(header)) is None


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_round_trip_detected_by_content_not_name(tmp_path, plain, kind):
    packed = compress(plain, kind)
    # a misleading name: the content decides
    path = write(tmp_path, "image.tar.gz" if kind == "zstd" else "image.tar.zst", packed)
    assert detect_file(path) == kind
    assert b"".join(iter_chunks(open_decompressed(path), 100000)) == plain
    if kind != "none":
        assert len(packed) < len(plain) * 0.7


def test_concatenated_zstd_frames_are_all_read(tmp_path, plain):
    half = len(plain) // 2
    packed = compress(plain[:half], "zstd") + compress(plain[half:], "zstd")
    path = write(tmp_path, "two-frames", packed)
    assert b"".join(iter_chunks(open_decompressed(path))) == plain


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_stream_is_an_error_not_a_short_read(tmp_path, plain, kind):
    packed = compress(plain, kind)
    path = write(tmp_path, "cut", packed[: len(packed) * 2 // 3])
    with pytest.raises(CompressionError, match="truncated|premature end|ends early"):
        b"".join(iter_chunks(open_decompressed(path)))


def test_corrupt_gzip_is_an_error(tmp_path, plain):
    packed = bytearray(compress(plain, "gzip"))
    packed[len(packed) // 2] ^= 0xFF
    path = write(tmp_path, "bad.gz", bytes(packed))
    with pytest.raises(CompressionError, match="corrupt|truncated|ends early"):
        b"".join(iter_chunks(open_decompressed(path)))


def test_unknown_content_names_the_file_and_its_first_bytes(tmp_path):
    path = write(tmp_path, "notes.txt", b"hello, this is not an archive" * 30)
    with pytest.raises(CompressionError) as error:
        detect_file(path)
    assert path in str(error.value) and "68656c6c6f2c2074" in str(error.value)
    empty = write(tmp_path, "empty.tar", b"")
    with pytest.raises(CompressionError, match="it is empty"):
        detect_file(empty)


def test_levels_default_and_range():
    assert check_level("zstd", None) == 3
    assert check_level("gzip", None) == 6
    assert check_level("none", 5) is None
    assert check_level("zstd", 19) == 19
    with pytest.raises(CompressionError, match="out of range for gzip: expected 1 to 9"):
        check_level("gzip", 10)
    with pytest.raises(CompressionError, match="unknown compression 'xz'"):
        check_level("xz", None)


def test_higher_level_is_not_larger(plain):
    assert len(compress(plain, "zstd", level=12)) <= len(compress(plain, "zstd", level=1))
    assert len(compress(plain, "gzip", level=9)) <= len(compress(plain, "gzip", level=1))


def test_without_zstandard_the_error_says_what_to_install(monkeypatch, tmp_path, plain):
    monkeypatch.setattr(compression, "zstandard", None)
    monkeypatch.setattr(compression, "ZSTANDARD_IMPORT_ERROR", "No module named 'zstandard'")
    with pytest.raises(CompressionError, match="python3-zstandard.*bundle's wheels.*gzip or none"):
        compressing_writer(io.BytesIO(), "zstd")
    path = write(tmp_path, "x.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 600)
    with pytest.raises(CompressionError, match="zstd is not available on this host \\(%s, Python " % re.escape(socket.gethostname())):
        open_decompressed(path)
    # gzip and none never need it
    assert compress(plain, "gzip")[:2] == b"\x1f\x8b"


def test_incompressible_data_round_trips(tmp_path):
    data = os.urandom(24 * 1024 * 1024)   # output as large as input
    packed = compress(data, "zstd", chunk=4 * 1024 * 1024)
    path = write(tmp_path, "random.zst", packed)
    assert b"".join(iter_chunks(open_decompressed(path))) == data


# --- zstd frames: every kind read, bounded output, every truncation seen -----------------

zstandard = pytest.importorskip("zstandard")


def skippable_frame(payload, nibble=0):
    return bytes([0x50 + nibble, 0x2A, 0x4D, 0x18]) + len(payload).to_bytes(4, "little") + payload


def zstd_variants():
    data = b"".join(b"line %d of a repetitive text\n" % index for index in range(3000)) + os.urandom(5000)
    plain = zstandard.ZstdCompressor(level=3).compress(data)
    checked = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True).compress(data)
    streamed = zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
    streamed = streamed.compress(data) + streamed.flush()
    empty = zstandard.ZstdCompressor().compress(b"")
    return {
        "one frame": (plain, data),
        "checksum and content size": (checked, data),
        "no content size": (streamed, data),
        "two frames": (plain + checked, data + data),
        "skippable frames around": (skippable_frame(b"meta") + plain + skippable_frame(b"", 15), data),
        "empty frame between": (plain + empty + plain, data + data),
    }


@pytest.mark.parametrize("name", list(zstd_variants()))
def test_reads_every_kind_of_stream(tmp_path, name):
    packed, data = zstd_variants()[name]
    path = write(tmp_path, "x.zst", packed)
    assert b"".join(iter_chunks(open_decompressed(path))) == data


@pytest.mark.parametrize("name", ["one frame", "checksum and content size", "two frames", "skippable frames around"])
def test_every_truncation_is_an_error(tmp_path, name):
    packed, _data = zstd_variants()[name]
    boundaries = {0, len(packed)}
    if name == "two frames":
        boundaries.add(len(zstd_variants()["one frame"][0]))
    if name == "skippable frames around":
        boundaries.add(len(skippable_frame(b"meta")))
        boundaries.add(len(packed) - len(skippable_frame(b"", 15)))
    step = max(1, len(packed) // 200)
    # from 4 bytes on the magic number says zstd; shorter files are not recognised at all
    for cut in sorted(set(range(4, len(packed), step)) | {len(packed) - 1, 4, 5, 9}):
        if cut in boundaries:
            continue
        path = write(tmp_path, "cut.zst", packed[:cut])
        with pytest.raises(CompressionError, match="truncated|corrupt"):
            b"".join(iter_chunks(open_decompressed(path)))


def test_many_small_frames_across_read_boundaries(tmp_path):
    """Frames that end inside a feed and start inside the next read of the file, empty ones among them."""
    empty = zstandard.ZstdCompressor().compress(b"")
    texts = [b"frame %d " % index * (index % 7) for index in range(40000)]
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(text) for text in texts]
    packed = b"".join(frame + (empty if index % 3 == 0 else b"") for index, frame in enumerate(frames))
    assert len(packed) > compression.RAW_PIECE
    path = write(tmp_path, "many.zst", packed)
    assert b"".join(iter_chunks(open_decompressed(path))) == b"".join(texts)
    path = write(tmp_path, "many-cut.zst", packed[:-3])
    with pytest.raises(CompressionError, match="truncated"):
        b"".join(iter_chunks(open_decompressed(path)))


def test_garbage_after_a_frame_is_corrupt(tmp_path):
    packed, _data = zstd_variants()["one frame"]
    path = write(tmp_path, "x.zst", packed + b"this is not zstd")
    with pytest.raises(CompressionError, match=r"corrupt: no frame starts \(found 74686973\) at byte %d" % len(packed)):
        b"".join(iter_chunks(open_decompressed(path)))


def test_reads_stay_small_whatever_the_ratio(tmp_path):
    """256 MiB of zeros compress to a few KB: each read must still return at most a few MB."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = b"\0" * (16 * 1024 * 1024)
    packed = b"".join(compressor.compress(zeros) for _count in range(16)) + compressor.flush()
    assert len(packed) < 1024 * 1024
    path = write(tmp_path, "zeros.zst", packed)
    reader = open_decompressed(path)
    total = largest = 0
    tracemalloc.start()
    try:
        while True:
            block = reader.read(4 * 1024 * 1024)
            if not block:
                break
            total += len(block)
            largest = max(largest, len(block))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    reader.close()
    assert total == 256 * 1024 * 1024
    assert largest <= 5 * 128 * 1024
    # what the decompressor makes of one feed is held at once, never the whole layer
    assert peak < 40 * 1024 * 1024, peak
