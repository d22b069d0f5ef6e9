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

A UDP datagram to or from a *pinned* endpoint goes to shard 0, whatever the other end:
the endpoints that refused a datagram (an ICMP port unreachable quotes it), so that
everything their sockets sent is tracked in one process (tracking/shards.py).
``refusers`` finds them a buffer of records at a time, from the bytes where ``refusal``
can tell a frame is no port unreachable, else decoded (``refused``).
"""

from __future__ import annotations

from typing import Final

from capdissect.dissect import icmp, icmp6
from capdissect.dissect.link import EN10MB, ETH_IPV4, ETH_IPV6
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.tunnel import VXLAN_PORT
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import DissectError
from capdissect.packets import RawPacket, RecordBatch

NONE: Final = 0  # nothing the tracker looks at
TCP: Final = 1
UDP: Final = 2
OTHER: Final = 3  # ICMP and ICMPv6
UNKNOWN: Final = -1  # ``route`` cannot tell without decoding


_IPV4_ENDPOINTS: Final = 1 << 48  # every IPv4 endpoint is below
_MASK: Final = 0x3FFFFFFF
_GOLDEN: Final = 0x9E3779B1  # 2**32 / the golden ratio: spreads the bits it multiplies


def endpoints_hash(a: int, b: int) -> int:
    """A hash of two endpoints, each an address's number shifted left 16 bits with the
    port below, whichever order they come in: the same in every process (an int's hash,
    and a tuple's of ints, is; a string's is not).  Two IPv4 endpoints are mixed in
    machine words, without the tuple that a hash of IPv6 numbers needs."""
    low, high = (a, b) if a <= b else (b, a)
    if high < _IPV4_ENDPOINTS:
        mixed = ((low ^ low >> 30) & _MASK) * _GOLDEN ^ high
        return (mixed ^ mixed >> 30) & _MASK
    return hash((low, high)) & _MASK


def endpoint(addr: bytes, port: int) -> int:
    """An endpoint as ``endpoints_hash`` takes it."""
    return int.from_bytes(addr, "big") << 16 | port


def route_decoded(pkt: Packet, pinned: frozenset[int] = frozenset()) -> int:
    """The route of a decoded packet; UDP to or from a *pinned* endpoint hashes to 0."""
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
    a = endpoint(ip.src, seg.src_port)
    b = endpoint(ip.dst, seg.dst_port)
    if kind == UDP and pinned and (a in pinned or b in pinned):
        return UDP
    return endpoints_hash(a, b) << 2 | kind


def _plain_ip(data: bytes, at: int, caplen: int, linktype: int) -> int:
    """4 or 6 when the *caplen* bytes of *data* from *at* are an Ethernet frame whose IP
    header the bytes tell plainly (IPv4 without options and not a fragment, or IPv6),
    else 0."""
    if linktype != EN10MB or caplen < 34:
        return 0
    ethertype = data[at + 12] << 8 | data[at + 13]
    if ethertype == ETH_IPV4:
        return 0 if data[at + 14] != 0x45 or data[at + 20] & 0x3F or data[at + 21] else 4
    if ethertype == ETH_IPV6:
        return 6 if caplen >= 54 and data[at + 14] >> 4 == 6 else 0
    return 0


def route(data: bytes, linktype: int, wire_len: int,
          pinned: frozenset[int] = frozenset()) -> int:
    """The route of a captured frame, or ``UNKNOWN`` (decode it, then ``route_decoded``)."""
    return route_at(data, 0, len(data), linktype, wire_len, pinned)


def route_at(data: bytes, at: int, caplen: int, linktype: int, wire_len: int,
             pinned: frozenset[int] = frozenset()) -> int:
    """``route`` of the frame of *caplen* bytes at *at* in *data* (a pcap file's buffer:
    no copy of each record)."""
    version = _plain_ip(data, at, caplen, linktype)
    if version == 4:
        total = data[at + 16] << 8 | data[at + 17]
        if total < 20:  # a length the header cannot have, or 0 (TSO's)
            return UNKNOWN
        proto = data[at + 23]
        start = 34
        end = min(caplen, 14 + total)
        length = total - 20
        src = (data[at + 26] << 24 | data[at + 27] << 16 | data[at + 28] << 8
               | data[at + 29])
        dst = (data[at + 30] << 24 | data[at + 31] << 16 | data[at + 32] << 8
               | data[at + 33])
    elif version == 6:
        payload = data[at + 18] << 8 | data[at + 19]
        proto = data[at + 20]  # no extension headers
        start = 54
        end = min(caplen, 54 + payload)
        length = payload
        src = int.from_bytes(data[at + 22:at + 38], "big")
        dst = int.from_bytes(data[at + 38:at + 54], "big")
    else:
        return UNKNOWN
    # What the frame holds of the segment, as stack.decode counts it.
    length = max(min(length, wire_len - start), 0)
    if proto == 6:
        if end - start < 20:
            return UNKNOWN
        hdr_len = (data[at + start + 12] >> 4) * 4
        if hdr_len < 20 or hdr_len > length:
            return UNKNOWN
        kind = TCP
    elif proto == 17:
        if end - start < 8:
            return UNKNOWN
        kind = UDP
    else:
        return UNKNOWN
    start += at
    src_port = data[start] << 8 | data[start + 1]
    dst_port = data[start + 2] << 8 | data[start + 3]
    if kind == UDP and dst_port == VXLAN_PORT:  # maybe a tunnel: decode says
        return UNKNOWN
    a = src << 16 | src_port
    b = dst << 16 | dst_port
    if kind == UDP and pinned and (a in pinned or b in pinned):
        return UDP
    return endpoints_hash(a, b) << 2 | kind


def refusal(data: bytes, linktype: int) -> int:
    """Whether the frame is an ICMP or ICMPv6 port unreachable (which may quote a UDP
    datagram): 1 or 0, or ``UNKNOWN`` where only decoding tells (``refused``)."""
    return refusal_at(data, 0, len(data), linktype)


def refusal_at(data: bytes, at: int, caplen: int, linktype: int) -> int:
    """``refusal`` of the frame of *caplen* bytes at *at* in *data*."""
    version = _plain_ip(data, at, caplen, linktype)
    if version == 4:
        proto, start, icmp, unreachable, port = data[at + 23], 34, 1, 3, 3
    elif version == 6:
        proto, start, icmp, unreachable, port = data[at + 20], 54, 58, 1, 4
    else:
        return UNKNOWN
    caplen -= start  # the bytes after the IP header, from *start*
    start += at
    if proto == icmp:
        if caplen < 8:
            return UNKNOWN
        return int(data[start] == unreachable and data[start + 1] == port)
    if proto == 6:
        return 0
    if proto == 17 and caplen >= 4:  # unless it may be VXLAN
        return 0 if (data[start + 2] << 8 | data[start + 3]) != VXLAN_PORT else UNKNOWN
    return UNKNOWN


def refused(pkt: Packet) -> int | None:
    """The endpoint (as ``endpoint`` makes it) a decoded ICMP or ICMPv6 port unreachable
    says refused a UDP datagram, when its quote shows one."""
    seg = pkt.transport
    quote: icmp.QuotedDatagram | icmp6.QuotedPacket | None
    try:
        if isinstance(seg, icmp.IcmpHeader) and seg.type == 3 and seg.code == 3:
            quote = icmp.parse_quoted(pkt.raw.data, seg)
        elif isinstance(seg, icmp6.Icmp6Header) and seg.type == 1 and seg.code == 4:
            quote = icmp6.parse_quoted(pkt.raw.data, seg)
        else:
            return None
    except DissectError:
        return None
    if quote is None or quote.proto != 17 or quote.dst_port is None:
        return None
    return endpoint(quote.dst, quote.dst_port)


def refusers(batch: RecordBatch | list[RawPacket]) -> set[int]:
    """The endpoints that refused a UDP datagram in a pcap record batch, or a list."""
    found: set[int] = set()
    if isinstance(batch, list):
        for raw in batch:
            if refusal(raw.data, raw.linktype) != 0:
                _add(found, refused(decode(raw)))
        return found
    buf, linktype = batch.buf, batch.linktype
    for i in range(len(batch)):
        at, caplen = batch.span(i)
        if refusal_at(buf, at, caplen, linktype) != 0:
            _add(found, refused(decode(batch.packet(i))))
    return found


def _add(found: set[int], refuser: int | None) -> None:
    if refuser is not None:
        found.add(refuser)
