"""ICMPv6 (RFC 4443): the common header and, for error messages, the packet they quote.

The second 32-bit word means something different for each type; it is kept as one
integer with properties naming its readings, as ``icmp.IcmpHeader`` does for IPv4.
An error message (RFC 4443 §3) carries as much of the invoking packet as fits right
after its 8-byte header: ``quote_offset`` says where that IPv6 packet starts,
``upper_layer`` walks its extension headers to the TCP or UDP header (as tcpdump's
get_upperlayer does) and ``parse_quoted`` gathers addresses and ports, so a connection
tracker can tie a port unreachable to the UDP flow it answers.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.dissect import ipv6 as ip6mod
from capdissect.dissect.ipv6 import parse_ipv6
from capdissect.errors import Truncated

_ICMP6: Final = struct.Struct("!BBHI")  # RFC 4443 §2.1: type, code, checksum, body
HEADER_LEN: Final = 8  # the 4 fixed bytes plus the 4 type-specific ones every type has

# RFC 4443 §2.1, RFC 4861 §4, RFC 3810 §5, RFC 2894 §3, RFC 4620 §4.
DST_UNREACH: Final = 1
PACKET_TOO_BIG: Final = 2
TIME_EXCEEDED: Final = 3
PARAM_PROB: Final = 4
ECHO_REQUEST: Final = 128
ECHO_REPLY: Final = 129
MLD_QUERY: Final = 130
MLD_REPORT: Final = 131
MLD_DONE: Final = 132
ROUTER_SOLICIT: Final = 133
ROUTER_ADVERT: Final = 134
NEIGHBOR_SOLICIT: Final = 135
NEIGHBOR_ADVERT: Final = 136
REDIRECT: Final = 137
ROUTER_RENUMBERING: Final = 138
NI_QUERY: Final = 139
NI_REPLY: Final = 140
IND_SOLICIT: Final = 141
IND_ADVERT: Final = 142
MLDV2_REPORT: Final = 143
HA_DISCOVERY_REQUEST: Final = 144
HA_DISCOVERY_REPLY: Final = 145
MOBILE_PREFIX_SOLICIT: Final = 146
MOBILE_PREFIX_ADVERT: Final = 147
RPL: Final = 155
MTRACE_RESPONSE: Final = 200
MTRACE: Final = 201

ERROR_TYPES: Final = frozenset({DST_UNREACH, PACKET_TOO_BIG, TIME_EXCEEDED, PARAM_PROB})

# Destination unreachable codes (RFC 4443 §3.1).
UNREACH_NO_ROUTE: Final = 0
UNREACH_ADMIN: Final = 1
UNREACH_BEYOND_SCOPE: Final = 2
UNREACH_ADDRESS: Final = 3
UNREACH_PORT: Final = 4

TCP: Final = 6
UDP: Final = 17
_AH: Final = 51
_FRAG_OFFSET_MASK: Final = 0xFFF8


class Icmp6Header(NamedTuple):
    offset: int  # where the ICMPv6 header starts in the packet
    type: int
    code: int
    checksum: int
    rest: int  # the second 32-bit word, read per type by the properties below

    @property
    def ident(self) -> int:
        """Echo request/reply: the identifier (RFC 4443 §4.1)."""
        return self.rest >> 16

    @property
    def seq(self) -> int:
        """Echo request/reply: the sequence number (RFC 4443 §4.1)."""
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        """Packet too big: the next hop's MTU (RFC 4443 §3.2)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """Parameter problem: the octet of the quoted packet that was wrong (§3.4)."""
        return self.rest

    @property
    def is_error(self) -> bool:
        """RFC 4443 §2.1: types 0-127 are errors, 128-255 informational."""
        return self.type < 128

    @property
    def payload_offset(self) -> int:
        return self.offset + HEADER_LEN


class UpperLayer(NamedTuple):
    """The TCP or UDP header inside a quoted packet: its protocol and where it starts."""

    proto: int
    offset: int


class QuotedPacket(NamedTuple):
    """The start of the IPv6 packet an ICMPv6 error quotes (RFC 4443 §3)."""

    offset: int  # where the quoted IPv6 header starts
    payload_len: int  # as the quoted header says: the original packet's
    next_header: int  # the quoted header's own next header field
    src: bytes
    dst: bytes
    proto: int | None  # TCP or UDP when found past any extension headers, else None
    src_port: int | None  # None unless the quote reaches a TCP/UDP header's ports
    dst_port: int | None
    transport_offset: int | None


def parse_icmp6(buf: bytes, offset: int, end: int | None = None) -> Icmp6Header:
    """Decode the ICMPv6 header at *offset*; *end* bounds the data (default: the buffer)."""
    have = (len(buf) if end is None else min(end, len(buf))) - offset
    if have < HEADER_LEN:
        raise Truncated("icmp6", offset, HEADER_LEN, max(have, 0))
    return Icmp6Header(offset, *_ICMP6.unpack_from(buf, offset))


def quote_offset(icmp: Icmp6Header) -> int | None:
    """Where the quoted packet starts, or None if *icmp* is not an error it quotes."""
    return icmp.payload_offset if icmp.type in ERROR_TYPES else None


def parse_quoted(buf: bytes, icmp: Icmp6Header, end: int | None = None) -> QuotedPacket | None:
    """The packet an error message quotes (None for other types).

    RFC 4443 §2.4(c) asks for as much of it as fits in the minimum MTU, so the ports are
    usually there; captures cut short leave them None.  Raises Truncated
    ("icmp6-quote") when not even the quoted IPv6 header was captured.
    """
    start = quote_offset(icmp)
    if start is None:
        return None
    limit = len(buf) if end is None else min(end, len(buf))
    try:
        ip = parse_ipv6(buf, start, limit)
    except Truncated as exc:
        raise Truncated("icmp6-quote", exc.offset, exc.need, exc.have) from None
    upper = upper_layer(buf, start, limit)
    if upper is None:
        return QuotedPacket(start, ip.payload_len, ip.next_header, ip.src, ip.dst,
                            None, None, None, None)
    src_port = int.from_bytes(buf[upper.offset : upper.offset + 2], "big")
    dst_port = int.from_bytes(buf[upper.offset + 2 : upper.offset + 4], "big")
    return QuotedPacket(start, ip.payload_len, ip.next_header, ip.src, ip.dst,
                        upper.proto, src_port, dst_port, upper.offset)


def upper_layer(buf: bytes, offset: int, end: int | None = None) -> UpperLayer | None:
    """The TCP/UDP header of the IPv6 packet at *offset*, or None when it is not there.

    Walks hop-by-hop, routing, destination options, fragment and AH headers as tcpdump's
    get_upperlayer (print-icmp6.c) does, so the same quoted packets yield ports.  None
    when the capture ends first, a fragment is not the first, or another header comes.
    A port is found only when both port fields were captured.
    """
    limit = len(buf) if end is None else min(end, len(buf))
    if offset + 7 > limit:  # the next-header byte
        return None
    nh = buf[offset + 6]
    pos = offset
    advance = 40
    while pos < limit:
        pos += advance
        if nh in (TCP, UDP):
            return UpperLayer(nh, pos) if pos + 4 <= limit else None
        if nh in ip6mod.GENERIC_EXTENSIONS:
            if pos + 2 > limit:
                return None
            nh, advance = buf[pos], (buf[pos + 1] + 1) * 8
        elif nh == ip6mod.FRAGMENT:
            if pos + 4 > limit:
                return None
            if int.from_bytes(buf[pos + 2 : pos + 4], "big") & _FRAG_OFFSET_MASK:
                return None  # a later fragment carries no transport header
            nh, advance = buf[pos], 8
        elif nh == _AH:
            if pos + 2 > limit:
                return None
            nh, advance = buf[pos], (buf[pos + 1] + 2) * 4  # RFC 4302 §2.2
        else:
            return None
    return None
