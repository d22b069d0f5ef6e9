"""A streaming gzip reader that keeps every byte it could decompress.

Python's ``gzip.GzipFile.read`` raises when the stream ends early and drops what that
call had decompressed, so a cut ``.pcap.gz`` would lose up to a chunk of packets;
``zcat F | tcpdump -r -`` prints them.  This reader hands out all decompressed bytes
first and reports the early end afterwards, the way a truncated plain file behaves.
Concatenated gzip members (RFC 1952 §2.2) are read one after the other.
"""

from __future__ import annotations

import zlib
from typing import Final

from capdissect.capture.stream import Readable
from capdissect.errors import CaptureError

_COMPRESSED_CHUNK: Final = 1 << 16
_GZIP_WINDOW: Final = 16 + zlib.MAX_WBITS  # zlib's "gzip header and trailer" mode


class Gunzip:
    """``read(n)`` over the decompressed data of *head* followed by the rest of *stream*."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._stream = stream
        self._pending = head  # compressed bytes not yet fed to zlib
        self._out = bytearray()
        self._z = zlib.decompressobj(_GZIP_WINDOW)
        self._done = False
        self.truncated = False  # the stream ended inside a gzip member

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
        chunk = self._pending or self._stream.read(_COMPRESSED_CHUNK)
        self._pending = b""
        if not chunk:
            self._done = True
            # Cut inside a member: what was decompressed stays readable; the reader above
            # then meets the end of data mid-record and says the file is truncated.
            self.truncated = not self._z.eof or bool(self._z.unconsumed_tail)
            return
        try:
            self._out += self._z.decompress(chunk)
        except zlib.error as exc:
            raise CaptureError(f"damaged gzip data: {exc}") from None
        if self._z.eof:
            rest = self._z.unused_data
            self._z = zlib.decompressobj(_GZIP_WINDOW)
            self._pending = rest.lstrip(b"\0")  # gzip may pad members with zeros
            if not self._pending:
                probe = self._stream.read(_COMPRESSED_CHUNK)
                if not probe:
                    self._done = True
                    return
                self._pending = probe

    def close(self) -> None:
        self._stream.close()
