# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming gzip and zstd compression for image tarballs, and detection by content.

zstd uses the Python ``zstandard`` package when it can be imported, otherwise the ``zstd``
command line tool through a pipe; when neither exists the caller gets a :class:`CompressionError`
that says what to install. Nothing here holds more than one chunk of an image in memory.
"""

from __future__ import annotations

import collections
import gzip
import os
import shutil
import subprocess
import threading
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
# Compressed bytes handed to the zstd decompressor at a time (its output is bounded by blocks).
RAW_PIECE = 1024 * 1024


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


def zstd_backend(prefer=None):
    """Which zstd implementation is usable: 'python' (zstandard), 'cli' (the zstd tool) or None."""
    candidates = [prefer] if prefer else ["python", "cli"]
    for candidate in candidates:
        if candidate == "python" and zstandard is not None:
            return "python"
        if candidate == "cli" and shutil.which("zstd"):
            return "cli"
    return None


def require_zstd(prefer=None):
    """Return the zstd backend to use, or raise CompressionError saying what to install."""
    backend = zstd_backend(prefer)
    if backend is None:
        raise CompressionError(
            "zstd is not available on this host: install the Python package zstandard (Debian: python3-zstandard) "
            "or the zstd command line tool (Debian: zstd), or use compression gzip or none"
            + (" (import error: %s)" % ZSTANDARD_IMPORT_ERROR if ZSTANDARD_IMPORT_ERROR and prefer != "cli" else "")
        )
    return backend


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


class _ZstdCliWriter:
    """Feeds the zstd tool on stdin; a thread hands its stdout to the sink so neither pipe can block."""

    def __init__(self, sink, level, threads):
        self._sink = sink
        command = ["zstd", "-q", "-c", "-%d" % level, "-T%d" % (0 if threads < 0 else threads)]
        if level > 19:
            command.insert(1, "--ultra")
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._error = None
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self):
        try:
            while True:
                block = self._proc.stdout.read(READ_SIZE)
                if not block:
                    return
                self._sink(block)
        except Exception as exc:  # reported by close(); the thread must not die silently
            self._error = exc

    def write(self, data):
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError as exc:
            self._reader.join()
            raise CompressionError("the zstd tool stopped while compressing: %s" % self._stderr()) from exc

    def _stderr(self):
        return self._proc.stderr.read().decode("utf-8", "replace").strip() or "exit code %s" % self._proc.returncode

    def close(self):
        self._proc.stdin.close()
        self._reader.join()
        code = self._proc.wait()
        if self._error is not None:
            raise self._error
        if code != 0:
            raise CompressionError("the zstd tool failed while compressing (exit %d): %s" % (code, self._stderr()))

    def abort(self):
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._reader.join()


def compressing_writer(out, compression, level=None, threads=-1, zstd_prefer=None):
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
    if require_zstd(zstd_prefer) == "python":
        return _CompressorWriter(sink, zstandard.ZstdCompressor(level=level, threads=threads).compressobj())
    return _ZstdCliWriter(sink, level, threads)


class ZstdFrameWalker:
    """Follows the structure of a zstd stream (RFC 8878) without decompressing it.

    feed(data) returns `data` cut into pieces ``("data", bytes)`` and frame ends ``("end", b"")``.
    A data piece spans at most `max_blocks` block ends; a block decompresses to 128 KiB at most,
    so whatever the compression ratio, decompressing one piece yields a bounded amount. finish()
    raises CompressionError when the stream stops inside a frame, which zstandard's decompressor
    does not report.
    """

    def __init__(self, max_blocks=4):
        self.max_blocks = max_blocks
        self.offset = 0
        self._state = "magic"
        self._need = 4
        self._header = bytearray()
        self._header_start = 0
        self._payload = 0
        self._checksum = False
        self._last_block = False
        self._blocks = 0

    def feed(self, data):
        pieces = []
        start = 0
        position = 0
        length = len(data)
        # an empty block or skippable frame ends without consuming a byte: handle it even at the end
        while position < length or (self._state in ("payload", "checksum", "skippable") and not self._payload):
            if self._state in ("payload", "checksum", "skippable"):
                take = min(self._payload, length - position)
                position += take
                self._payload -= take
                if self._payload:
                    continue
                if self._state == "payload" and not self._last_block:
                    self._blocks += 1
                    if self._blocks >= self.max_blocks:
                        pieces.append(("data", data[start:position]))
                        start = position
                        self._blocks = 0
                    self._expect("block", 3)
                elif self._state == "payload" and self._checksum:
                    self._state = "checksum"
                    self._payload = 4
                else:
                    pieces.append(("data", data[start:position]))
                    pieces.append(("end", b""))
                    start = position
                    self._expect("magic", 4)
                continue
            if not self._header:
                self._header_start = self.offset + position
            take = min(self._need - len(self._header), length - position)
            self._header += data[position:position + take]
            position += take
            if len(self._header) == self._need:
                self._parse_header()
        if start < length:
            pieces.append(("data", data[start:]))
        self.offset += length
        return pieces

    def _expect(self, state, need):
        self._state = state
        self._need = need
        self._header = bytearray()

    def _corrupt(self, what):
        raise CompressionError("the zstd stream is corrupt: %s at byte %d" % (what, self._header_start))

    def _parse_header(self):
        header = self._header
        if self._state == "magic":
            if bytes(header) == b"\x28\xb5\x2f\xfd":
                self._state = "descriptor"
                self._need = 5
                self._blocks = 0
            elif 0x50 <= header[0] <= 0x5F and bytes(header[1:4]) == b"\x2a\x4d\x18":
                self._state = "skippable_size"
                self._need = 8
            else:
                self._corrupt("no frame starts (found %s)" % bytes(header).hex())
        elif self._state == "skippable_size":
            self._state = "skippable"
            self._payload = int.from_bytes(header[4:8], "little")
            self._header = bytearray()
        elif self._state == "descriptor":
            descriptor = header[4]
            if descriptor & 0x08:
                self._corrupt("reserved bit set in a frame header")
            single_segment = bool(descriptor & 0x20)
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03] + (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
            self._checksum = bool(descriptor & 0x04)
            if rest:
                self._state = "frame_header"
                self._need = 5 + rest
            else:
                self._expect("block", 3)
        elif self._state == "frame_header":
            self._expect("block", 3)
        elif self._state == "block":
            value = int.from_bytes(header, "little")
            block_type = (value >> 1) & 3
            if block_type == 3:
                self._corrupt("reserved block type")
            self._last_block = bool(value & 1)
            self._state = "payload"
            self._header = bytearray()
            self._payload = 1 if block_type == 1 else value >> 3

    def finish(self):
        """Raise CompressionError unless the stream ended exactly at the end of a frame."""
        if self._state != "magic" or self._header:
            raise CompressionError("the zstd stream ends in the middle of a frame after %d bytes (the file is truncated)" % self.offset)


class _ZstdPythonReader:
    """Decompresses every frame of a zstd file (zstd -T and concatenated files write several).

    The input is cut at block boundaries (ZstdFrameWalker) and decompressed one piece per read,
    so a read never returns more than a few MB, even from layers of zeros that compress a
    thousandfold.
    """

    def __init__(self, handle):
        self._handle = handle
        self._decompressor = zstandard.ZstdDecompressor()
        self._current = self._decompressor.decompressobj()
        self._walker = ZstdFrameWalker()
        self._pieces = collections.deque()

    def read(self, size=READ_SIZE):
        while True:
            if not self._pieces:
                raw = self._handle.read(RAW_PIECE)
                if not raw:
                    self._walker.finish()
                    return b""
                self._pieces.extend(self._walker.feed(raw))
                continue
            kind, piece = self._pieces.popleft()
            if kind == "end":
                self._current = self._decompressor.decompressobj()
                continue
            try:
                output = self._current.decompress(piece)
            except zstandard.ZstdError as exc:
                raise CompressionError("the zstd stream is corrupt: %s" % exc) from exc
            if output:
                return output

    def close(self):
        self._handle.close()


class _ZstdCliReader:
    """The zstd tool decompressing from the caller's open file (its descriptor is the tool's stdin)."""

    def __init__(self, handle, label):
        self._label = label
        self._proc = subprocess.Popen(["zstd", "-q", "-d", "-c"], stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, size=READ_SIZE):
        block = self._proc.stdout.read(size)
        if not block:
            code = self._proc.wait()
            if code != 0:
                message = self._proc.stderr.read().decode("utf-8", "replace").strip()
                raise CompressionError("the zstd tool could not decompress %s (exit %d): %s" % (self._label, code, message))
        return block

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()


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


def open_decompressed(source, zstd_prefer=None, label=None):
    """Return a reader whose read(n) gives the plain tar bytes of `source`; call close().

    `source` is a path, or an open unbuffered binary file read from its current position and left
    open (image_load hashes and loads one descriptor). The compression is detected from the content
    (magic bytes), not from the file name.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        handle = open(source, "rb", buffering=0)  # unbuffered: the zstd tool reads the descriptor from here
        label = label or source
    else:
        handle = _Borrowed(source)
        label = label or getattr(source, "name", "the file")
    try:
        kind = detect_handle(source if isinstance(handle, _Borrowed) else handle, label)
        if kind == "zstd" and require_zstd(zstd_prefer) == "cli":
            reader = _ZstdCliReader(source if isinstance(handle, _Borrowed) else handle, label)
            handle.close()  # the tool holds its own copy of the descriptor
            return reader
    except BaseException:
        handle.close()
        raise
    if kind == "zstd":
        return _ZstdPythonReader(handle)
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
