"""pcapng files: SHB, IDB, EPB, SPB and the obsolete PB, in either byte order.

Spec: draft-ietf-opsawg-pcapng.  Each section has its own byte order and interfaces;
each interface has its own link type, snap length and timestamp resolution
(``if_tsresol``) and offset (``if_tsoffset``).  Packet comments (``opt_comment``) are kept.
Unknown block types are skipped, as the spec asks.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final, NamedTuple

from capdissect.capture.records import MAX_RECORD
from capdissect.capture.stream import ChunkReader
from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket

SHB: Final = 0x0A0D0D0A
IDB: Final = 0x00000001
PB: Final = 0x00000002  # obsolete Packet Block
SPB: Final = 0x00000003
EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
# Blocks larger than this are corrupt (libpcap's limit for pcapng is 16 MiB).
MAX_BLOCK: Final = 16 * 1024 * 1024
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    units_per_sec: int  # timestamp units per second (10**6 unless if_tsresol says otherwise)
    offset_sec: int
    name: str | None


def is_pcapng(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] == SHB


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    """Walk a TLV option list (code, length, value padded to 4)."""
    pos = start
    end = len(body)
    hdr = struct.Struct(order + "HH")
    while pos + 4 <= end:
        code, length = hdr.unpack_from(body, pos)
        if code == OPT_ENDOFOPT:
            return
        value = body[pos + 4 : pos + 4 + length]
        yield code, value
        pos += 4 + ((length + 3) & ~3)


def _interface(body: bytes, order: str) -> Interface:
    if len(body) < 8:
        raise CaptureError("pcapng interface description block too short")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
    units = 10**6
    offset = 0
    name = None
    for code, value in _options(body, 8, order):
        if code == IF_TSRESOL and value:
            r = value[0]
            # MSB clear: 10**-r seconds; MSB set: 2**-(r & 0x7f) seconds.
            units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** min(r, 18)
        elif code == IF_TSOFFSET and len(value) >= 8:
            offset = struct.unpack_from(order + "q", value)[0]
        elif code == IF_NAME:
            name = value.decode("utf-8", "replace")
    return Interface(linktype, snaplen, units, offset, name)


def _comment(body: bytes, start: int, order: str) -> str | None:
    comments = [
        value.decode("utf-8", "replace")
        for code, value in _options(body, start, order)
        if code == OPT_COMMENT
    ]
    return "\n".join(comments) if comments else None


class PcapngReader:
    """Iterates the packets of a pcapng stream; ``interfaces`` grows as IDBs are read."""

    def __init__(self, reader: ChunkReader) -> None:
        self._reader = reader
        self.order = "<"
        self.interfaces: list[Interface] = []
        self._read_shb(first=True)

    @property
    def first_interface(self) -> Interface | None:
        return self.interfaces[0] if self.interfaces else None

    def _block(self) -> tuple[int, bytes] | None:
        start = self._reader.offset
        head = self._reader.take(8)
        if not head:
            return None
        if len(head) < 8:
            raise TruncatedFile("pcapng block header", start, 8, len(head))
        btype = struct.unpack_from(self.order + "I", head)[0]
        if btype == SHB:
            return SHB, head
        total = struct.unpack_from(self.order + "I", head, 4)[0]
        if total < 12 or total % 4 or total > MAX_BLOCK:
            raise CaptureError(f"bad pcapng block at byte {start}: total length {total}")
        rest = self._reader.take(total - 8)
        if len(rest) < total - 8:
            raise TruncatedFile("pcapng block", start, total, len(rest) + 8)
        return btype, rest[:-4]

    def _read_shb(self, first: bool, head: bytes | None = None) -> None:
        start = self._reader.offset - (len(head) if head else 0)
        if head is None:
            head = self._reader.take(8)
        rest = self._reader.take(4)
        if len(rest) < 4:
            raise TruncatedFile("pcapng section header", start, 12, len(head) + len(rest))
        magic = rest
        if struct.unpack_from("<I", magic)[0] == BYTE_ORDER_MAGIC:
            self.order = "<"
        elif struct.unpack_from(">I", magic)[0] == BYTE_ORDER_MAGIC:
            self.order = ">"
        else:
            raise CaptureError(f"bad pcapng section header at byte {start}: byte-order magic")
        total = struct.unpack_from(self.order + "I", head, 4)[0]
        if total < 28 or total % 4 or total > MAX_BLOCK:
            raise CaptureError(f"bad pcapng section header at byte {start}: length {total}")
        body = self._reader.take(total - 12)
        if len(body) < total - 12:
            raise TruncatedFile("pcapng section header", start, total, len(body) + 12)
        self.interfaces = []
        if first:
            # Read ahead to the first interface so callers know the link type
            # (tcpdump prints it before any packet).
            self._pending: list[tuple[int, bytes]] = []
            # libpcap (sf-pcapng.c) wants an interface before the first packet, and one
            # at all: a file without is refused at open, as tcpdump reports it.
            while not self.interfaces:
                block = self._block()
                if block is None or block[0] == SHB:
                    raise CaptureError("the capture file has no Interface Description Blocks")
                if block[0] == IDB:
                    self.interfaces.append(_interface(block[1], self.order))
                elif block[0] in (EPB, SPB, PB):
                    raise CaptureError("the capture file has a packet block before any "
                                       "Interface Description Blocks")
                else:
                    self._pending.append(block)

    def __iter__(self) -> Iterator[RawPacket]:
        pending = self._pending
        self._pending = []
        while True:
            block = pending.pop(0) if pending else self._block()
            if block is None:
                return
            btype, body = block
            if btype == EPB:
                yield self._epb(body)
            elif btype == SPB:
                yield self._spb(body)
            elif btype == IDB:
                self.interfaces.append(_interface(body, self.order))
            elif btype == PB:
                yield self._pb(body)
            elif btype == SHB:
                self._read_shb(first=False, head=body)

    def _iface(self, index: int) -> Interface:
        if index >= len(self.interfaces):
            raise CaptureError(f"pcapng packet names interface {index}, which is not defined")
        return self.interfaces[index]

    def _stamp(self, iface: Interface, high: int, low: int) -> tuple[int, int]:
        ticks = (high << 32) | low
        sec, frac = divmod(ticks, iface.units_per_sec)
        return sec + iface.offset_sec, frac * 1_000_000_000 // iface.units_per_sec

    def _captured(self, body: bytes, start: int, caplen: int) -> bytes:
        if caplen > MAX_RECORD or start + caplen > len(body):
            raise CaptureError(f"bad pcapng packet block: captured length {caplen}")
        return body[start : start + caplen]

    def _epb(self, body: bytes) -> RawPacket:
        if len(body) < 20:
            raise CaptureError("pcapng enhanced packet block too short")
        ifid, high, low, caplen, wire_len = struct.unpack_from(self.order + "IIIII", body)
        iface = self._iface(ifid)
        data = self._captured(body, 20, caplen)
        sec, nsec = self._stamp(iface, high, low)
        comment = _comment(body, 20 + ((caplen + 3) & ~3), self.order)
        return RawPacket(sec, nsec, iface.linktype, wire_len, data, ifid, comment)

    def _pb(self, body: bytes) -> RawPacket:
        if len(body) < 20:
            raise CaptureError("pcapng packet block too short")
        ifid, _drops, high, low, caplen, wire_len = struct.unpack_from(
            self.order + "HHIIII", body
        )
        iface = self._iface(ifid)
        data = self._captured(body, 20, caplen)
        sec, nsec = self._stamp(iface, high, low)
        comment = _comment(body, 20 + ((caplen + 3) & ~3), self.order)
        return RawPacket(sec, nsec, iface.linktype, wire_len, data, ifid, comment)

    def _spb(self, body: bytes) -> RawPacket:
        # A Simple Packet Block has no timestamp and belongs to interface 0.
        if len(body) < 4:
            raise CaptureError("pcapng simple packet block too short")
        wire_len = struct.unpack_from(self.order + "I", body)[0]
        iface = self._iface(0)
        caplen = min(wire_len, iface.snaplen or wire_len)
        if len(body) - 4 < caplen:  # libpcap refuses it rather than guess
            raise CaptureError("block of type 3 in pcapng dump file is too short")
        return RawPacket(0, 0, iface.linktype, wire_len, body[4 : 4 + caplen], 0, None)
