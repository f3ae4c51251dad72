# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming gzip and zstd compression for image tarballs, and detection by content.

zstd uses the Python ``zstandard`` package (managed hosts get it from the bundle's wheels); when it
cannot be imported the caller gets a :class:`CompressionError` that says what to install. Nothing
here holds a whole image in memory: every read is bounded.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
import zlib

try:
    import zstandard

    ZSTANDARD_IMPORT_ERROR = None
except ImportError as exc:
    zstandard = None
    ZSTANDARD_IMPORT_ERROR = str(exc)

COMPRESSIONS = ("none", "gzip", "zstd")
SUFFIXES = {"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}
DEFAULT_LEVELS = {"none": None, "gzip": 6, "zstd": 3}
LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 22)}

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A zstd stream may also begin with a skippable frame: magic 0x184D2A50..0x184D2A5F, little endian.
ZSTD_SKIPPABLE_TAIL = b"\x2a\x4d\x18"
TAR_MAGIC_OFFSET = 257
# The first bytes needed to tell a tar header from gzip or zstd.
DETECT_BYTES = 512

READ_SIZE = 4 * 1024 * 1024
# Compressed bytes read from a zstd file at a time, fed to the decompressor at a time, and the most plain
# bytes one read returns.
RAW_PIECE = 1024 * 1024
MAX_ZSTD_READ = 512 * 1024
ZSTD_FEED = 512


class CompressionError(Exception):
    """A stream could not be compressed, decompressed or recognised; the message names it."""


def detect_compression(head):
    """Return 'gzip', 'zstd' or 'none' (a plain tar) for the first bytes of a stream, else None."""
    head = bytes(head[:DETECT_BYTES])
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if len(head) >= 4 and 0x50 <= head[0] <= 0x5F and head[1:4] == ZSTD_SKIPPABLE_TAIL:
        return "zstd"
    if head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "none"
    # Old V7 tar headers carry no magic; a valid header checksum identifies them.
    if len(head) == DETECT_BYTES and _tar_checksum_ok(head):
        return "none"
    return None


def _tar_checksum_ok(header):
    stored = header[148:156].replace(b"\x00", b" ").strip()
    try:
        expected = int(stored, 8) if stored else None
    except ValueError:
        return False
    if expected is None:
        return False
    return expected == sum(header[:148]) + 8 * 32 + sum(header[156:512])


def check_level(compression, level):
    """Return the level to use for `compression` (its default when `level` is None) or raise."""
    if compression not in COMPRESSIONS:
        raise CompressionError("unknown compression %r: expected one of %s" % (compression, ", ".join(COMPRESSIONS)))
    if compression == "none":
        return None
    if level is None:
        return DEFAULT_LEVELS[compression]
    low, high = LEVEL_RANGES[compression]
    if not low <= level <= high:
        raise CompressionError("compression level %s is out of range for %s: expected %d to %d" % (level, compression, low, high))
    return level


def require_zstd():
    """Raise CompressionError naming this host, its Python and what to install when zstandard is missing."""
    if zstandard is None:
        raise CompressionError(
            "zstd is not available on this host (%s, Python %s): install the Python package zstandard there (Debian: "
            "python3-zstandard; pip install zstandard; the offline_images role installs it from the bundle's wheels), "
            "or make the bundle with compression gzip or none (import error: %s)"
            % (socket.gethostname(), sys.executable, ZSTANDARD_IMPORT_ERROR))


class _PlainWriter:
    def __init__(self, sink):
        self._sink = sink

    def write(self, data):
        self._sink(data)

    def close(self):
        pass

    def abort(self):
        pass


class _CompressorWriter:
    """Compresses in this process through any object with compress() and flush() (zlib's, zstandard's)."""

    def __init__(self, sink, compressor):
        self._sink = sink
        self._compressor = compressor

    def write(self, data):
        out = self._compressor.compress(data)
        if out:
            self._sink(out)

    def close(self):
        self._sink(self._compressor.flush())

    def abort(self):
        pass


def compressing_writer(out, compression, level=None, threads=-1):
    """Return a writer whose write(data) compresses `data` and writes the result to `out`.

    close() flushes the end of the compressed stream into `out` (it does not close `out`);
    abort() gives up. `threads` applies to zstd: -1 uses one worker per CPU, 0 none.
    """
    level = check_level(compression, level)
    sink = out.write
    if compression == "none":
        return _PlainWriter(sink)
    if compression == "gzip":
        # wbits 31: zlib's deflate with a gzip header and trailer, what `gzip` writes.
        return _CompressorWriter(sink, zlib.compressobj(level, zlib.DEFLATED, 31))
    require_zstd()
    return _CompressorWriter(sink, zstandard.ZstdCompressor(level=level, threads=threads).compressobj())


class _ZstdReader:
    """Decompresses every frame of a zstd file (zstd -T and concatenated files write several).

    One zstandard decompressobj reads one frame; its ``eof`` says the frame ended and its
    ``unused_data`` is where the next frame starts, so input that ends inside a frame is an error,
    not a short read. Input goes in ZSTD_FEED bytes at a time: zstd makes at most one 128 KiB block
    of 4 bytes, so one feed gives at most 16 MiB even for layers of zeros that compress a
    thousandfold, and read() hands it out in pieces of at most MAX_ZSTD_READ.
    """

    def __init__(self, handle):
        self._handle = handle
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = None  # the decompressobj of the frame being read; None between frames
        self._frame_start = self._offset = 0  # in compressed bytes
        self._frame_head = b""
        self._input = memoryview(b"")
        self._carry = b""  # what a frame's last feed held past its end (at most ZSTD_FEED bytes)
        self._output = memoryview(b"")

    def read(self, size=READ_SIZE):
        if size is None or size < 0 or size > MAX_ZSTD_READ:
            size = MAX_ZSTD_READ
        while not self._output and self._feed():
            pass
        block, self._output = self._output[:size], self._output[size:]
        return bytes(block)

    def _feed(self):
        """Decompress the next piece of input into self._output; False at the end of the last frame."""
        if not self._input and not self._carry:
            self._input = memoryview(self._handle.read(RAW_PIECE))
            if not self._input:
                if self._frame is not None:
                    raise CompressionError(
                        "the zstd stream ends inside the frame that starts at byte %d (the file is truncated at byte %d)"
                        % (self._frame_start, self._offset))
                return False
        if self._frame is None:
            self._frame = self._decompressor.decompressobj()
            self._frame_start, self._frame_head = self._offset, bytes((self._carry or self._input)[:4])
        if self._carry:
            piece, self._carry = self._carry, b""
        else:
            piece, self._input = self._input[:ZSTD_FEED], self._input[ZSTD_FEED:]
        try:
            self._output = memoryview(self._frame.decompress(piece))
        except zstandard.ZstdError as exc:
            raise CompressionError("the zstd stream is corrupt: %s" % self._where(exc)) from exc
        self._offset += len(piece)
        if self._frame.eof:
            self._carry = bytes(self._frame.unused_data)
            self._offset -= len(self._carry)
            self._frame = None
        return True

    def _where(self, exc):
        if len(self._frame_head) == 4 and detect_compression(self._frame_head) != "zstd":
            return "no frame starts (found %s) at byte %d" % (self._frame_head.hex(), self._frame_start)
        return "%s (in the frame that starts at byte %d)" % (exc, self._frame_start)

    def close(self):
        self._handle.close()


class _GzipReader:
    def __init__(self, handle):
        self._handle = handle
        self._gzip = gzip.GzipFile(fileobj=handle, mode="rb")

    def read(self, size=READ_SIZE):
        try:
            return self._gzip.read(size)
        except EOFError as exc:
            raise CompressionError("the gzip stream ends early (the file is truncated): %s" % exc) from exc
        except (OSError, zlib.error) as exc:
            raise CompressionError("the gzip stream is corrupt: %s" % exc) from exc

    def close(self):
        self._gzip.close()
        self._handle.close()


class _PlainReader:
    def __init__(self, handle):
        self._handle = handle

    def read(self, size=READ_SIZE):
        return self._handle.read(size)

    def close(self):
        self._handle.close()


def detect_handle(handle, label):
    """The compression of an open file, judged by its first bytes; the position is put back."""
    position = handle.tell()
    head = handle.read(DETECT_BYTES)
    handle.seek(position)
    kind = detect_compression(head)
    if kind is None:
        raise CompressionError(
            "%s is neither a tar archive nor gzip nor zstd compressed (it starts with %s)" % (label, head[:8].hex() or "nothing: it is empty")
        )
    return kind


def detect_file(path):
    """Return the compression of the file at `path`, judged by its first bytes, or raise."""
    with open(path, "rb") as handle:
        return detect_handle(handle, path)


class _Borrowed:
    """The caller's open file, read through but left open: the caller reads it again (hash, then load)."""

    def __init__(self, handle):
        self._handle = handle

    def read(self, size=-1):
        return self._handle.read(size)

    def readinto(self, buffer):
        return self._handle.readinto(buffer)

    def close(self):
        pass


def open_decompressed(source, label=None):
    """Return a reader whose read(n) gives the plain tar bytes of `source`; call close().

    `source` is a path, or an open binary file read from its current position and left open
    (image_load hashes and loads one descriptor). The compression is detected from the content
    (magic bytes), not from the file name.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        handle = open(source, "rb")
        label = label or source
    else:
        handle = _Borrowed(source)
        label = label or getattr(source, "name", "the file")
    try:
        kind = detect_handle(source if isinstance(handle, _Borrowed) else handle, label)
        if kind == "zstd":
            require_zstd()
            return _ZstdReader(handle)
    except BaseException:
        handle.close()
        raise
    if kind == "gzip":
        return _GzipReader(handle)
    return _PlainReader(handle)


def iter_chunks(reader, chunk_size=READ_SIZE):
    """Yield what `reader` gives chunk by chunk, and close it at the end (or when abandoned)."""
    try:
        while True:
            block = reader.read(chunk_size)
            if not block:
                return
            yield block
    finally:
        reader.close()
