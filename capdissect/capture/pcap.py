"""Classic pcap files: both byte orders, micro- and nanosecond timestamps.

Format: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html (a 24-byte file
header, then a 16-byte header before each record).  A generator, so memory stays flat.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from capdissect.capture.stream import ChunkReader
from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
_FILE_HDR_LEN: Final = 24
_REC_HDR_LEN: Final = 16
# libpcap refuses records larger than this (MAXIMUM_SNAPLEN, pcap-int.h); so do we,
# so that a corrupt length never makes us allocate gigabytes.
MAX_RECORD: Final = 262144


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


def read_pcap(reader: ChunkReader, header: PcapHeader) -> Iterator[RawPacket]:
    """Yield every whole record; raise TruncatedFile after the last whole one."""
    rec = struct.Struct((">" if header.big_endian else "<") + "IIII")
    unpack = rec.unpack
    take = reader.take
    linktype = header.linktype
    scale = 1 if header.nanosecond else 1000
    # libpcap (sf-pcap.c) cuts a record longer than the file's snapshot length down to
    # it, and takes the largest snapshot length when the header's is 0 or absurd.
    snaplen = header.snaplen if 0 < header.snaplen <= MAX_RECORD else MAX_RECORD
    while True:
        hdr = take(_REC_HDR_LEN)
        if len(hdr) < _REC_HDR_LEN:
            if hdr:
                raise TruncatedFile(
                    "record header", reader.offset - len(hdr), _REC_HDR_LEN, len(hdr)
                )
            return
        sec, frac, caplen, wire_len = unpack(hdr)
        if caplen > MAX_RECORD:
            raise CaptureError(
                f"bogus pcap record at byte {reader.offset - _REC_HDR_LEN}: "
                f"captured length {caplen} is larger than {MAX_RECORD}"
            )
        data = take(caplen)
        if len(data) < caplen:
            raise TruncatedFile("packet data", reader.offset - len(data), caplen, len(data))
        if caplen > snaplen:
            data = data[:snaplen]
        yield RawPacket(sec, frac * scale, linktype, wire_len, data)
