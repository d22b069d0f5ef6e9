"""Link, IPv4, IPv6, TCP, TCP options, UDP and the checksum, on commented byte literals."""

from __future__ import annotations

import pytest

from capdissect.dissect import checksum, link, tcp_options
from capdissect.dissect.ipv4 import parse_ipv4
from capdissect.dissect.ipv6 import FRAGMENT, extension_length, parse_fragment, parse_ipv6
from capdissect.dissect.tcp import ACK, SYN, parse_tcp
from capdissect.dissect.udp import parse_udp
from capdissect.errors import Truncated

# A SYN from 127.0.0.1:48496 to 127.0.0.1:30002 as Linux sends it on loopback.
IPV4_SYN = bytes.fromhex(
    "4500003c" "1c46" "4000" "40" "06" "2074" "7f000001" "7f000001"  # IPv4, 60 bytes, DF, TTL 64
    "bd70" "7532" "6d3f0f2e" "00000000" "a0" "02" "ffd7" "fe30" "0000"  # TCP, hlen 40, SYN
    "020405b4"  # mss 1460
    "0402"  # sackOK
    "080a" "001a2b3c" "00000000"  # TS val 1715004 ecr 0
    "01"  # nop
    "030307"  # wscale 7
)


def test_ipv4_fields() -> None:
    ip = parse_ipv4(IPV4_SYN, 0)
    assert (ip.version, ip.hdr_len, ip.total_len, ip.ttl, ip.proto) == (4, 20, 60, 64, 6)
    assert ip.src == bytes([127, 0, 0, 1]) and ip.flags_frag == 0x4000
    assert ip.frag_offset == 0 and not ip.more_fragments and ip.payload_offset == 20


def test_tcp_fields_and_options() -> None:
    seg = parse_tcp(IPV4_SYN, 20)
    assert (seg.src_port, seg.dst_port) == (48496, 30002)
    assert seg.seq == 0x6D3F0F2E and seg.ack == 0 and seg.hdr_len == 40
    assert seg.flags == SYN and not seg.flags & ACK and seg.window == 0xFFD7
    assert seg.options.problem is None
    assert [o.kind for o in seg.options.items] == [2, 4, 8, 1, 3]
    decoded = [tcp_options.decode_option(o) for o in seg.options.items]
    assert decoded[0] == tcp_options.Mss(1460)
    assert decoded[2] == tcp_options.Timestamps(0x1A2B3C, 0)
    assert decoded[4] == tcp_options.WindowScale(7)


def test_checksums_verify_and_repair() -> None:
    ip_header = IPV4_SYN[:20]
    assert checksum.verify(ip_header) == 0  # the header above carries its right checksum
    broken = ip_header[:10] + b"\x00\x00" + ip_header[12:]
    computed = checksum.verify(broken)
    assert computed != 0
    assert checksum.should_be(0, computed) == 0x2074


@pytest.mark.parametrize(
    ("raw", "problem", "kinds"),
    [
        (bytes([2, 0, 0, 0]), tcp_options.BAD, []),  # length 0: tcpdump's [bad opt]
        (bytes([1, 2, 1]), tcp_options.BAD, [1]),  # length 1 after a nop
        (bytes([8, 10, 0, 0]), tcp_options.BAD, []),  # TS claims 10 bytes, 4 in the header
        (bytes([1, 1, 0, 5, 5]), None, [1, 1, 0]),  # eol ends the list, the rest is padding
    ],
)
def test_option_walk_stops_on_bad_lengths(raw: bytes, problem: str | None,
                                          kinds: list[int]) -> None:
    result = tcp_options.parse_options(raw, 0, len(raw))
    assert result.problem == problem
    assert [o.kind for o in result.items] == kinds


def test_option_walk_reports_capture_end() -> None:
    # The header says 12 option bytes; only 5 were captured: the TS option is cut short.
    result = tcp_options.parse_options(bytes([1, 8, 10, 0, 0]), 0, 12)
    assert result.problem == tcp_options.TRUNCATED
    assert result.items[-1].kind == 8 and result.items[-1].data == b"\0\0"


def test_truncated_headers_raise_dissect_errors() -> None:
    with pytest.raises(Truncated) as info:
        parse_tcp(IPV4_SYN[:30], 20)
    assert (info.value.layer, info.value.need, info.value.have) == ("tcp", 20, 10)
    with pytest.raises(Truncated):
        parse_ipv4(IPV4_SYN[:12], 0)


def test_ipv6_and_fragment_header() -> None:
    raw = bytes.fromhex(
        "60012345" "0010" "2c" "40"  # version 6, flow 0x12345, 16 bytes, next Fragment, hlim 64
        + "00" * 15 + "01" + "00" * 15 + "01"  # ::1 > ::1
        + "11" "00" "05a9" "f88eb466"  # Fragment: next UDP, offset 1448 (0x5a8) + M, id
    )
    ip6 = parse_ipv6(raw, 0)
    assert (ip6.flow_label, ip6.payload_len, ip6.next_header, ip6.hop_limit) == (
        0x12345, 16, FRAGMENT, 64)
    frag = parse_fragment(raw, 40)
    assert (frag.next_header, frag.frag_offset, frag.more, frag.ident) == (
        17, 1448, True, 0xF88EB466)
    assert extension_length(raw, 40, FRAGMENT) == 8


def test_udp() -> None:
    udp = parse_udp(bytes.fromhex("a67827110016fe35") + b"hello world!", 0)
    assert (udp.src_port, udp.dst_port, udp.length, udp.payload_offset) == (42616, 10001, 22, 8)


def test_link_layers() -> None:
    ether = bytes(6) + bytes(range(6)) + b"\x81\x00" + b"\x20\x0a" + b"\x08\x00"
    hdr = link.parse_link(link.EN10MB, ether)
    assert (hdr.hdr_len, hdr.ethertype, hdr.vlans) == (18, link.ETH_IPV4, (0x200A,))
    assert link.parse_link(link.NULL, b"\x18\0\0\0").ethertype == link.ETH_IPV6  # BSD AF 24
    assert link.parse_link(link.NULL, b"\0\0\0\x02").ethertype == link.ETH_IPV4  # other order
    assert link.parse_link(link.LOOP, b"\0\0\0\x02").ethertype == link.ETH_IPV4
    assert link.parse_link(link.RAW, b"\x60").ethertype == link.ETH_IPV6
    sll2 = b"\x08\x00\0\0" + b"\0\0\0\x01" + b"\x03\x04" + b"\x00\x06" + bytes(8)
    hdr = link.parse_link(link.LINUX_SLL2, sll2)
    assert (hdr.ifindex, hdr.ethertype, hdr.hdr_len) == (1, link.ETH_IPV4, 20)
    with pytest.raises(Truncated):
        link.parse_link(link.EN10MB, ether[:10])
