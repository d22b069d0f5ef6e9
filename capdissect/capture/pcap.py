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
    """Yield every whole record; raise TruncatedFile after the last whole one.

    Records are unpacked in place in the reader's buffer: this loop runs once per packet
    of every file, and slicing each 16-byte header cost a tenth of ``read``.
    """
    unpack = struct.Struct((">" if header.big_endian else "<") + "IIII").unpack_from
    linktype = header.linktype
    scale = 1 if header.nanosecond else 1000
    # libpcap (sf-pcap.c) cuts a record longer than the file's snapshot length down to
    # it, and takes the largest snapshot length when the header's is 0 or absurd.
    snaplen = header.snaplen if 0 < header.snaplen <= MAX_RECORD else MAX_RECORD
    buf, pos = reader.window(None, _REC_HDR_LEN)
    size = len(buf)
    while True:
        if size - pos < _REC_HDR_LEN:
            buf, pos = reader.window(pos, _REC_HDR_LEN)
            size = len(buf)
            if size - pos < _REC_HDR_LEN:
                if size > pos:
                    raise TruncatedFile("record header", reader.offset, _REC_HDR_LEN,
                                        size - pos)
                return
        sec, frac, caplen, wire_len = unpack(buf, pos)
        if caplen > MAX_RECORD:
            reader.window(pos, 0)
            raise CaptureError(
                f"bogus pcap record at byte {reader.offset}: "
                f"captured length {caplen} is larger than {MAX_RECORD}"
            )
        end = pos + _REC_HDR_LEN + caplen
        if end > size:
            buf, pos = reader.window(pos, _REC_HDR_LEN + caplen)
            size = len(buf)
            end = pos + _REC_HDR_LEN + caplen
            if end > size:
                raise TruncatedFile("packet data", reader.offset + _REC_HDR_LEN, caplen,
                                    size - pos - _REC_HDR_LEN)
        data = buf[pos + _REC_HDR_LEN : end if caplen <= snaplen else
                   pos + _REC_HDR_LEN + snaplen]
        pos = end
        yield RawPacket(sec, frac * scale, linktype, wire_len, data)
