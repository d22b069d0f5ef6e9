"""Write packets to a pcap or pcapng file as they come, each one complete on disk at once.

``live -w FILE`` must leave a file that tcpdump and Wireshark read even when the
capture ends with Ctrl-C or SIGTERM, holding exactly the packets shown.  So the
writer is streaming and unbuffered: the file header is written when the file is
opened, and each packet is one ``os.write`` of its whole record (header and bytes
together), so the file always ends on a record boundary, whatever stops the process
between two packets.  Nothing is kept in a user-space buffer that an exit could lose.

**A failed write** (a full disk, a quota, an I/O error) can leave part of a record behind:
a file system that runs out of room part-way through a record takes what fits and
reports the short count, and only the next call fails.  A half record at the end makes
tcpdump stop with "truncated dump file", so the writer cuts the file back to the end of
the last whole record (``ftruncate`` frees blocks, so it works on a full disk) before it
reports the error with the number of packets the file holds.  The packet whose write
failed is not in the file, and ``live`` does not show it.

Formats, chosen by the file name (``.pcapng`` → pcapng, anything else → pcap):

- pcap: the nanosecond variant (magic ``0xa1b23c4d``), because live timestamps come from
  the kernel in nanoseconds; libpcap ≥ 1.5, tcpdump and Wireshark read it.
- pcapng: a Section Header Block, one Interface Description Block (link type, snap
  length, ``if_name``, ``if_tsresol`` = 9 for nanoseconds) and an Enhanced Packet Block
  per packet, with the packet's comment as ``opt_comment`` when it has one.  Byte order
  is the machine's, as the format allows.

Records whose link type differs from the file's are refused (a pcap file has one link
type, and we write one interface).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from pathlib import Path
from types import TracebackType
from typing import Final

from capdissect.errors import OutputError
from capdissect.packets import RawPacket
from capdissect.sources.pcap import MAGIC_NSEC, RECORD_HEADER, file_header
from capdissect.sources.pcapng import (
    Interface,
    enhanced_packet,
    interface_description,
    section_header,
)

_ORDER: Final = "<" if sys.byteorder == "little" else ">"
_PCAP_RECORD: Final = struct.Struct(_ORDER + RECORD_HEADER)


class PacketWriter:
    """``with PacketWriter(path, linktype, snaplen) as w: w.write(pkt)``.

    *iface* names the interface in a pcapng file.  ``packets`` counts the records
    written.  Raises OutputError when the file cannot be created or written; after a
    failed write the file still ends with the last whole record.
    """

    def __init__(self, path: str | Path, linktype: int, snaplen: int, iface: str = "") -> None:
        self.path = Path(path)
        self.linktype = linktype
        self.snaplen = snaplen
        self.pcapng = self.path.suffix.lower() == ".pcapng"
        self.packets = 0
        self._end = 0  # bytes of whole records (and the file header) in the file
        try:
            # O_TRUNC like tcpdump -w; the descriptor is ours alone, written unbuffered.
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                           0o644)
        except OSError as exc:
            raise OutputError.from_os(str(path), exc) from None
        header = self._pcapng_header(iface) if self.pcapng else self._pcap_header()
        try:
            self._write(header)
        except OutputError:
            self.close()  # the caller never gets the writer: the descriptor is ours to close
            raise

    def _pcap_header(self) -> bytes:
        return file_header(self.linktype, self.snaplen, MAGIC_NSEC, _ORDER)

    def _pcapng_header(self, iface: str) -> bytes:
        from capdissect._version import __version__  # the package imports us: import late

        # Nanosecond timestamps: live ones come from the kernel in nanoseconds.
        idb = interface_description(Interface(self.linktype, self.snaplen, 10**9, 0,
                                              iface or None))
        return section_header(f"capdissect {__version__}") + idb

    def record(self, pkt: RawPacket) -> bytes:
        """The bytes of *pkt*'s record in this file's format."""
        if pkt.linktype != self.linktype:
            raise OutputError(str(self.path), f"a packet of link type {pkt.linktype} cannot "
                              f"go into a file of link type {self.linktype}")
        data = pkt.data
        if not self.pcapng:
            return _PCAP_RECORD.pack(pkt.ts_sec, pkt.ts_nsec, len(data), pkt.wire_len) + data
        return enhanced_packet(pkt, 0, 9, [pkt.comment] if pkt.comment else [])

    def write(self, pkt: RawPacket) -> None:
        """Append *pkt*; it is in the file (the kernel's page cache) when this returns."""
        self._write(self.record(pkt))
        self.packets += 1

    def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise OutputError(str(self.path), "written after close")
        view = memoryview(data)
        try:
            # A regular file takes the whole record at once; the loop covers a short
            # write (a full disk reports ENOSPC on the next call) and is bounded by it.
            while view:
                done = os.write(fd, view)
                view = view[done:]
        except OSError as exc:
            self._cut_to_whole_records(fd)
            raise OutputError(str(self.path), f"{exc.strerror or exc} "
                                                 f"(wrote {_packets(self.packets)})") from None
        self._end += len(data)

    def _cut_to_whole_records(self, fd: int) -> None:
        """Drop what a failed write left of its record, so tcpdump reads the file to its end.

        Best effort: if even this fails (the disk is gone), the error being reported
        matters more.
        """
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._end)

    def close(self) -> None:
        """Close the file (a network file system may report a failed write only here)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        except OSError as exc:
            raise OutputError(str(self.path), f"{exc.strerror or exc} "
                                                 f"(wrote {_packets(self.packets)})") from None

    def __enter__(self) -> PacketWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _packets(count: int) -> str:
    return f"{count} packet{'s' if count != 1 else ''}"
