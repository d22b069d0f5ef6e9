"""ICMPv6: the dissector's fields and tcpdump 4.99's text for a few messages.

Packets use the RAW link type (the IPv6 header first).  The printer runs with -t (no
timestamp), so the expected lines do not depend on the time zone.
"""

from __future__ import annotations

import pytest

from capdissect.dissect.icmp6 import (
    DST_UNREACH,
    ECHO_REQUEST,
    UDP,
    Icmp6Header,
    parse_icmp6,
    parse_quoted,
    quote_offset,
    upper_layer,
)
from capdissect.errors import Truncated
from capdissect.packets import RawPacket
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter

RAW = 101
EN10MB = 1
LOOPBACK = "00000000000000000000000000000001"  # ::1
LINK_LOCAL = "fe800000000000000000000000000001"  # fe80::1
ALL_NODES = "ff020000000000000000000000000001"  # ff02::1

# IPv6 ::1 > ::1, payload 10, next header 58 (ICMPv6), hop limit 64
ECHO = bytes.fromhex(
    "6000 0000 000a 3a40" + LOOPBACK + LOOPBACK
    + "80 00 051b"  # type 128 echo request, code 0, checksum 0x051b (correct)
    + "1234 0001"  # identifier 0x1234 = 4660, sequence 1
    + "6869"  # data "hi"
)

# ::1 > ::1: port unreachable quoting the UDP datagram 40000 > 30002 "who are you"
PORT_UNREACHABLE = bytes.fromhex(
    "6000 0000 0043 3a40" + LOOPBACK + LOOPBACK  # payload 67
    + "01 04 e015"  # type 1 destination unreachable, code 4 port, checksum 0xe015
    + "0000 0000"  # unused
    + "6000 0000 0013 1140" + LOOPBACK + LOOPBACK  # quoted IPv6: payload 19, UDP
    + "9c40 7532 0013 0000"  # quoted UDP: 40000 > 30002, length 19, no checksum
    + "77686f2061726520796f75"  # "who are you"
)

# fe80::1 > ff02::1, hop limit 255: neighbor advertisement with one option
NEIGHBOR_ADVERT = bytes.fromhex(
    "6000 0000 0020 3aff" + LINK_LOCAL + ALL_NODES  # payload 32
    + "88 00 b302"  # type 136, code 0, checksum 0xb302
    + "6000 0000"  # flags: solicited (0x40), override (0x20)
    + LINK_LOCAL  # target fe80::1
    + "02 01 0011 2233 4455"  # target link-layer address option, 1 unit of 8 bytes
)


def _packet(data: bytes, wire_len: int | None = None) -> RawPacket:
    return RawPacket(0, 0, RAW, len(data) if wire_len is None else wire_len, data)


def _line(data: bytes, wire_len: int | None = None, **options: int) -> str:
    printer = TcpdumpPrinter(PrintOptions(n=2, t=1, **options))
    return printer.format(_packet(data, wire_len))


# ----- dissector ------------------------------------------------------------------------------
def test_parse_echo_request_fields() -> None:
    header = parse_icmp6(ECHO, 40)
    assert header == Icmp6Header(40, ECHO_REQUEST, 0, 0x051B, 0x12340001)
    assert (header.ident, header.seq) == (0x1234, 1)
    assert not header.is_error
    assert quote_offset(header) is None
    assert parse_quoted(ECHO, header) is None


def test_parse_short_header_raises_truncated() -> None:
    with pytest.raises(Truncated) as caught:
        parse_icmp6(ECHO[:46], 40)  # 6 of the 8 header bytes
    assert (caught.value.layer, caught.value.need, caught.value.have) == ("icmp6", 8, 6)


def test_parse_respects_end() -> None:
    with pytest.raises(Truncated):
        parse_icmp6(ECHO, 40, end=47)


def test_port_unreachable_points_at_the_quoted_udp_datagram() -> None:
    header = parse_icmp6(PORT_UNREACHABLE, 40)
    assert (header.type, header.code, header.is_error) == (DST_UNREACH, 4, True)
    assert quote_offset(header) == 48
    assert upper_layer(PORT_UNREACHABLE, 48) == (UDP, 88)
    quoted = parse_quoted(PORT_UNREACHABLE, header)
    assert quoted is not None
    assert (quoted.offset, quoted.payload_len, quoted.proto) == (48, 19, UDP)
    assert quoted.src == quoted.dst == bytes.fromhex(LOOPBACK)
    assert (quoted.src_port, quoted.dst_port, quoted.transport_offset) == (40000, 30002, 88)


def test_quote_cut_before_the_ports_keeps_the_addresses() -> None:
    header = parse_icmp6(PORT_UNREACHABLE, 40)
    quoted = parse_quoted(PORT_UNREACHABLE, header, end=48 + 40 + 2)
    assert quoted is not None
    assert (quoted.next_header, quoted.proto, quoted.src_port, quoted.dst_port) == (
        UDP, None, None, None,
    )
    with pytest.raises(Truncated) as caught:
        parse_quoted(PORT_UNREACHABLE, header, end=48 + 39)
    assert caught.value.layer == "icmp6-quote"


def test_upper_layer_walks_extension_headers() -> None:
    quoted = bytes.fromhex(
        "6000 0000 001c 0040" + LOOPBACK + LOOPBACK  # next header 0: hop-by-hop
        + "11 00 0104 0000 0000"  # HBH: next UDP, length 0 (8 bytes), PadN
        + "0035 0035 0014 0000" + "00" * 12  # UDP 53 > 53
    )
    assert upper_layer(quoted, 0) == (UDP, 48)


def test_upper_layer_gives_up_on_later_fragments_and_short_captures() -> None:
    later_fragment = bytes.fromhex(
        "6000 0000 0010 2c40" + LOOPBACK + LOOPBACK  # next header 44: fragment
        + "11 00 0008 0000 0001"  # next UDP, offset 8 bytes: no UDP header here
        + "00" * 8
    )
    assert upper_layer(later_fragment, 0) is None
    assert upper_layer(PORT_UNREACHABLE, 48, end=48 + 40 + 3) is None  # ports cut short


# ----- tcpdump's text -------------------------------------------------------------------------
def test_echo_request_line() -> None:
    assert _line(ECHO) == "IP6 ::1 > ::1: ICMP6, echo request, id 4660, seq 1, length 10"


def test_echo_request_verbose_checks_the_checksum() -> None:
    assert _line(ECHO, v=1) == (
        "IP6 (hlim 64, next-header ICMPv6 (58) payload length: 10) ::1 > ::1: "
        "[icmp6 sum ok] ICMP6, echo request, id 4660, seq 1"
    )
    corrupt = ECHO[:42] + b"\x05\x1c" + ECHO[44:]
    assert "[bad icmp6 cksum 0x051c -> 0x051b!] " in _line(corrupt, v=1)


def test_port_unreachable_names_the_udp_port() -> None:
    assert _line(PORT_UNREACHABLE) == (
        "IP6 ::1 > ::1: ICMP6, destination unreachable, unreachable port, "
        "::1 udp port 30002, length 67"
    )


def test_port_unreachable_cut_before_the_ports_prints_the_marker_itself() -> None:
    # print-icmp6.c `goto trunc`: " [|icmp6]" and no length.
    cut = PORT_UNREACHABLE[: 40 + 8 + 40 + 2]
    assert _line(cut, wire_len=len(PORT_UNREACHABLE)) == (
        "IP6 ::1 > ::1: ICMP6, destination unreachable, unreachable port [|icmp6]"
    )


def test_neighbor_advertisement_options_at_verbose() -> None:
    assert _line(NEIGHBOR_ADVERT) == (
        "IP6 fe80::1 > ff02::1: ICMP6, neighbor advertisement, tgt is fe80::1, length 32"
    )
    assert _line(NEIGHBOR_ADVERT, v=1) == (
        "IP6 (hlim 255, next-header ICMPv6 (58) payload length: 32) fe80::1 > ff02::1: "
        "[icmp6 sum ok] ICMP6, neighbor advertisement, length 32, tgt is fe80::1, "
        "Flags [solicited, override]\n"
        "\t  destination link-address option (2), length 8 (1): 00:11:22:33:44:55"
    )


def test_target_cut_short_jumps_out_and_dumps_from_the_link_header() -> None:
    # A GET_ macro failing longjmps: the top prints " [|icmp6]" after what was printed
    # so far, and the -X dump then starts at the Ethernet header instead of IPv6.
    ethernet = bytes.fromhex("3333 0000 0001" "0200 0000 0001" "86dd")  # to 33:33:00:00:00:01
    frame = ethernet + NEIGHBOR_ADVERT
    printer = TcpdumpPrinter(PrintOptions(n=2, t=1, X=1))
    whole = printer.format(RawPacket(0, 0, EN10MB, len(frame), frame))
    assert "\n\t0x0000:  6000 0000 0020 3aff fe80" in whole  # from the IPv6 header
    cut = printer.format(RawPacket(0, 0, EN10MB, len(frame), frame[: 14 + 56]))
    assert cut.startswith("IP6 fe80::1 > ff02::1: ICMP6, neighbor advertisement [|icmp6]\n")
    assert "\n\t0x0000:  3333 0000 0001 0200 0000 0001 86dd 6000" in cut


def test_empty_message_is_invalid() -> None:
    empty = bytes.fromhex("6000 0000 0000 3a40" + LOOPBACK + LOOPBACK)
    assert _line(empty) == "IP6 ::1 > ::1: ICMP6, length 0 (invalid)"


def test_mldv2_report_group_records() -> None:
    report = bytes.fromhex(
        "6000 0000 001c 3a01" + LINK_LOCAL + "ff020000000000000000000000000016"
        + "8f 00 0000"  # type 143 MLDv2 report, checksum not checked without -v
        + "0000 0001"  # reserved, 1 group record
        + "04 00 0000" + "ff020000000000000000000000000002"  # CHANGE_TO_EXCLUDE ff02::2
    )
    assert _line(report) == (
        "IP6 fe80::1 > ff02::16: ICMP6, multicast listener report v2, 1 group record(s), "
        "length 28"
    )
    assert _line(report, v=1).endswith(
        "ICMP6, multicast listener report v2, 1 group record(s) [gaddr ff02::2 to_ex, "
        "0 source(s)]"
    )
