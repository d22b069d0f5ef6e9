"""IPv4 (RFC 791): the fixed header, options and fragment fields."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.errors import Truncated

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")  # RFC 791 §3.1
FLAG_RESERVED: Final = 0x8000
FLAG_DF: Final = 0x4000
FLAG_MF: Final = 0x2000
OFFSET_MASK: Final = 0x1FFF


class IPv4Header(NamedTuple):
    offset: int  # where the header starts in the packet
    version: int
    hdr_len: int  # bytes (IHL * 4)
    tos: int
    total_len: int
    ident: int
    flags_frag: int  # the 16-bit flags + fragment offset field as sent
    ttl: int
    proto: int
    checksum: int
    src: bytes
    dst: bytes

    @property
    def frag_offset(self) -> int:
        """Fragment offset in bytes."""
        return (self.flags_frag & OFFSET_MASK) * 8

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_frag & FLAG_MF)

    @property
    def payload_offset(self) -> int:
        return self.offset + self.hdr_len


def parse_ipv4(buf: bytes, offset: int, end: int | None = None) -> IPv4Header:
    """Decode the 20-byte fixed IPv4 header at *offset* (options stay in *buf*).

    *end* is where the captured data ends (default: the end of *buf*).
    """
    have = (len(buf) if end is None else end) - offset
    if have < 20:
        raise Truncated("ip", offset, 20, have)
    vihl, tos, total_len, ident, frag, ttl, proto, cksum, src, dst = _IPV4.unpack_from(buf, offset)
    return _new_tuple(IPv4Header, (offset, vihl >> 4, (vihl & 0x0F) * 4, tos, total_len, ident,
                                   frag, ttl, proto, cksum, src, dst))
