"""Tunnels the tracker looks through: MPLS, GRE and VXLAN (decoded for tracking only).

Each decoder takes the bytes at an offset and says where the carried packet starts and
what it is, as an ethertype (``Inner``), or ``None`` when it carries something that is
not followed (PPP in PPTP's enhanced GRE, a source-routed GRE, a VXLAN header without
its I flag).  ``dissect.stack.decode`` chains them to the innermost IP header.  The
tcpdump printer does not use them: it prints the outer headers from the raw bytes, as
tcpdump does.  Pure: no IO.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.dissect.link import EN10MB, ETH_IPV4, ETH_IPV6, parse_link
from capdissect.errors import DissectError

MPLS_TYPES: Final = frozenset({0x8847, 0x8848})  # MPLS unicast, multicast
MAX_LABELS: Final = 8
GRE: Final = 47
ETH_BRIDGING: Final = 0x6558  # GRE's transparent Ethernet bridging (RFC 1701)
VXLAN_PORT: Final = 4789  # RFC 7348 §5: the IANA-assigned destination port
VXLAN_LEN: Final = 8
UDP_LEN: Final = 8

# GRE's first 16 bits (RFC 2784, RFC 2890; RFC 1701 for the routing bit).
GRE_CHECKSUM: Final = 0x8000
GRE_ROUTING: Final = 0x4000
GRE_KEY: Final = 0x2000
GRE_SEQUENCE: Final = 0x1000
GRE_VERSION: Final = 0x0007
VXLAN_I: Final = 0x08  # RFC 7348 §5: the VNI is valid

_GRE: Final = struct.Struct("!HH")


class Inner(NamedTuple):
    """What a tunnel carries: where it starts and its type, as an ethertype."""

    offset: int
    ethertype: int


def below(data: bytes, off: int, ethertype: int) -> Inner | None:
    """What *ethertype* at *off* leads to: itself, or the packet under its MPLS labels or
    inside its bridged Ethernet frame; ``None`` when the headers are cut."""
    if ethertype in MPLS_TYPES:
        return mpls(data, off)
    if ethertype == ETH_BRIDGING:
        return ethernet(data, off)
    return Inner(off, ethertype)


def mpls(data: bytes, off: int) -> Inner | None:
    """MPLS (RFC 3032): labels until the bottom of the stack, then IP, as its first nibble
    says (no ethertype is sent: RFC 4182 leaves it to the label)."""
    for _ in range(MAX_LABELS):
        if off + 4 > len(data):
            return None
        off += 4
        if data[off - 2] & 1:
            break
    version = data[off] >> 4 if off < len(data) else 0
    return Inner(off, ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0)


def ethernet(data: bytes, off: int) -> Inner | None:
    """An Ethernet frame carried in a tunnel, with its VLAN tags."""
    try:
        link = parse_link(EN10MB, data[off:])
    except DissectError:
        return None
    return below(data, off + link.hdr_len, link.ethertype)


def gre(data: bytes, off: int, end: int) -> Inner | None:
    """GRE (RFC 2784 with RFC 2890's key and sequence number): version 0, its optional
    checksum, key and sequence words skipped, then the protocol type."""
    if off + _GRE.size > end:
        return None
    bits, ptype = _GRE.unpack_from(data, off)
    if bits & (GRE_VERSION | GRE_ROUTING):
        return None  # PPTP's enhanced GRE carries PPP; source routing is not followed
    words = sum(1 for flag in (GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE) if bits & flag)
    start = off + _GRE.size + 4 * words
    if start > end:
        return None
    return below(data, start, ptype)


def vxlan(data: bytes, off: int, end: int) -> Inner | None:
    """VXLAN (RFC 7348) in the UDP datagram at *off*: to port 4789, its 8-byte header with
    the I flag, then an Ethernet frame."""
    start = off + UDP_LEN
    if start + VXLAN_LEN > end or int.from_bytes(data[off + 2 : off + 4], "big") != VXLAN_PORT:
        return None
    if not data[start] & VXLAN_I:
        return None
    return ethernet(data, start + VXLAN_LEN)
