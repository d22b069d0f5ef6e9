"""UDP (RFC 768)."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.errors import Truncated

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

_UDP: Final = struct.Struct("!HHHH")


class UdpHeader(NamedTuple):
    offset: int
    src_port: int
    dst_port: int
    length: int  # the UDP length field (header + payload)
    checksum: int

    @property
    def payload_offset(self) -> int:
        return self.offset + 8


def parse_udp(buf: bytes, offset: int, end: int | None = None) -> UdpHeader:
    have = (len(buf) if end is None else end) - offset
    if have < 8:
        raise Truncated("udp", offset, 8, have)
    return _new_tuple(UdpHeader, (offset, *_UDP.unpack_from(buf, offset)))
