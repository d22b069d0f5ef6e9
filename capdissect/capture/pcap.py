"""Classic pcap files: both byte orders, micro- and nanosecond timestamps.

Format: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html (a 24-byte file
header, then a 16-byte header before each record).  Generators, so memory stays flat.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from capdissect.capture.records import (
    MAX_RECORD,
    REC_HDR_LEN,
    RecordBatch,
    record_length,
    scan_records,
    snapshot_length,
)
from capdissect.capture.stream import ChunkReader
from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
_FILE_HDR_LEN: Final = 24


class PcapHeader:
    __slots__ = ("big_endian", "linktype", "nanosecond", "snaplen", "version")

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
            order + "HHiIII", head, 4
        )
        self.version = (major, minor)
        self.snaplen = snaplen
        # The upper bits of the link-type field hold the FCS length (pcap draft §4).
        self.linktype = linktype & 0x0FFFFFFF


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


def read_pcap(reader: ChunkReader, header: PcapHeader) -> Iterator[RawPacket]:
    """Yield every whole record as a RawPacket (see read_batches)."""
    for batch in read_batches(reader, header):
        yield from batch.packets()
