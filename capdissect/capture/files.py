"""Open a capture file (pcap or pcapng, plain or gzip) from a path or stdin.

This is the IO edge of file reading: it opens the stream, sniffs the format from
the first bytes and hands a ChunkReader to the pure format readers.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from capdissect.capture.pcap import PcapHeader, is_pcap, read_pcap
from capdissect.capture.pcapng import Interface, PcapngReader, is_pcapng
from capdissect.capture.stream import ChunkReader, Readable
from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket

GZIP_MAGIC = b"\x1f\x8b"
# What a damaged gzip stream raises: BadGzipFile (an OSError), EOFError when it ends early,
# zlib.error for corrupt deflate data.
_STREAM_ERRORS = (OSError, EOFError, zlib.error)


class CaptureFile:
    """An open capture: ``linktype``/``snaplen`` of the first interface, iterate for packets.

    ``big_endian`` is the byte order the file was written in (of its first section).
    """

    def __init__(self, stream: BinaryIO, name: str, owned: bool) -> None:
        self.name = name
        self._owned = owned
        self._stream: Readable = stream
        head = stream.read(4)
        if head[:2] == GZIP_MAGIC:
            self._stream = gzip.GzipFile(
                fileobj=io.BufferedReader(_Prefixed(head, stream)), mode="rb"
            )
            try:
                head = self._stream.read(4)
            except _STREAM_ERRORS as exc:
                raise CaptureError(f"{name}: {exc}") from None
        if not head:
            raise CaptureError(f"{name}: empty file, not a capture")
        reader = ChunkReader(self._stream, head)
        self._pcapng: PcapngReader | None = None
        self._pcap: PcapHeader | None = None
        try:
            if is_pcapng(head):
                self._pcapng = PcapngReader(reader)
                first = self._pcapng.first_interface
                self.format = "pcapng"
                self.big_endian = self._pcapng.order == ">"
                self.linktype = first.linktype if first else 1
                self.snaplen = first.snaplen if first else 0
            elif is_pcap(head):
                self._pcap = PcapHeader(reader.take(24))
                self.format = "pcap"
                self.big_endian = self._pcap.big_endian
                self.linktype = self._pcap.linktype
                self.snaplen = self._pcap.snaplen
            else:
                raise CaptureError(f"{name}: unknown file format, not a pcap or pcapng capture")
        except TruncatedFile as exc:
            raise TruncatedFile(exc.what, exc.offset, exc.need, exc.have, name) from None
        except _STREAM_ERRORS as exc:  # gzip errors surface here
            raise CaptureError(f"{name}: {exc}") from None
        self._reader = reader

    def __iter__(self) -> Iterator[RawPacket]:
        try:
            if self._pcapng is not None:
                yield from self._pcapng
            elif self._pcap is not None:
                yield from read_pcap(self._reader, self._pcap)
        except TruncatedFile as exc:
            raise TruncatedFile(exc.what, exc.offset, exc.need, exc.have, self.name) from None
        except _STREAM_ERRORS as exc:
            raise CaptureError(f"{self.name}: {exc}") from None

    @property
    def interfaces(self) -> list[Interface]:
        """The interfaces described so far: a pcapng file's IDBs read up to now (each comes
        before its first packet), or the one interface of a pcap file."""
        if self._pcapng is not None:
            return list(self._pcapng.interfaces)
        units = 10**9 if self._pcap is not None and self._pcap.nanosecond else 10**6
        return [Interface(self.linktype, self.snaplen, units, 0, None)]

    def close(self) -> None:
        if self._owned:
            self._stream.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Prefixed(io.RawIOBase):
    """A read-only stream that first returns *head*, then the rest of *stream*.

    Lets us sniff magic bytes from stdin (which cannot seek) and still hand the whole
    stream to gzip.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def open_capture(path: str | Path) -> CaptureFile:
    """Open *path* (``-`` for stdin) as a capture file; raise CaptureError if it is not one."""
    name = str(path)
    if name == "-":
        return CaptureFile(sys.stdin.buffer, "-", owned=False)
    try:
        stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by CaptureFile.close
    except OSError as exc:
        raise CaptureError(f"{name}: {exc.strerror or exc}") from None
    try:
        return CaptureFile(stream, name, owned=True)
    except BaseException:
        stream.close()
        raise
