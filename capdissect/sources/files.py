"""Open a capture file (pcap or pcapng, plain or gzip) from a path or stdin.

This is the IO edge of file reading: it opens the stream, sniffs the format from
the first bytes and hands a ChunkReader to the pure format readers.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket, RecordBatch, snapshot_length
from capdissect.sources.gunzip import Gunzip
from capdissect.sources.pcap import PcapHeader, is_pcap, read_batches, read_pcap
from capdissect.sources.pcapng import Interface, PcapngReader, is_pcapng
from capdissect.sources.stream import ChunkReader, Readable

GZIP_MAGIC = b"\x1f\x8b"
# What reading a stream can raise besides our own errors (a disk or pipe failing).
_STREAM_ERRORS = (OSError, EOFError)
_T = TypeVar("_T")
# Set by the CLI around long work on a file: called with (bytes read, file size) about
# once per MiB read (capdissect/commands/progress.py draws the bar).
PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar("capdissect_progress",
                                                                   default=None)


class CaptureFile:
    """An open capture: ``linktype``/``snaplen`` of the first interface, iterate for packets.

    ``big_endian`` is the byte order the file was written in (of its first section).
    """

    def __init__(self, stream: BinaryIO, name: str, owned: bool) -> None:
        self.name = name
        self._owned = owned
        self._stream: Readable = stream
        self._gzip: Gunzip | None = None
        self._pcapng: PcapngReader | None = None
        self._pcap: PcapHeader | None = None
        try:
            self._reader = self._open(stream)
        except CaptureError as exc:
            raise self._named(self._cause(exc)) from None
        except _STREAM_ERRORS as exc:  # e.g. EIO on the first read (/proc/self/mem)
            raise self._stream_error(exc) from None

    def _open(self, stream: BinaryIO) -> ChunkReader:
        """Sniff the format from the first bytes and read the file header."""
        head = stream.read(4)
        if head[:2] == GZIP_MAGIC:
            self._gzip = Gunzip(head, stream)
            self._stream = self._gzip
            head = self._gzip.read(4)
        if not head:
            raise CaptureError("empty file, not a capture")
        reader = ChunkReader(self._stream, head, on_fill=_progress(stream))
        if is_pcapng(head):
            self._pcapng = PcapngReader(reader)
            first = self._pcapng.first_interface
            self.format = "pcapng"
            self.big_endian = self._pcapng.order == ">"
            self.linktype = first.linktype if first else 1
            self.snaplen = snapshot_length(first.snaplen if first else 0)
        elif is_pcap(head):
            self._pcap = PcapHeader(reader.take(24))
            self.format = "pcap"
            self.big_endian = self._pcap.big_endian
            self.linktype = self._pcap.linktype
            self.snaplen = snapshot_length(self._pcap.snaplen)
        else:
            raise CaptureError("unknown file format, not a pcap or pcapng capture")
        return reader

    def __iter__(self) -> Iterator[RawPacket]:
        if self._pcapng is not None:
            return self._guarded(iter(self._pcapng))
        assert self._pcap is not None
        return self._guarded(read_pcap(self._reader, self._pcap))

    def lists(self) -> Iterator[list[RawPacket]]:
        """The packets a list at a time (a buffer's worth, or one): the same packets,
        errors and end as iterating the file, without a generator step per packet."""
        if self._pcapng is not None:
            return self._guarded(self._pcapng.lists())
        assert self._pcap is not None
        return self._guarded(batch.packets() for batch in read_batches(self._reader,
                                                                       self._pcap))

    def batches(self) -> Iterator[RecordBatch]:
        """A classic pcap file's records a buffer at a time (``read``'s fast path); the
        same records, errors and end as iterating the file."""
        if self._pcap is None:
            raise TypeError("only classic pcap files are read in batches")
        return self._guarded(read_batches(self._reader, self._pcap))

    def _guarded(self, items: Iterator[_T]) -> Iterator[_T]:
        try:
            yield from items
        except CaptureError as exc:
            raise self._named(self._cause(exc)) from None
        except _STREAM_ERRORS as exc:
            raise self._stream_error(exc) from None
        if self._gzip is not None and self._gzip.error is not None:
            # Damaged gzip data ends the decompressed stream early, maybe at a record
            # boundary: every record before it was read; now say why it ended.
            raise self._named(CaptureError(self._gzip.error))

    def _cause(self, exc: CaptureError) -> CaptureError:
        """What to report when a reader stopped: damaged gzip data under it is the cause
        of the cut record the reader met, so that is reported rather than the cut."""
        if self._gzip is not None and self._gzip.error is not None:
            return CaptureError(self._gzip.error)
        return exc

    def _stream_error(self, exc: OSError | EOFError) -> CaptureError:
        """A disk or pipe failing under the reader, as one line naming the file."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return CaptureError(f"{self.name}: {reason}")

    def _named(self, exc: CaptureError) -> CaptureError:
        """The format readers' errors, with the file's name in front (one place for it)."""
        if isinstance(exc, TruncatedFile):
            return TruncatedFile(exc.what, exc.offset, exc.need, exc.have, self.name)
        return CaptureError(f"{self.name}: {exc}")

    @property
    def interfaces(self) -> list[Interface]:
        """The interfaces described so far: a pcapng file's IDBs read up to now (each comes
        before its first packet), or the one interface of a pcap file."""
        if self._pcapng is not None:
            return list(self._pcapng.interfaces)
        units = 10**9 if self._pcap is not None and self._pcap.nanosecond else 10**6
        return [Interface(self.linktype, self.snaplen, units, 0, None)]

    def interfaces_from(self, known: int) -> list[Interface]:
        """The interfaces described after the first *known* (``interfaces[known:]``, without
        copying the whole list: a file may declare 100,000 of them)."""
        if self._pcapng is not None:
            return self._pcapng.interfaces[known:]
        return self.interfaces[known:]

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


def _progress(stream: BinaryIO) -> Callable[[], None] | None:
    """What tells ``PROGRESS`` how far into a regular file reading is (none for pipes)."""
    hook = PROGRESS.get()
    if hook is None:
        return None
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    size = info.st_size
    return lambda: hook(stream.tell(), size)


def open_capture(path: str | Path) -> CaptureFile:
    """Open *path* (``-`` for stdin) as a capture file; raise CaptureError if it is not one."""
    name = str(path)
    if name == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise CaptureError("-: standard input is closed")
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
