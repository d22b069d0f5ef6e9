"""pcapng files: SHB, IDB, EPB, SPB and the obsolete PB, in either byte order.

Spec: draft-ietf-opsawg-pcapng.  Each section has its own byte order and interfaces;
each interface has its own link type, snap length and timestamp resolution
(``if_tsresol``) and offset (``if_tsoffset``).  Packet comments (``opt_comment``) are kept.
Unknown block types are skipped, as the spec asks.

Each block's layout is defined once here and used both ways: the reader unpacks it in
the section's byte order, and the builders at the end (for ``live -w`` and ``annotate``)
pack it in this machine's byte order (the byte-order magic tells readers).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket, snapshot_length, u32
from capdissect.sources.stream import ChunkReader

SHB: Final = 0x0A0D0D0A
IDB: Final = 0x00000001
PB: Final = 0x00000002  # obsolete Packet Block
SPB: Final = 0x00000003
EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)
_READ_BLOCKS: Final = frozenset({IDB, PB, SPB, EPB})  # the blocks whose body we use
# Blocks larger than this are corrupt (libpcap's limit for pcapng is 16 MiB; 1 MiB for the
# first section header, BT_SHB_INSANE_MAX).
MAX_BLOCK: Final = 16 * 1024 * 1024
MAX_SHB: Final = 1024 * 1024
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14
SHB_USERAPPL: Final = 4
MAX_OPTION: Final = 0xFFFF  # an option's length field is 16 bits
MAX_LINKTYPE: Final = 0xFFFF  # so is an IDB's link type (a pcap header's is 32)
# The layouts, without byte order (each section has its own): every block starts with
# type and total length and ends with the total again; then the fixed part of its body.
BLOCK_HEAD: Final = "II"
BLOCK_TAIL: Final = "I"
SHB_BODY: Final = "IHHq"  # byte-order magic, major, minor, section length
IDB_BODY: Final = "HHI"  # link type, reserved, snap length
EPB_BODY: Final = "IIIII"  # interface, timestamp high, low, captured length, wire length
PB_BODY: Final = "HHIIII"  # interface, drops, timestamp high, low, captured, wire length
OPTION_HEAD: Final = "HH"  # code, length of the value (padded to 4 on the wire)


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    units_per_sec: int  # timestamp units per second (10**6 unless if_tsresol says otherwise)
    offset_sec: int
    name: str | None


def is_pcapng(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] == SHB


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    """Walk a TLV option list (code, length, value padded to 4), leniently: packet
    comments are data we show, and libpcap does not look at a packet's options."""
    pos = start
    end = len(body)
    hdr = struct.Struct(order + OPTION_HEAD)
    while pos + 4 <= end:
        code, length = hdr.unpack_from(body, pos)
        if code == OPT_ENDOFOPT:
            return
        value = body[pos + 4 : pos + 4 + length]
        yield code, value
        pos += 4 + ((length + 3) & ~3)


def _too_short(btype: int) -> CaptureError:
    return CaptureError(f"block of type {btype} in pcapng dump file is too short")


def _strict_options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    """An interface's options as libpcap walks them (sf-pcapng.c): to the end of the
    block or opt_endofopt, refusing an option cut short or an end option with a value."""
    pos = start
    end = len(body)
    hdr = struct.Struct(order + OPTION_HEAD)
    while pos < end:
        if pos + 4 > end:
            raise _too_short(IDB)
        code, length = hdr.unpack_from(body, pos)
        padded = (length + 3) & ~3
        if pos + 4 + padded > end:
            raise _too_short(IDB)
        if code == OPT_ENDOFOPT:
            if length:
                raise CaptureError("Interface Description Block has opt_endofopt option "
                                   f"with length {length} != 0")
            return
        yield code, body[pos + 4 : pos + 4 + length]
        pos += 4 + padded


def _tsresol(value: bytes, seen: bool) -> int:
    """Timestamp units per second of an if_tsresol option, checked as libpcap checks it."""
    if len(value) != 1:
        raise CaptureError("Interface Description Block has if_tsresol option with length "
                           f"{len(value)} != 1")
    if seen:
        raise CaptureError("Interface Description Block has more than one if_tsresol option")
    r = value[0]
    # MSB set: 2**-(r & 0x7f) seconds; clear: 10**-r seconds.  The units must fit in 64 bits.
    if r & 0x80:
        if r & 0x7F > 63:
            raise CaptureError("Interface Description Block if_tsresol option resolution "
                               f"2^-{r & 0x7F} is too high")
        return 1 << (r & 0x7F)
    if r > 19:
        raise CaptureError(f"Interface Description Block if_tsresol option resolution 10^-{r} "
                           "is too high")
    return int(10**r)


def _interface(body: bytes, order: str) -> Interface:
    if len(body) < 8:
        raise _too_short(IDB)
    linktype, _reserved, snaplen = struct.unpack_from(order + IDB_BODY, body)
    units = 10**6
    offset = 0
    name = None
    saw_resolution = saw_offset = False
    for code, value in _strict_options(body, 8, order):
        if code == IF_TSRESOL:
            units = _tsresol(value, saw_resolution)
            saw_resolution = True
        elif code == IF_TSOFFSET:
            if len(value) != 8:
                raise CaptureError("Interface Description Block has if_tsoffset option with "
                                   f"length {len(value)} != 8")
            if saw_offset:
                raise CaptureError("Interface Description Block has more than one "
                                   "if_tsoffset option")
            saw_offset = True
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
    """Iterates the packets of a pcapng stream; ``interfaces`` grows as IDBs are read.

    Files are checked as libpcap checks them (sf-pcapng.c), with its messages: block
    lengths and trailers, section versions, interface options, captured lengths.  Two
    deliberate differences, both reading more than libpcap where the pcapng spec allows
    it (SPEC 3.2): each section keeps its own byte order, and interfaces may have
    different link types (libpcap stops at the first that differs).
    """

    def __init__(self, reader: ChunkReader) -> None:
        self._reader = reader
        self.order = "<"
        self.interfaces: list[Interface] = []
        self._read_shb(first=True)

    @property
    def first_interface(self) -> Interface | None:
        return self.interfaces[0] if self.interfaces else None

    def _skip_unread(self) -> None:
        """Pass over a run of well-formed blocks we do not read (statistics, name
        resolution, custom...) that lie whole in the buffer, in one tight loop: a file can
        hold millions of them.  The first block that is not such stops the loop; ``_block``
        then reads it, or reports what is wrong with it."""
        buf, pos = self._reader.window(None, 12)
        head = struct.Struct(self.order + BLOCK_HEAD).unpack_from
        tail = struct.Struct(self.order + BLOCK_TAIL).unpack_from
        end = len(buf)
        while pos + 12 <= end:
            btype, total = head(buf, pos)
            if (btype in _READ_BLOCKS or btype == SHB or total < 12 or total % 4
                    or pos + total > end or tail(buf, pos + total - 4)[0] != total):
                break
            pos += total
        self._reader.window(pos, 0)

    def _block(self) -> tuple[int, bytes] | None:
        self._skip_unread()
        start = self._reader.offset
        head = self._reader.take(8)
        if not head:
            return None
        if len(head) < 8:
            raise TruncatedFile("pcapng block header", start, 8, len(head))
        btype, total = struct.unpack_from(self.order + BLOCK_HEAD, head)
        if btype == SHB:
            return SHB, head
        _check_length(total)
        if btype not in _READ_BLOCKS:
            # A block we skip (statistics, name resolution, custom...): passed over, never
            # held, however long; only its trailer is read, to check it.
            self._pass_over(start, total)
            return btype, b""
        rest = self._reader.take(total - 8)
        if len(rest) < total - 8:
            raise TruncatedFile("pcapng block", start, total, len(rest) + 8)
        _check_trailer(rest, total, self.order)
        return btype, rest[:-4]

    def _pass_over(self, start: int, total: int) -> None:
        """Skip the rest of the block at *start*, *total* bytes in all, after its header;
        check its trailer."""
        skipped = self._reader.skip(total - 12)
        rest = self._reader.take(4)
        if skipped < total - 12 or len(rest) < 4:
            raise TruncatedFile("pcapng block", start, total, skipped + len(rest) + 8)
        _check_trailer(rest, total, self.order)

    def _whole_section(self, head: bytes) -> bool:
        """Whether the section header whose block header *head* was just read is one in
        its own byte order: a byte-order magic, a length a block may have, and the same
        length at its end, or the file's end before it (looked at, not read)."""
        buf, pos = self._reader.window(None, 4)
        magic = buf[pos : pos + 4]
        if len(magic) < 4:
            return True  # cut short: read as a section, which says where
        order = _magic_order(magic)
        if order is None:
            return False
        total: int = struct.unpack_from(order + "I", head, 4)[0]
        if not 28 <= total <= MAX_BLOCK or total % 4:
            return False
        buf, pos = self._reader.window(None, total - 8)
        if pos + total - 8 > len(buf):
            return True  # cut short: read as a section, which says where
        trailer: int = struct.unpack_from(order + "I", buf, pos + total - 12)[0]
        return trailer == total

    def _read_shb(self, first: bool, head: bytes | None = None) -> None:
        start = self._reader.offset - (len(head) if head else 0)
        if head is None:
            head = self._reader.take(8)
        rest = self._reader.take(4)
        if len(rest) < 4:
            raise TruncatedFile("pcapng section header", start, 12, len(head) + len(rest))
        order = _magic_order(rest)
        if order is None:
            raise CaptureError("the file has a section with a bad byte order magic field")
        self.order = order
        total = struct.unpack_from(self.order + "I", head, 4)[0]
        # libpcap bounds the first section header at 1 MiB, later ones as any block.
        if first and (total < 28 or total > MAX_SHB):
            raise CaptureError("Section Header Block in pcapng dump file has invalid length "
                               f"28 < _{total}_ < {MAX_SHB} (BT_SHB_INSANE_MAX)")
        _check_length(total)
        if total < 28:
            raise _too_short(SHB)
        body = self._reader.take(total - 12)
        if len(body) < total - 12:
            raise TruncatedFile("pcapng section header", start, total, len(body) + 12)
        major, minor = struct.unpack_from(self.order + "HH", body)
        if first:
            # libpcap reads versions 1.0 and 1.2 (1.2 is 1.0 with more block types); it
            # does not check the first section's trailer.
            if major != 1 or minor not in (0, 2):
                raise CaptureError(f"unsupported pcapng savefile version {major}.{minor}")
        else:
            _check_trailer(body, total, self.order)
            if major != 1:
                raise CaptureError(f"unknown pcapng savefile major version number {major}")
        self.interfaces = []
        if first:
            self._first_interface()

    def _first_interface(self) -> None:
        """Read ahead to the first interface so callers know the link type (tcpdump prints
        it before any packet), skipping other blocks as libpcap does, one at a time: none
        is kept.  libpcap wants an interface before the first packet, and one at all: a
        file without is refused at open, as tcpdump reports it."""
        while not self.interfaces:
            block = self._block()
            if block is None:
                raise CaptureError("the capture file has no Interface Description Blocks")
            btype, body = block
            if btype == IDB:
                self.interfaces.append(_interface(body, self.order))
            elif btype in (EPB, SPB, PB):
                raise CaptureError("the capture file has a packet block before any "
                                   "Interface Description Blocks")
            elif btype == SHB and not self._whole_section(body):
                # libpcap skips every block before the first interface, a section header
                # too, as one of the first section's: tcpdump reads on past one that is
                # not whole in its own byte order, where reading it would stop here.
                total = struct.unpack_from(self.order + "I", body, 4)[0]
                _check_length(total)
                self._pass_over(self._reader.offset - 8, total)
            elif btype == SHB:
                self._read_shb(first=False, head=body)

    def __iter__(self) -> Iterator[RawPacket]:
        for packets in self.lists():
            yield from packets

    def lists(self) -> Iterator[list[RawPacket]]:
        """The packets in lists: each run read in place (``_packets_in_buffer``), and
        each packet read block by block alone."""
        while True:
            packets = self._packets_in_buffer()
            if packets:
                yield packets
            block = self._block()
            if block is None:
                return
            btype, body = block
            if btype == EPB:
                yield [self._epb(body)]
            elif btype == SPB:
                yield [self._spb(body)]
            elif btype == IDB:
                self._add_interface(_interface(body, self.order))
            elif btype == PB:
                yield [self._pb(body)]
            elif btype == SHB:
                self._read_shb(first=False, head=body)

    def _packets_in_buffer(self) -> list[RawPacket]:
        """The Enhanced Packet Blocks from here on that lie whole in the buffer, as
        packets, read in place in one tight loop: most of a capture.  Each is checked as
        ``_block`` and ``_packet`` check it; the first block that is not such a packet
        (another kind, one cut by the buffer's end, a damaged one) ends the run, and
        ``_block`` then reads it, or says what is wrong with it.  (Block by block, with
        the copies ``take`` makes, a packet took 3.0 us instead of 0.4 for a pcap file.)"""
        buf, pos = self._reader.window(None, 0)
        big = self.order == ">"
        interfaces = self.interfaces
        count = len(interfaces)
        end = len(buf)
        packets: list[RawPacket] = []
        while pos + 32 <= end:  # block head, the EPB's fixed part, trailer
            total = u32(buf, pos + 4, big)
            if (u32(buf, pos, big) != EPB or total < 32 or total % 4 or total > MAX_BLOCK
                    or pos + total > end or u32(buf, pos + total - 4, big) != total):
                break
            ifid = u32(buf, pos + 8, big)
            if ifid >= count:
                break
            iface = interfaces[ifid]
            caplen = u32(buf, pos + 20, big)
            if caplen > snapshot_length(iface.snaplen) or 20 + caplen > total - 12:
                break
            sec, nsec = self._stamp(iface, u32(buf, pos + 12, big), u32(buf, pos + 16, big))
            data = pos + 28
            options = data + ((caplen + 3) & ~3)
            comment = None
            if options + 4 <= pos + total - 4:  # room for an option: the rare case
                comment = _comment(buf[pos + 8 : pos + total - 4], options - pos - 8,
                                   self.order)
            packets.append(_new_tuple(RawPacket, (
                sec, nsec, iface.linktype, u32(buf, pos + 24, big), buf[data : data + caplen],
                ifid, comment)))
            pos += total
        self._reader.window(pos, 0)
        return packets

    def _add_interface(self, iface: Interface) -> None:
        first = self.first_interface
        if (first is not None and first.linktype == iface.linktype
                and snapshot_length(first.snaplen) != snapshot_length(iface.snaplen)):
            raise CaptureError(f"an interface has a snapshot length {iface.snaplen} different "
                               "from the snapshot length of the first interface")
        self.interfaces.append(iface)

    def _iface(self, index: int) -> Interface:
        if index >= len(self.interfaces):
            raise CaptureError(f"a packet arrived on interface {index}, but there's no "
                               "Interface Description Block for that interface")
        return self.interfaces[index]

    def _stamp(self, iface: Interface, high: int, low: int) -> tuple[int, int]:
        ticks = (high << 32) | low
        sec, frac = divmod(ticks, iface.units_per_sec)
        return sec + iface.offset_sec, frac * 1_000_000_000 // iface.units_per_sec

    def _packet(self, btype: int, body: bytes, ifid: int, high: int, low: int, caplen: int,
                wire_len: int) -> RawPacket:
        """An EPB's or PB's packet, checked in libpcap's order: a known interface, a
        captured length within its snapshot length, then within the block."""
        iface = self._iface(ifid)
        snapshot = snapshot_length(iface.snaplen)
        if caplen > snapshot:
            raise CaptureError(f"invalid packet capture length {caplen}, bigger than snaplen "
                               f"of {snapshot}")
        if 20 + caplen > len(body):
            raise _too_short(btype)
        sec, nsec = self._stamp(iface, high, low)
        comment = _comment(body, 20 + ((caplen + 3) & ~3), self.order)
        return RawPacket(sec, nsec, iface.linktype, wire_len, body[20 : 20 + caplen], ifid,
                         comment)

    def _epb(self, body: bytes) -> RawPacket:
        if len(body) < 20:
            raise _too_short(EPB)
        ifid, high, low, caplen, wire_len = struct.unpack_from(self.order + EPB_BODY, body)
        return self._packet(EPB, body, ifid, high, low, caplen, wire_len)

    def _pb(self, body: bytes) -> RawPacket:
        if len(body) < 20:
            raise _too_short(PB)
        ifid, _drops, high, low, caplen, wire_len = struct.unpack_from(
            self.order + PB_BODY, body
        )
        return self._packet(PB, body, ifid, high, low, caplen, wire_len)

    def _spb(self, body: bytes) -> RawPacket:
        # A Simple Packet Block has no timestamp and belongs to interface 0; its captured
        # length is the packet's, cut to the snapshot length.
        if len(body) < 4:
            raise _too_short(SPB)
        wire_len = struct.unpack_from(self.order + "I", body)[0]
        iface = self._iface(0)
        caplen = min(wire_len, snapshot_length(iface.snaplen))
        if len(body) - 4 < caplen:  # libpcap refuses it rather than guess
            raise _too_short(SPB)
        return RawPacket(0, 0, iface.linktype, wire_len, body[4 : 4 + caplen], 0, None)


def _magic_order(magic: bytes) -> str | None:
    """The byte order a section header's byte-order magic says ("<" or ">"), or None."""
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", magic)[0] == BYTE_ORDER_MAGIC:
            return order
    return None


def _check_length(total: int) -> None:
    """A block's total length as libpcap checks it (read_block in sf-pcapng.c)."""
    if total < 12:
        raise CaptureError(f"block in pcapng dump file has a length of {total} < 12")
    if total % 4:
        raise CaptureError(f"block in pcapng dump file has a length of {total} that is not "
                           "a multiple of 4")
    if total > MAX_BLOCK:
        raise CaptureError(f"pcapng block size {total} > maximum {MAX_BLOCK}")


def _check_trailer(rest: bytes, total: int, order: str) -> None:
    """A block ends with its total length again; libpcap refuses a block where the two
    differ (the file is damaged there, whatever the block says)."""
    if struct.unpack_from(order + "I", rest, len(rest) - 4)[0] != total:
        raise CaptureError("block total length in header and trailer don't match")


# ----- building: the same blocks as bytes, in this machine's byte order ----------------
_NATIVE: Final = "<" if sys.byteorder == "little" else ">"


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def option_text(value: str) -> bytes:
    """UTF-8, cut to what one option can hold (on a character boundary): the length
    field is 16 bits, and a longer value cannot be written at all."""
    data = value.encode("utf-8", "replace")
    if len(data) > MAX_OPTION:
        data = data[:MAX_OPTION].decode("utf-8", "ignore").encode("utf-8")
    return data


def options(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    """TLV options: the length field holds the value's own length, the value is padded
    to 4 bytes, and opt_endofopt closes a list that is not empty."""
    head = struct.Struct(_NATIVE + OPTION_HEAD)
    body = b"".join(head.pack(code, len(value)) + _pad4(value) for code, value in pairs)
    return body + head.pack(OPT_ENDOFOPT, 0) if body else b""


def block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return (struct.pack(_NATIVE + BLOCK_HEAD, block_type, total) + body
            + struct.pack(_NATIVE + BLOCK_TAIL, total))


def section_header(application: str) -> bytes:
    body = struct.pack(_NATIVE + SHB_BODY, BYTE_ORDER_MAGIC, 1, 0, -1)  # length unknown: -1
    return block(SHB, body + options([(SHB_USERAPPL, option_text(application))]))


def resolution(iface: Interface) -> int:
    """The decimal exponent timestamps are written with: the interface's own, else 9."""
    exponent, units = 0, iface.units_per_sec
    while units > 1 and units % 10 == 0:
        units //= 10
        exponent += 1
    return exponent if units == 1 and 0 < exponent <= 9 else 9


def interface_description(iface: Interface) -> bytes:
    pairs = []
    if iface.name:
        pairs.append((IF_NAME, option_text(iface.name)))
    pairs.append((IF_TSRESOL, bytes([resolution(iface)])))
    body = struct.pack(_NATIVE + IDB_BODY, iface.linktype, 0, iface.snaplen)
    return block(IDB, body + options(pairs))


def enhanced_packet(pkt: RawPacket, iface_id: int, exponent: int,
                    comments: Iterable[str]) -> bytes:
    """An EPB for *pkt* on interface *iface_id*, with one ``opt_comment`` per comment."""
    ticks = pkt.ts_sec * 10**exponent + pkt.ts_nsec // 10 ** (9 - exponent)
    ticks &= (1 << 64) - 1
    head = struct.pack(_NATIVE + EPB_BODY, iface_id, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(pkt.data), pkt.wire_len)
    return block(EPB, head + _pad4(pkt.data)
                 + options((OPT_COMMENT, option_text(c)) for c in comments if c))
