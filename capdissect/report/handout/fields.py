"""Which header field each byte of a packet belongs to, from the dissectors' records.

The handout colours the tcpdump ``-X`` hex dump by field, so a learner sees where the
sequence number or the flags sit in the bytes.  The byte ranges come from the offsets
the dissectors recorded (``IPv4Header.offset``, ``TcpHeader.offset``, ...) plus the fixed
layouts of RFC 791 §3.1, RFC 8200 §3, RFC 9293 §3.1, RFC 768 and RFC 792; nothing is
re-parsed here except the TCP option lengths, which are walked as the option list says.
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

from capdissect.dissect.icmp import IcmpHeader
from capdissect.dissect.icmp6 import Icmp6Header
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.tcp_options import EOL, NOP
from capdissect.dissect.udp import UdpHeader


class Span(NamedTuple):
    """Bytes ``start:end`` of the packet are field *name*, drawn in colour *kind*; in
    Wireshark's display filters the field is *wireshark* (a field of exactly these bytes,
    as tests/conformance/test_wireshark_names.py checks with pyshark), "" where none is."""

    start: int
    end: int
    kind: str
    name: str
    wireshark: str = ""


# kind -> what the legend says.  The order is the legend's.
KINDS: Final = {
    "ip": "IP header (version, lengths, id, flags, TTL, protocol)",
    "addr": "IP addresses",
    "port": "ports",
    "seq": "sequence number",
    "ack": "acknowledgement number",
    "flags": "header length and flags",
    "win": "window",
    "sum": "checksums",
    "opt": "TCP options",
    "misc": "other fields (urgent pointer, UDP length, ICMP type and code)",
    "pay": "payload (application data)",
}

_OPTION_NAMES: Final = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack",
                        8: "timestamps", 19: "md5", 29: "tcp-ao", 30: "mptcp", 34: "tfo"}


# Fixed header layouts: (first byte, end, colour, field, Wireshark's field), relative to
# the header start.  Where Wireshark splits a byte into bit fields (version and header
# length), the name is the one its filter bar completes first.
Layout = tuple[tuple[int, int, str, str, str], ...]
IPV4_LAYOUT: Final[Layout] = (  # RFC 791 §3.1
    (0, 1, "ip", "version and header length", "ip.hdr_len"),
    (1, 2, "ip", "type of service", "ip.dsfield"), (2, 4, "ip", "total length", "ip.len"),
    (4, 6, "ip", "identification", "ip.id"),
    (6, 8, "ip", "flags and fragment offset", "ip.frag_offset"), (8, 9, "ip", "TTL", "ip.ttl"),
    (9, 10, "ip", "protocol", "ip.proto"),
    (10, 12, "sum", "IP header checksum", "ip.checksum"),
    (12, 16, "addr", "source address", "ip.src"),
    (16, 20, "addr", "destination address", "ip.dst"))
IPV6_LAYOUT: Final[Layout] = (  # RFC 8200 §3
    (0, 4, "ip", "version, traffic class, flow label", "ipv6.flow"),
    (4, 6, "ip", "payload length", "ipv6.plen"), (6, 7, "ip", "next header", "ipv6.nxt"),
    (7, 8, "ip", "hop limit", "ipv6.hlim"), (8, 24, "addr", "source address", "ipv6.src"),
    (24, 40, "addr", "destination address", "ipv6.dst"))
TCP_LAYOUT: Final[Layout] = (  # RFC 9293 §3.1
    (0, 2, "port", "source port", "tcp.srcport"),
    (2, 4, "port", "destination port", "tcp.dstport"),
    (4, 8, "seq", "sequence number", "tcp.seq"),
    (8, 12, "ack", "acknowledgement number", "tcp.ack"),
    (12, 14, "flags", "header length and flags", "tcp.flags"),
    (14, 16, "win", "window", "tcp.window_size_value"),
    (16, 18, "sum", "TCP checksum", "tcp.checksum"),
    (18, 20, "misc", "urgent pointer", "tcp.urgent_pointer"))
UDP_LAYOUT: Final[Layout] = (  # RFC 768
    (0, 2, "port", "source port", "udp.srcport"),
    (2, 4, "port", "destination port", "udp.dstport"),
    (4, 6, "misc", "UDP length", "udp.length"), (6, 8, "sum", "UDP checksum", "udp.checksum"))
ICMP_LAYOUT: Final[Layout] = (  # RFC 792
    (0, 1, "misc", "ICMP type", "icmp.type"), (1, 2, "misc", "ICMP code", "icmp.code"),
    (2, 4, "sum", "ICMP checksum", "icmp.checksum"), (4, 8, "misc", "ICMP rest of header", ""))
ICMP6_LAYOUT: Final[Layout] = tuple(  # RFC 4443 §2.1: the same places, icmpv6.* names
    (a, b, kind, name, wireshark.replace("icmp.", "icmpv6."))
    for a, b, kind, name, wireshark in ICMP_LAYOUT)
_OPTION_FIELDS: Final = {0: "tcp.options.eol", 1: "tcp.options.nop", 2: "tcp.options.mss",
                         3: "tcp.options.wscale", 4: "tcp.options.sack_perm",
                         5: "tcp.options.sack", 8: "tcp.options.timestamp"}


def _fixed(offset: int, layout: Layout) -> list[Span]:
    return [Span(offset + a, offset + b, kind, name, wireshark)
            for a, b, kind, name, wireshark in layout]


def field_spans(pkt: Packet) -> list[Span]:
    """The marked fields of *pkt*, in byte order; bytes not covered stay unmarked."""
    spans: list[Span] = []
    ip = pkt.ip
    if isinstance(ip, IPv4Header):
        spans += _fixed(ip.offset, IPV4_LAYOUT)
        if ip.hdr_len > 20:
            spans.append(Span(ip.offset + 20, ip.offset + ip.hdr_len, "ip", "IP options"))
    elif ip is not None:
        spans += _fixed(ip.offset, IPV6_LAYOUT)
        seg_start = pkt.transport.offset if pkt.transport is not None else pkt.payload_offset
        if seg_start > ip.offset + 40:  # extension headers sit between
            spans.append(Span(ip.offset + 40, seg_start, "ip", "IPv6 extension headers"))
    seg = pkt.transport
    if isinstance(seg, TcpHeader):
        spans += _fixed(seg.offset, TCP_LAYOUT) + _tcp_options(seg)
    elif isinstance(seg, UdpHeader):
        spans += _fixed(seg.offset, UDP_LAYOUT)
    elif isinstance(seg, IcmpHeader):
        spans += _fixed(seg.offset, ICMP_LAYOUT)
    elif isinstance(seg, Icmp6Header):
        spans += _fixed(seg.offset, ICMP6_LAYOUT)
    if seg is not None and pkt.payload_len:
        end = min(pkt.payload_offset + pkt.payload_len, len(pkt.raw.data))
        name = ("the datagram the error quotes" if isinstance(seg, IcmpHeader | Icmp6Header)
                else "payload")
        field = "tcp.payload" if isinstance(seg, TcpHeader) else \
            "data.data" if isinstance(seg, UdpHeader) else ""
        spans.append(Span(pkt.payload_offset, end, "pay", name, field))
    return spans


def _tcp_options(tcp: TcpHeader) -> list[Span]:
    spans = []
    pos, end = tcp.offset + 20, tcp.offset + tcp.hdr_len
    for option in tcp.options.items:
        # EOL and NOP are one byte; the others say their length (at least 2, so the walk
        # always advances, as the dissector's does).
        size = 1 if option.kind in (EOL, NOP) else max(option.length, 2)
        name = _OPTION_NAMES.get(option.kind, f"option {option.kind}")
        spans.append(Span(pos, min(pos + size, end), "opt", f"option {name}",
                          _OPTION_FIELDS.get(option.kind, "")))
        pos += size
        if pos >= end:
            break
    if pos < end:
        spans.append(Span(pos, end, "opt", "options (rest)"))
    return spans


def display_filter(frame: int, pkt: Packet) -> str:
    """A Wireshark display filter that picks this packet out of its capture (its copies
    too: a retransmission matches the same filter), made of the fields above."""
    ip, seg = pkt.ip, pkt.transport
    if ip is None or seg is None:
        return f"frame.number == {frame}"
    family = "ip" if isinstance(ip, IPv4Header) else "ipv6"
    src = f"{family}.src == {ipaddress.ip_address(ip.src)}"
    if isinstance(seg, TcpHeader):
        return (f"{src} && tcp.srcport == {seg.src_port} && tcp.dstport == {seg.dst_port} "
                f"&& tcp.seq_raw == {seg.seq} && tcp.flags == 0x{seg.flags:03x} "
                f"&& tcp.len == {pkt.payload_len}")
    if isinstance(seg, UdpHeader):
        return (f"{src} && udp.srcport == {seg.src_port} && udp.dstport == {seg.dst_port} "
                f"&& udp.length == {8 + pkt.payload_len}")
    if isinstance(seg, IcmpHeader | Icmp6Header):
        proto = "icmp" if isinstance(seg, IcmpHeader) else "icmpv6"
        return f"{src} && {proto}.type == {seg.type} && {proto}.code == {seg.code}"
    return f"frame.number == {frame}"
