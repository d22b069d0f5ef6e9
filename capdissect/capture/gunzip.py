"""A streaming gzip reader that keeps every byte it could decompress.

Python's ``gzip.GzipFile.read`` raises when the stream ends early or is damaged and
drops what that call had decompressed, so a cut or corrupt ``.pcap.gz`` would lose up to
a chunk of packets; ``zcat F | tcpdump -r -`` prints them.  This reader hands out all
decompressed bytes first and only then ends, keeping the reason in ``error``: the
capture reader above parses every whole record and then reports it (files.py), the way
a truncated plain file behaves.  Concatenated gzip members (RFC 1952 §2.2) are read one
after the other.

Memory follows the reads, never the compression ratio: zlib is asked for at most
``_OUT_CHUNK`` bytes per call (``max_length``), so a gzip bomb is streamed (or rejected
by the reader above after its first bytes) with a few MiB, whatever it expands to.
"""

from __future__ import annotations

import zlib
from typing import Final

from capdissect.capture.stream import Readable

_COMPRESSED_CHUNK: Final = 1 << 16
_OUT_CHUNK: Final = 1 << 20
_GZIP_WINDOW: Final = 16 + zlib.MAX_WBITS  # zlib's "gzip header and trailer" mode
_GZIP_MAGIC: Final = b"\x1f\x8b"


class Gunzip:
    """``read(n)`` over the decompressed data of *head* followed by the rest of *stream*.

    ``error`` says why the data ended early (cut inside a member, damaged data, a bad
    checksum, trailing garbage), None if it did not.
    """

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._stream = stream
        self._pending = head  # compressed bytes not yet fed to zlib
        self._out = bytearray()
        self._z = zlib.decompressobj(_GZIP_WINDOW)
        self._done = False
        self.error: str | None = None

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._out) < size):
            self._inflate()
        if size < 0 or size >= len(self._out):
            data = bytes(self._out)
            self._out.clear()
        else:
            data = bytes(self._out[:size])
            del self._out[:size]
        return data

    def _inflate(self) -> None:
        chunk = self._z.unconsumed_tail or self._pending or self._stream.read(_COMPRESSED_CHUNK)
        self._pending = b""
        if not chunk:
            # The file ends inside a member (the end after a whole member is found in
            # _next_member): what was decompressed stays readable.
            self._fail("truncated gzip data: the file ends inside a compressed member")
            return
        backup = self._z.copy()
        try:
            self._out += self._z.decompress(chunk, _OUT_CHUNK)
        except zlib.error as exc:
            self._salvage(backup, chunk, exc)
            return
        if self._z.eof:
            self._next_member(self._z.unused_data)

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

    def _next_member(self, rest: bytes) -> None:
        """After a member's trailer: the next member, zeros gzip may pad with, the end of
        the file, or garbage (which gzip ignores with a warning; we say so and stop)."""
        rest = rest.lstrip(b"\0")
        while not rest:
            more = self._stream.read(_COMPRESSED_CHUNK)
            if not more:
                self._done = True
                return
            rest = more.lstrip(b"\0")
        if not _GZIP_MAGIC.startswith(rest[:2]):
            self._fail("trailing garbage after the gzip data")
            return
        self._z = zlib.decompressobj(_GZIP_WINDOW)
        self._pending = rest

    def _fail(self, reason: str) -> None:
        self._done = True
        self.error = reason

    def close(self) -> None:
        self._stream.close()
