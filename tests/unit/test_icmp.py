"""ICMP for IPv4: the header decoder, the quoted-datagram helper and tcpdump's text.

The packets are real: the echo request and the port unreachable were captured on Linux
loopback (``ping -s 0 127.0.0.1``, a UDP datagram to a closed port); the time exceeded
with an RFC 4950 MPLS label comes from PcapPlusPlus's IcmpPackets.pcapng.  The expected
lines are what tcpdump 4.99.3 printed for them (``tcpdump -r FILE -nn -v``).
"""

from __future__ import annotations

import pytest

from capdissect.dissect import icmp
from capdissect.dissect.link import RAW
from capdissect.errors import Truncated
from capdissect.packets import RawPacket
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter

# ping -s 0 127.0.0.1: an echo request with no data.
ECHO_REQUEST = bytes.fromhex(
    "4500001c" "5a24" "4000" "40" "01" "e2ba" "7f000001" "7f000001"  # IPv4, 28 bytes, ICMP
    "08" "00" "c9bd" "2e41" "0001"  # type 8 code 0, checksum, id 11841, seq 1
)

# The kernel's answer to a UDP datagram sent to 127.0.0.1:33333, where nothing listens.
PORT_UNREACHABLE = bytes.fromhex(
    "45c00043" "5a38" "0000" "40" "01" "21c0" "7f000001" "7f000001"  # IPv4, 67 bytes, ICMP
    "03" "03" "2f14" "00000000"  # type 3 (unreachable) code 3 (port), checksum, unused
    "45000027" "51b2" "4000" "40" "11" "eb11" "7f000001" "7f000001"  # quoted IPv4, UDP
    "bbaa" "8235" "0013" "fe26"  # quoted UDP 48042 -> 33333, length 19
    "68656c6c6f20776f726c64"  # "hello world"
)

# A traceroute probe's time exceeded, from an MPLS router (RFC 4884 + RFC 4950).
TIME_EXCEEDED_MPLS = bytes.fromhex(
    "450000a8" "05fa" "0000" "fc" "01" "a158" "0a000201" "0a000102"  # IPv4, 168 bytes
    "0b" "00" "ac2d" "00" "00" "0000"  # type 11 code 0, checksum, RFC 4884 length 0
    "4500001c" "00e5" "0000" "02" "11" "00d9" "0a000102" "ac100002"  # quoted IPv4, UDP
    "c01d" "82a5" "0008" "0607"  # quoted UDP 49181 -> 33445
    + "00" * 100  # the quote is zero-padded to 128 bytes (RFC 4884 §4.1)
    + "20" "00" "7df4"  # extension header: version 2, checksum
    "0008" "01" "01"  # object: length 8, class 1 (MPLS label stack), c-type 1
    "00016101"  # label 22, tc 0, bottom of stack, ttl 1
)


def _print(data: bytes, options: PrintOptions) -> str:
    """tcpdump's text for *data* on a raw-IP link, without the timestamp."""
    text = TcpdumpPrinter(options).format(RawPacket(0, 0, RAW, len(data), data))
    return text.split(" ", 1)[1]


def test_echo_header_fields() -> None:
    header = icmp.parse_icmp(ECHO_REQUEST, 20)
    assert (header.offset, header.type, header.code) == (20, icmp.ECHO_REQUEST, 0)
    assert header.checksum == 0xC9BD
    assert (header.ident, header.seq) == (11841, 1)
    assert not header.is_error and icmp.quote_offset(header) is None
    assert icmp.parse_quoted(ECHO_REQUEST, header) is None


def test_short_header_raises_truncated() -> None:
    with pytest.raises(Truncated) as info:
        icmp.parse_icmp(ECHO_REQUEST[:26], 20)  # only 6 of the 8 header bytes
    assert (info.value.layer, info.value.offset, info.value.need, info.value.have) == (
        "icmp", 20, 8, 6,
    )  # fmt: skip


def test_port_unreachable_quotes_the_udp_flow() -> None:
    header = icmp.parse_icmp(PORT_UNREACHABLE, 20)
    assert (header.type, header.code) == (icmp.UNREACHABLE, icmp.UNREACH_PORT)
    assert header.is_error and icmp.quote_offset(header) == 28
    quoted = icmp.parse_quoted(PORT_UNREACHABLE, header)
    assert quoted is not None
    assert (quoted.offset, quoted.hdr_len, quoted.total_len, quoted.proto) == (28, 20, 39, 17)
    assert quoted.src == bytes([127, 0, 0, 1]) and quoted.dst == bytes([127, 0, 0, 1])
    assert (quoted.src_port, quoted.dst_port) == (48042, 33333)
    assert quoted.transport_offset == 48


def test_quote_cut_before_the_ports_has_no_ports() -> None:
    data = PORT_UNREACHABLE[:50]  # the quoted UDP header stops after 2 bytes
    quoted = icmp.parse_quoted(data, icmp.parse_icmp(data, 20))
    assert quoted is not None and quoted.proto == 17
    assert (quoted.src_port, quoted.dst_port) == (None, None)


def test_quote_shorter_than_an_ip_header_raises() -> None:
    data = PORT_UNREACHABLE[:40]
    with pytest.raises(Truncated) as info:
        icmp.parse_quoted(data, icmp.parse_icmp(data, 20))
    assert info.value.layer == "icmp-quote"


def test_rest_of_header_readings() -> None:
    # A redirect to gateway 10.2.99.98, a "need to frag" with MTU 1400, a parameter
    # problem pointing at octet 9, an RFC 4884 length of 32 words.
    assert icmp.parse_icmp(bytes.fromhex("05010000" "0a026362"), 0).gateway == bytes(
        [10, 2, 99, 98]
    )
    assert icmp.parse_icmp(bytes.fromhex("03040000" "00000578"), 0).next_hop_mtu == 1400
    assert icmp.parse_icmp(bytes.fromhex("0c000000" "09000000"), 0).pointer == 9
    assert icmp.parse_icmp(bytes.fromhex("0b000000" "00200000"), 0).ext_length == 32


def test_echo_line() -> None:
    assert _print(ECHO_REQUEST, PrintOptions(n=2)) == (
        "IP 127.0.0.1 > 127.0.0.1: ICMP echo request, id 11841, seq 1, length 8"
    )


def test_port_unreachable_verbose_prints_the_quote() -> None:
    assert _print(PORT_UNREACHABLE, PrintOptions(n=2, v=1)).split("\n") == [
        "IP (tos 0xc0, ttl 64, id 23096, offset 0, flags [none], proto ICMP (1), length 67)",
        "    127.0.0.1 > 127.0.0.1: ICMP 127.0.0.1 udp port 33333 unreachable, length 47",
        "\tIP (tos 0x0, ttl 64, id 20914, offset 0, flags [DF], proto UDP (17), length 39)",
        "    127.0.0.1.48042 > 127.0.0.1.33333: UDP, length 11",
    ]


def test_bad_checksum_is_reported_only_with_v() -> None:
    broken = ECHO_REQUEST[:22] + b"\x00\x00" + ECHO_REQUEST[24:]
    assert _print(broken, PrintOptions(n=2)).endswith("seq 1, length 8")
    assert _print(broken, PrintOptions(n=2, v=1)).endswith(
        "seq 1, length 8 (wrong icmp cksum 0 (->c9bd)!)"
    )


def test_mpls_extension_lines() -> None:
    lines = _print(TIME_EXCEEDED_MPLS, PrintOptions(n=2, v=1)).split("\n")
    assert lines[1] == "    10.0.2.1 > 10.0.1.2: ICMP time exceeded in-transit, length 148"
    assert lines[-3:] == [
        "\tICMP Multi-Part extension v2, checksum 0x7df4 (correct), length 12",
        "\t  MPLS Stack Entry Object (1), Class-Type: 1, length 8",
        "\t    label 22, tc 0, [S], ttl 1",
    ]


def test_truncated_summary_prints_the_icmp_marker() -> None:
    # Cut inside the quoted header: tcpdump's explicit check prints [|icmp] and stops.
    cut = TIME_EXCEEDED_MPLS[:40]
    packet = RawPacket(0, 0, RAW, len(TIME_EXCEEDED_MPLS), cut)
    text = TcpdumpPrinter(PrintOptions(n=2)).format(packet)
    assert text.endswith("IP 10.0.2.1 > 10.0.1.2:  [|icmp]")
