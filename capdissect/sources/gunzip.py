"""A streaming gzip reader that keeps every byte it could decompress, as ``zcat`` does.

Python's ``gzip.GzipFile.read`` raises when the stream ends early or is damaged and
drops what that call had decompressed, so a cut or corrupt ``.pcap.gz`` would lose up to
a chunk of packets; ``zcat F | tcpdump -r -`` prints them.  This reader hands out all
decompressed bytes first and only then ends, keeping the reason in ``error``: the
capture reader above parses every whole record and then reports it (files.py), the way
a truncated plain file behaves.  Concatenated gzip members (RFC 1952 §2.2) are read one
after the other.

The member header and trailer are read here and the deflate data inflated raw, for two
reasons: the data's checksum and size are checked after everything inflated was handed
out (zlib's gzip mode refuses the last piece instead), and the inflater starts with a
window of zeros, as gzip's own does, so that a damaged distance reaching before the
start of the data gives zeros, as ``zcat`` writes, instead of zlib's "invalid distance
too far back" (zlib is stricter than gzip there, and only there).

Memory follows the reads, never the compression ratio: zlib is asked for at most
``_OUT_CHUNK`` bytes per call (``max_length``), so a gzip bomb is streamed (or rejected
by the reader above after its first bytes) with a few MiB, whatever it expands to.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from capdissect.sources.stream import Readable

_COMPRESSED_CHUNK: Final = 1 << 16
_OUT_CHUNK: Final = 1 << 20
_MAX_HEADER: Final = 1 << 20  # a member header longer than this (a name, a comment) is damage
_GZIP_MAGIC: Final = b"\x1f\x8b"
_DEFLATE: Final = 8
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT, _RESERVED = 0x02, 0x04, 0x08, 0x10, 0xE0
_ZERO_WINDOW: Final = bytes(1 << 15)


class Gunzip:
    """``read(n)`` over the decompressed data of *head* followed by the rest of *stream*.

    ``error`` says why the data ended early (cut inside a member, damaged data, a bad
    checksum or size, trailing garbage), None if it did not.
    """

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._stream = stream
        self._pending = head  # compressed bytes not yet used
        self._out = bytearray()
        self._z: zlib._Decompress | None = None  # inside a member's deflate data
        self._crc = 0
        self._size = 0
        self._members = 0
        self._done = False
        self.error: str | None = None

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._out) < size):
            if self._z is None:
                self._start_member()
            else:
                self._inflate(self._z)
        if size < 0 or size >= len(self._out):
            data = bytes(self._out)
            self._out.clear()
        else:
            data = bytes(self._out[:size])
            del self._out[:size]
        return data

    # ----- compressed bytes ------------------------------------------------------------------
    def _more(self) -> bool:
        chunk = self._stream.read(_COMPRESSED_CHUNK)
        self._pending += chunk
        return bool(chunk)

    def _have(self, n: int) -> bool:
        while len(self._pending) < n:
            if not self._more():
                return False
        return True

    def _zero_end(self, start: int) -> int:
        """Where the zero byte ending a name or comment at *start* is, or -1."""
        while (end := self._pending.find(b"\0", start)) < 0:
            if len(self._pending) > _MAX_HEADER or not self._more():
                return -1
        return end

    # ----- a member: header, deflate data, trailer -------------------------------------------
    def _start_member(self) -> None:
        if self._members:
            # After a member: the next one, zeros gzip may pad with, the end, or garbage
            # (which gzip ignores with a warning; we say so and stop).
            self._pending = self._pending.lstrip(b"\0")
            while not self._pending:
                if not self._more():
                    self._done = True
                    return
                self._pending = self._pending.lstrip(b"\0")
            self._have(2)
            if self._pending[:2] != _GZIP_MAGIC:
                self._fail("trailing garbage after the gzip data")
                return
        start = self._header_end()
        if start < 0:
            return
        self._pending = self._pending[start:]
        self._z = zlib.decompressobj(-zlib.MAX_WBITS, zdict=_ZERO_WINDOW)
        self._crc = self._size = 0
        self._members += 1

    def _header_end(self) -> int:
        """Check the member header (RFC 1952 §2.3) at the start of the pending bytes and
        return where its deflate data starts; -1 (and ``error``) if it cannot."""
        if not self._have(10):
            self._fail("truncated gzip data: the file ends inside a member header")
            return -1
        method, flags = self._pending[2], self._pending[3]
        if method != _DEFLATE:
            self._fail(f"unknown gzip compression method {method}")
            return -1
        if flags & _RESERVED:
            self._fail(f"gzip member has flags 0x{flags:02x}, which are not supported")
            return -1
        pos = 10
        if flags & _FEXTRA:
            if not self._have(pos + 2):
                pos = -1
            else:
                pos += 2 + struct.unpack_from("<H", self._pending, pos)[0]
        for flag in (_FNAME, _FCOMMENT):
            if flags & flag and pos >= 0:
                end = self._zero_end(pos)
                pos = end + 1 if end >= 0 else -1
        if flags & _FHCRC and pos >= 0:
            pos += 2
        if pos < 0 or not self._have(pos):
            self._fail("truncated gzip data: the file ends inside a member header")
            return -1
        return pos

    def _inflate(self, z: zlib._Decompress) -> None:
        chunk = z.unconsumed_tail or self._pending or self._stream.read(_COMPRESSED_CHUNK)
        self._pending = b""
        if not chunk:
            # The file ends inside a member: what was decompressed stays readable.
            self._fail("truncated gzip data: the file ends inside a compressed member")
            return
        backup = z.copy()
        try:
            data = z.decompress(chunk, _OUT_CHUNK)
        except zlib.error as exc:
            self._salvage(backup, chunk, exc)
            return
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._out += data
        if z.eof:
            self._pending = z.unused_data
            self._z = None
            self._check_trailer()

    def _salvage(self, backup: zlib._Decompress, chunk: bytes, exc: zlib.error) -> None:
        """zlib drops a failing call's output: decompress *chunk* again a byte at a time
        from before that call, keeping everything up to the damage (as gzip writes it
        out before its error), then end the data with the error."""
        for i in range(len(chunk)):
            try:
                self._out += backup.decompress(chunk[i : i + 1])
            except zlib.error:
                break
        self._fail(f"damaged gzip data: {exc}")

    def _check_trailer(self) -> None:
        """The member's CRC-32 and size (modulo 2**32) of what it inflated to (§2.3.1)."""
        if not self._have(8):
            self._fail("truncated gzip data: the file ends inside a member trailer")
            return
        crc, size = struct.unpack_from("<II", self._pending)
        self._pending = self._pending[8:]
        if crc != self._crc:
            self._fail("damaged gzip data: crc error")
        elif size != self._size & 0xFFFFFFFF:
            self._fail("damaged gzip data: length error")

    def _fail(self, reason: str) -> None:
        self._done = True
        self.error = reason

    def close(self) -> None:
        self._stream.close()
