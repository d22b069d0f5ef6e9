"""Which flow a packet belongs to, told from its first bytes: what deals a capture's
connections out to several processes (``flows -j N``), each connection to one of them.

A route is one int: the kind of packet in its low two bits (``TCP``, ``UDP``, ``OTHER``
for the rest of what the tracker looks at, ``NONE`` for what it ignores) and, for TCP
and UDP, a hash of the two endpoints, the same both ways, above them.

``route`` reads a plain Ethernet frame's IPv4 or IPv6 header and ports straight from the
bytes, and gives ``UNKNOWN`` for any other shape (other links, VLAN tags, IP options,
fragments, tunnels, ICMP, anything damaged): the caller then decodes the packet and asks
``route_decoded``.  The two agree on every packet (tests/unit/test_route.py checks the
corpus, the bundled captures and mutants of them).
"""

from __future__ import annotations

import zlib
from typing import Final

from capdissect.dissect.link import EN10MB, ETH_IPV4, ETH_IPV6
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.tunnel import VXLAN_PORT
from capdissect.dissect.udp import UdpHeader

NONE: Final = 0  # nothing the tracker looks at
TCP: Final = 1
UDP: Final = 2
OTHER: Final = 3  # ICMP and ICMPv6
UNKNOWN: Final = -1  # ``route`` cannot tell without decoding


def endpoints_hash(a_addr: bytes, a_port: int, b_addr: bytes, b_port: int) -> int:
    """A hash of two endpoints, whichever order they come in (stable across processes,
    unlike ``hash``)."""
    a = a_addr + a_port.to_bytes(2, "big")
    b = b_addr + b_port.to_bytes(2, "big")
    return zlib.crc32(b, zlib.crc32(a)) if a <= b else zlib.crc32(a, zlib.crc32(b))


def route_decoded(pkt: Packet) -> int:
    """The route of a decoded packet."""
    ip = pkt.ip
    seg = pkt.transport
    if ip is None or seg is None:
        return NONE
    if isinstance(seg, TcpHeader):
        kind = TCP
    elif isinstance(seg, UdpHeader):
        kind = UDP
    else:
        return OTHER
    return endpoints_hash(ip.src, seg.src_port, ip.dst, seg.dst_port) << 2 | kind


def route(data: bytes, linktype: int, wire_len: int) -> int:
    """The route of a captured frame, or ``UNKNOWN`` (decode it, then ``route_decoded``)."""
    caplen = len(data)
    if linktype != EN10MB or caplen < 34:
        return UNKNOWN
    ethertype = data[12] << 8 | data[13]
    if ethertype == ETH_IPV4:
        # No options, not a fragment, a length the header can have (0 is TSO's).
        if data[14] != 0x45 or data[20] & 0x3F or data[21]:
            return UNKNOWN
        total = data[16] << 8 | data[17]
        if total < 20:
            return UNKNOWN
        proto = data[23]
        start = 34
        end = min(caplen, 14 + total)
        length = total - 20
        src, dst = data[26:30], data[30:34]
    elif ethertype == ETH_IPV6:
        if caplen < 54 or data[14] >> 4 != 6:
            return UNKNOWN
        payload = data[18] << 8 | data[19]
        proto = data[20]  # no extension headers
        start = 54
        end = min(caplen, 54 + payload)
        length = payload
        src, dst = data[22:38], data[38:54]
    else:
        return UNKNOWN
    # What the frame holds of the segment, as stack.decode counts it.
    length = max(min(length, wire_len - start), 0)
    if proto == 6:
        if end - start < 20:
            return UNKNOWN
        hdr_len = (data[start + 12] >> 4) * 4
        if hdr_len < 20 or hdr_len > length:
            return UNKNOWN
        kind = TCP
    elif proto == 17:
        if end - start < 8:
            return UNKNOWN
        kind = UDP
    else:
        return UNKNOWN
    src_port = data[start] << 8 | data[start + 1]
    dst_port = data[start + 2] << 8 | data[start + 3]
    if kind == UDP and dst_port == VXLAN_PORT:  # maybe a tunnel: decode says
        return UNKNOWN
    return endpoints_hash(src, src_port, dst, dst_port) << 2 | kind
