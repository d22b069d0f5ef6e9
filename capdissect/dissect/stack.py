"""Decode a whole packet: link, network and transport headers, as records.

``decode`` is what the tracker and the JSON output consume.  It never raises: damage is
recorded in ``Packet.error`` and the layers decoded before it are kept.  Tunnels
(IPv6 in IPv4, IPv4 in IPv6, GRE, VXLAN, MPLS: ``dissect.tunnel``) are followed to the
innermost IP header, so the tracker sees the connection they carry.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from capdissect.dissect.icmp import IcmpHeader, parse_icmp
from capdissect.dissect.icmp6 import Icmp6Header, parse_icmp6
from capdissect.dissect.ipv4 import IPv4Header, parse_ipv4
from capdissect.dissect.ipv6 import Fragment, IPv6Header, parse_ipv6, walk_extensions
from capdissect.dissect.link import ETH_IPV4, ETH_IPV6, LinkHeader, parse_link
from capdissect.dissect.tcp import TcpHeader, parse_tcp
from capdissect.dissect.tunnel import GRE, Inner, below, gre, vxlan
from capdissect.dissect.udp import UdpHeader, parse_udp
from capdissect.errors import DissectError, Malformed
from capdissect.packets import RawPacket

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMPV6: Final = 58
IPIP: Final = 4
IPV6_IN_IP: Final = 41
MAX_TUNNELS: Final = 4
IP_TYPES: Final = frozenset({ETH_IPV4, ETH_IPV6})

Transport = TcpHeader | UdpHeader | IcmpHeader | Icmp6Header


class Packet(NamedTuple):
    """A decoded packet.  ``payload_len`` is what the headers say, not what was captured."""

    raw: RawPacket
    link: LinkHeader | None = None
    ip: IPv4Header | IPv6Header | None = None  # the innermost IP header
    transport: Transport | None = None
    payload_offset: int = 0
    payload_len: int = 0
    fragment: bool = False  # a non-first fragment: no transport header to read
    # The first fragment of a fragmented datagram: its transport header is there, but
    # the segment or datagram continues in later packets.
    partial: bool = False
    error: DissectError | None = None
    tunnel: tuple[int, ...] = ()  # where the IP headers around ``ip`` start, outermost first

    @property
    def payload(self) -> bytes:
        """The captured payload bytes (maybe fewer than ``payload_len``)."""
        start = self.payload_offset
        return self.raw.data[start : start + self.payload_len]


def decode(raw: RawPacket) -> Packet:
    """Decode *raw* as far as its bytes allow."""
    data = raw.data
    try:
        link = parse_link(raw.linktype, data)
    except DissectError as exc:
        return Packet(raw, error=exc)
    if link.ethertype in IP_TYPES:  # IP right after the link header (nearly every packet)
        off, v4 = link.hdr_len, link.ethertype == ETH_IPV4
    else:
        first = below(data, link.hdr_len, link.ethertype)  # MPLS labels are looked through
        if first is None or first.ethertype not in IP_TYPES:
            return Packet(raw, link)
        off, v4 = first.offset, first.ethertype == ETH_IPV4
    ip: IPv4Header | IPv6Header | None = None
    outer: tuple[int, ...] = ()
    try:
        for _ in range(MAX_TUNNELS):
            end = len(data)
            if v4:
                ip = parse_ipv4(data, off)
                total = ip.total_len
                if total == 0:
                    # TCP segmentation offload: the NIC fills the length in, so a capture
                    # of the sender shows 0.  The frame's length is the datagram's, as
                    # Wireshark takes it (tcpdump prints "bad-len 0": report/tcpdump/printer.py).
                    total = raw.wire_len - off
                if ip.version != 4 or ip.hdr_len < 20 or total < ip.hdr_len:
                    raise Malformed("ip", off, "bad version or header length")
                end = min(end, off + total)
                proto, start = ip.proto, off + ip.hdr_len
                length = total - ip.hdr_len
                if ip.frag_offset:
                    return Packet(raw, link, ip, None, start, length, fragment=True,
                                  tunnel=outer)
                partial = ip.more_fragments
            else:
                ip = parse_ipv6(data, off)
                if ip.version != 6:
                    raise Malformed("ip6", off, f"version {ip.version}")
                end = min(end, off + 40 + ip.payload_len)
                upper = walk_extensions(data, ip, end)
                proto, start = upper.proto, upper.offset
                length = off + 40 + ip.payload_len - start
                if _later_fragment(upper.fragment):
                    return Packet(raw, link, ip, None, start, length, fragment=True,
                                  tunnel=outer)
                partial = upper.fragment is not None and upper.fragment.more
            inner = _carried(data, proto, start, end, partial)
            if inner is not None:
                outer += (ip.offset,)
                off, v4 = inner.offset, inner.ethertype == ETH_IPV4
                continue
            # A frame shorter than its IP header says (a capture from a link that cut it)
            # carries only what the frame holds, as Wireshark counts it.  A record whose
            # wire length is below even the headers (a lie: len < caplen) holds nothing,
            # never a negative length (which compiled slicing refuses: "Negative size").
            length = max(min(length, raw.wire_len - start), 0)
            return _transport(raw, link, ip, proto, start, length, end, partial, outer)
    except DissectError as exc:
        return _damaged(raw, link, ip, outer, exc)
    return _damaged(raw, link, ip, outer, Malformed("ip", off, "too many nested tunnels"))


def _damaged(raw: RawPacket, link: LinkHeader, ip: IPv4Header | IPv6Header | None,
             outer: tuple[int, ...], error: DissectError) -> Packet:
    """The layers decoded before *error*: when a tunnel's inner IP header is the damaged
    one, ``ip`` is the last header that decoded, and no longer one of its tunnel's."""
    if ip is not None and outer and outer[-1] == ip.offset:
        outer = outer[:-1]
    return Packet(raw, link, ip, error=error, tunnel=outer)


def _carried(data: bytes, proto: int, start: int, end: int, partial: bool) -> Inner | None:
    """The IP packet a datagram of *proto* carries at *start*, if it is a tunnel."""
    if proto == IPIP:
        return Inner(start, ETH_IPV4)
    if proto == IPV6_IN_IP:
        return Inner(start, ETH_IPV6)
    if partial:
        return None  # the first fragment of a GRE or UDP datagram: what it carries is cut
    if proto == GRE:
        inner = gre(data, start, end)
    elif proto == UDP:
        inner = vxlan(data, start, end)
    else:
        return None
    return inner if inner is not None and inner.ethertype in IP_TYPES else None


def _later_fragment(fragment: Fragment | None) -> bool:
    return fragment is not None and fragment.frag_offset != 0


def _transport(raw: RawPacket, link: LinkHeader, ip: IPv4Header | IPv6Header, proto: int,
               start: int, length: int, end: int, partial: bool,
               outer: tuple[int, ...]) -> Packet:
    data = raw.data
    transport: Transport
    if proto == TCP:
        transport = parse_tcp(data, start, end)
        hdr = transport.hdr_len
        if hdr < 20 or hdr > length:
            raise Malformed("tcp", start, f"header length {hdr}")
    elif proto == UDP:
        transport = parse_udp(data, start, end)
        hdr = 8
    elif proto == ICMP and isinstance(ip, IPv4Header):
        transport = parse_icmp(data[:end], start)
        hdr = 8
    elif proto == ICMPV6 and isinstance(ip, IPv6Header):
        transport = parse_icmp6(data, start, end)
        hdr = 8
    else:
        return Packet(raw, link, ip, None, start, length, partial=partial, tunnel=outer)
    return _new_tuple(Packet, (raw, link, ip, transport, start + hdr, max(length - hdr, 0),
                               False, partial, None, outer))


__all__ = ["Packet", "Transport", "decode"]
