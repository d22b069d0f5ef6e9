"""A chunked byte reader shared by the pcap and pcapng readers.

Reading a capture record by record with ``file.read`` costs two calls per packet;
reading 1 MiB at a time and slicing keeps the readers fast while memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

CHUNK: Final = 1 << 20


class Readable(Protocol):
    """What the readers need of a stream: a file, stdin's buffer or a gzip stream."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class ChunkReader:
    """Hands out exact-size pieces of a stream, reading it in large chunks."""

    __slots__ = ("_buf", "_eof", "_on_fill", "_pos", "_read", "consumed")

    def __init__(self, stream: Readable, head: bytes = b"",
                 on_fill: Callable[[], None] | None = None) -> None:
        # read1 returns what a pipe has now instead of waiting for a whole chunk, so
        # packets from `tcpdump -U -w - | capdissect read -` show as they come.
        self._read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
        self._on_fill = on_fill  # called after each read from the stream (progress)
        self._buf = head
        self._pos = 0
        self._eof = False
        self.consumed = 0  # bytes of the stream handed out before the current buffer

    def take(self, n: int) -> bytes:
        """Return the next *n* bytes, or fewer if the stream ends first."""
        end = self._pos + n
        if end > len(self._buf):
            self._fill(n)
            end = self._pos + n
        piece = self._buf[self._pos : end]
        self._pos += len(piece)
        return piece

    def window(self, pos: int | None, n: int) -> tuple[bytes, int]:
        """Move to *pos* in the current buffer (None: stay) and make at least *n* bytes
        visible from there (fewer at the end of the stream); return the buffer and the
        position in it.  The pcap reader unpacks records in place this way.
        """
        if pos is not None:
            self._pos = pos
        if self._pos + n > len(self._buf):
            self._fill(n)
        return self._buf, self._pos

    def skip(self, n: int) -> int:
        """Pass over the next *n* bytes without keeping them (a chunk at a time, so a huge
        block costs no memory); return how many there were."""
        end = self._pos + n
        if end <= len(self._buf):  # the common case: a small block inside the buffer
            self._pos = end
            return n
        done = 0
        while done < n:
            if self._pos >= len(self._buf):
                self._fill(1)
                if self._pos >= len(self._buf):
                    break
            step = min(n - done, len(self._buf) - self._pos)
            self._pos += step
            done += step
        return done

    @property
    def offset(self) -> int:
        """Offset in the stream of the next byte ``take`` returns."""
        return self.consumed + self._pos

    def _fill(self, n: int) -> None:
        rest = self._buf[self._pos :]
        self.consumed += self._pos
        have = len(rest)
        # With nothing left over, a chunk read becomes the buffer as it is.  With a piece
        # of a record left over, only the rest of what is asked for is read, so joining
        # copies that record, not a whole chunk (large segments straddle every chunk's
        # end): the next fill then starts afresh.
        parts = [rest] if rest else []
        while have < n and not self._eof:
            chunk = self._read(max(CHUNK, n - have) if not rest else n - have)
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            have += len(chunk)
            if self._on_fill is not None:
                self._on_fill()
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0
