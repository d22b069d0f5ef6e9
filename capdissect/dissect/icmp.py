"""ICMP for IPv4 (RFC 792): the 8-byte header and the datagram an error message quotes.

The second 32-bit word of the header means something different for each type (RFC 792
"rest of header"); it is kept as one integer, with properties naming its readings.
Error messages quote the IP header and first 8 bytes of the datagram that caused them
(RFC 792, RFC 1812 §4.3.2.3 allows more); ``parse_quoted`` decodes enough of that quote
(addresses, protocol, ports) for a tracker to find the flow the error answers.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.dissect.ipv4 import OFFSET_MASK, parse_ipv4
from capdissect.errors import Truncated

_ICMP: Final = struct.Struct("!BBHI")  # RFC 792: type, code, checksum, rest of header
HEADER_LEN: Final = 8

# Message types (RFC 792, RFC 950 for the mask messages, RFC 1256 for router discovery).
ECHO_REPLY: Final = 0
UNREACHABLE: Final = 3
SOURCE_QUENCH: Final = 4
REDIRECT: Final = 5
ECHO_REQUEST: Final = 8
ROUTER_ADVERT: Final = 9
ROUTER_SOLICIT: Final = 10
TIME_EXCEEDED: Final = 11
PARAM_PROBLEM: Final = 12
TIMESTAMP: Final = 13
TIMESTAMP_REPLY: Final = 14
INFO_REQUEST: Final = 15
INFO_REPLY: Final = 16
MASK_REQUEST: Final = 17
MASK_REPLY: Final = 18

# Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
UNREACH_PORT: Final = 3

# The messages that quote the datagram they answer (RFC 792; print-icmp.c ICMP_ERRTYPE).
ERROR_TYPES: Final = frozenset(
    {UNREACHABLE, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM}
)
# The error messages RFC 4884 lets carry extension objects after the quote.
MULTIPART_TYPES: Final = frozenset({UNREACHABLE, TIME_EXCEEDED, PARAM_PROBLEM})

# Transports whose first 4 bytes are the source and destination ports.
_PORTED: Final = frozenset({6, 17, 33, 132})  # TCP, UDP, DCCP, SCTP


class IcmpHeader(NamedTuple):
    offset: int  # where the ICMP header starts in the packet
    type: int
    code: int
    checksum: int
    rest: int  # the second 32-bit word, read per type by the properties below

    @property
    def ident(self) -> int:
        """Echo, timestamp, information, mask messages: the identifier."""
        return self.rest >> 16

    @property
    def seq(self) -> int:
        """Echo, timestamp, information, mask messages: the sequence number."""
        return self.rest & 0xFFFF

    @property
    def gateway(self) -> bytes:
        """Redirect: the gateway address to use instead (RFC 792)."""
        return self.rest.to_bytes(4, "big")

    @property
    def pointer(self) -> int:
        """Parameter problem: the octet of the quoted header that was wrong (RFC 792)."""
        return self.rest >> 24

    @property
    def next_hop_mtu(self) -> int:
        """Unreachable, fragmentation needed: the next hop's MTU (RFC 1191 §4)."""
        return self.rest & 0xFFFF

    @property
    def ext_length(self) -> int:
        """RFC 4884 §4.1: length of the quoted datagram in 32-bit words (0: not set)."""
        return (self.rest >> 16) & 0xFF

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    @property
    def payload_offset(self) -> int:
        return self.offset + HEADER_LEN


class QuotedDatagram(NamedTuple):
    """The start of the datagram an ICMP error quotes."""

    offset: int  # where the quoted IPv4 header starts
    hdr_len: int
    total_len: int  # as the quoted header says: the original datagram's length
    proto: int
    src: bytes
    dst: bytes
    src_port: int | None  # None unless TCP/UDP/DCCP/SCTP with its ports quoted
    dst_port: int | None

    @property
    def transport_offset(self) -> int:
        return self.offset + self.hdr_len


def parse_icmp(buf: bytes, offset: int) -> IcmpHeader:
    """Decode the 8-byte ICMP header at *offset*."""
    have = len(buf) - offset
    if have < HEADER_LEN:
        raise Truncated("icmp", offset, HEADER_LEN, max(have, 0))
    return IcmpHeader(offset, *_ICMP.unpack_from(buf, offset))


def quote_offset(icmp: IcmpHeader) -> int | None:
    """Where the quoted original datagram starts, or None if *icmp* is not an error."""
    return icmp.payload_offset if icmp.is_error else None


def parse_quoted(buf: bytes, icmp: IcmpHeader) -> QuotedDatagram | None:
    """The quoted datagram of an error message (None for other types).

    Ports are read only when the quote reaches them; RFC 792 promises the first 8 bytes
    after the IP header, which covers them, but captures are often cut short.
    """
    start = quote_offset(icmp)
    if start is None:
        return None
    try:
        ip = parse_ipv4(buf, start)
    except Truncated as exc:
        raise Truncated("icmp-quote", exc.offset, exc.need, exc.have) from None
    src_port = dst_port = None
    transport = start + ip.hdr_len
    # A later fragment's payload does not start with the transport header.
    first_fragment = ip.flags_frag & OFFSET_MASK == 0
    if ip.proto in _PORTED and ip.hdr_len >= 20 and first_fragment and transport + 4 <= len(buf):
        src_port, dst_port = struct.unpack_from("!HH", buf, transport)
    return QuotedDatagram(
        start, ip.hdr_len, ip.total_len, ip.proto, ip.src, ip.dst, src_port, dst_port
    )
