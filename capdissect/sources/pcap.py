"""Classic pcap files: both byte orders, micro- and nanosecond timestamps.

Format: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html (a 24-byte file
header, then a 16-byte header before each record).  Generators, so memory stays flat.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import (
    MAX_RECORD,
    REC_HDR_LEN,
    RawPacket,
    RecordBatch,
    record_length,
    scan_records,
    snapshot_length,
)
from capdissect.sources.stream import ChunkReader

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
_FILE_HDR_LEN: Final = 24
# The two headers, without byte order (the magic tells it): defined once, for the reader
# and for the writers (live -w, the filter's savefile header).
FILE_HEADER: Final = "IHHiIII"  # magic, major, minor, zone, sigfigs, snap length, link type
RECORD_HEADER: Final = "IIII"  # seconds, fraction, captured length, wire length
LINKTYPE_BITS: Final = 0x03FFFFFF  # of the header's link-type field (the rest: the FCS)


def file_header(linktype: int, snaplen: int, magic: int, order: str) -> bytes:
    """A version 2.4 file header; *order* is ``<`` or ``>``."""
    return struct.pack(order + FILE_HEADER, magic, 2, 4, 0, 0, snaplen, linktype)


# How the record header's two lengths are stored (sf-pcap.c): versions before 2.3 (and
# DG/UX's 543.0) wrote the wire length first; some 2.3 writers did too, told apart by a
# captured length larger than the wire length.
LENGTHS_IN_ORDER: Final = 0
LENGTHS_MAYBE_SWAPPED: Final = 1
LENGTHS_SWAPPED: Final = 2


class PcapHeader:
    __slots__ = ("big_endian", "lengths", "linktype", "nanosecond", "snaplen", "version")

    def __init__(self, head: bytes) -> None:
        if len(head) < _FILE_HDR_LEN:
            raise TruncatedFile("pcap file header", 0, _FILE_HDR_LEN, len(head))
        magic_le = struct.unpack_from("<I", head)[0]
        if magic_le in (MAGIC_USEC, MAGIC_NSEC):
            order = "<"
            magic = magic_le
        else:
            magic = struct.unpack_from(">I", head)[0]
            if magic not in (MAGIC_USEC, MAGIC_NSEC):
                raise CaptureError("unknown file format")
            order = ">"
        self.big_endian = order == ">"
        self.nanosecond = magic == MAGIC_NSEC
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
            order + FILE_HEADER[1:], head, 4
        )
        self.version = (major, minor)
        # libpcap reads versions 2.0 to 2.4 and DG/UX's 543.0, and no other.
        if major < 2:
            raise CaptureError("archaic pcap savefile format")
        if not ((major == 2 and minor <= 4) or (major, minor) == (543, 0)):
            raise CaptureError(f"unsupported pcap savefile version {major}.{minor}")
        self.lengths = (LENGTHS_SWAPPED if major == 543 or minor < 3
                        else LENGTHS_MAYBE_SWAPPED if minor == 3 else LENGTHS_IN_ORDER)
        self.snaplen = snaplen
        # The top six bits of the link-type field say whether the packets end in an FCS
        # and how long it is (pcap draft §4: bit 26, and bits 28 to 31); the link type is
        # the rest, as libpcap takes it (LT_LINKTYPE).
        self.linktype = linktype & LINKTYPE_BITS


def is_pcap(head: bytes) -> bool:
    return len(head) >= 4 and (
        struct.unpack_from("<I", head)[0] in (MAGIC_USEC, MAGIC_NSEC)
        or struct.unpack_from(">I", head)[0] in (MAGIC_USEC, MAGIC_NSEC)
    )


def read_batches(reader: ChunkReader, header: PcapHeader) -> Iterator[RecordBatch]:
    """Yield every whole record, a buffer at a time; raise TruncatedFile after the last
    whole one, and CaptureError at a record longer than any libpcap accepts."""
    snaplen = snapshot_length(header.snaplen)
    big = header.big_endian
    if header.lengths != LENGTHS_IN_ORDER:
        yield from _old_records(reader, header, snaplen)
        return
    buf, pos = reader.window(None, REC_HDR_LEN)
    while True:
        offsets, pos = scan_records(buf, pos, big)
        if offsets:
            yield RecordBatch(buf, offsets, big, header.nanosecond, snaplen, header.linktype)
        # *pos* is at the end of the buffer, a record that runs past it, or a bogus one.
        if len(buf) - pos < REC_HDR_LEN:
            buf, pos = reader.window(pos, REC_HDR_LEN)
            if len(buf) - pos < REC_HDR_LEN:
                if len(buf) > pos:
                    raise TruncatedFile("record header", reader.offset, REC_HDR_LEN,
                                        len(buf) - pos)
                return
        caplen = record_length(buf, pos, big)
        if caplen > MAX_RECORD:
            reader.window(pos, 0)
            raise CaptureError(
                f"bogus pcap record at byte {reader.offset}: "
                f"captured length {caplen} is larger than {MAX_RECORD}"
            )
        if pos + REC_HDR_LEN + caplen > len(buf):
            buf, pos = reader.window(pos, REC_HDR_LEN + caplen)
            if pos + REC_HDR_LEN + caplen > len(buf):
                raise TruncatedFile("packet data", reader.offset + REC_HDR_LEN, caplen,
                                    len(buf) - pos - REC_HDR_LEN)


def _old_records(reader: ChunkReader, header: PcapHeader, snaplen: int
                 ) -> Iterator[RecordBatch]:
    """The records of a file whose lengths may be swapped, one at a time, each put right
    in a batch of its own (such files are rare and old; the fast scan stays simple)."""
    order = ">" if header.big_endian else "<"
    while True:
        offset = reader.offset
        head = reader.take(REC_HDR_LEN)
        if not head:
            return
        if len(head) < REC_HDR_LEN:
            raise TruncatedFile("record header", offset, REC_HDR_LEN, len(head))
        sec, frac, caplen, wire_len = struct.unpack(order + RECORD_HEADER, head)
        if header.lengths == LENGTHS_SWAPPED or caplen > wire_len:
            caplen, wire_len = wire_len, caplen
        if caplen > MAX_RECORD:
            raise CaptureError(f"bogus pcap record at byte {offset}: captured length "
                               f"{caplen} is larger than {MAX_RECORD}")
        data = reader.take(caplen)
        if len(data) < caplen:
            raise TruncatedFile("packet data", offset + REC_HDR_LEN, caplen, len(data))
        record = struct.pack(order + RECORD_HEADER, sec, frac, caplen, wire_len) + data
        yield RecordBatch(record, [0], header.big_endian, header.nanosecond, snaplen,
                          header.linktype)


def read_pcap(reader: ChunkReader, header: PcapHeader) -> Iterator[RawPacket]:
    """Yield every whole record as a RawPacket (see read_batches)."""
    for batch in read_batches(reader, header):
        yield from batch.packets()
