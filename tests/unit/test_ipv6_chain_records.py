"""IPv6 extension-header records (capdissect.dissect.ipv6): bytes in, records out.

The chains follow RFC 8200 §4 (header order, the generic length in 8-octet units, the
Fragment header of §4.5).

The option areas are laid out by hand from RFC 8200 §4.2 (Pad1, PadN, the TLV shape),
RFC 2711 (router alert), RFC 2675 (jumbo payload) and RFC 6275 §6.3 (home address).
"""

from __future__ import annotations

import struct

import pytest

from capdissect.dissect import ipv6 as ip6
from capdissect.errors import Truncated

HOME = bytes.fromhex("20010db8000000000000000000000001")


def test_pad1_padn_and_router_alert() -> None:
    # Pad1, PadN with 1 byte of padding, router alert 0 (MLD, RFC 2710).
    area = bytes([0x00, 0x01, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00])
    options = ip6.parse_tlv_options(area, 0, len(area))
    assert options.items == (ip6.TlvOption(ip6.PAD1, 0, b""),
                             ip6.TlvOption(ip6.PADN, 1, b"\x00"),
                             ip6.TlvOption(ip6.ROUTER_ALERT, 4, b"\x00\x00"))
    assert options.broken is None


def test_walk_starts_at_an_offset_and_keeps_packet_offsets() -> None:
    # A hop-by-hop header (next header 58, length 0) with a jumbo payload option.
    header = bytes([58, 0, 0xC2, 0x04]) + (70000).to_bytes(4, "big")
    (jumbo,) = ip6.parse_tlv_options(bytes(40) + header, 42, 48).items
    assert jumbo == ip6.TlvOption(ip6.JUMBO, 42, (70000).to_bytes(4, "big"))


def test_home_address_with_sub_options() -> None:
    # Home address option of length 20: the address, then sub-options Pad1, PadN(1).
    area = bytes([0xC9, 20]) + HOME + bytes([0x00, 0x01, 0x01, 0x00])
    (home,) = ip6.parse_tlv_options(area, 0, len(area)).items
    assert home.kind == ip6.HOME_ADDRESS and home.data[:16] == HOME
    subs = ip6.parse_tlv_options(area, 18, len(area))
    assert [(o.kind, o.offset, o.data) for o in subs.items] == [(0, 18, b""), (1, 19, b"\x00")]


def test_option_running_past_the_area_is_broken() -> None:
    # PadN, then an unknown option 0x3e claiming 6 bytes where 2 are left.
    area = bytes([0x01, 0x00, 0x3E, 0x06, 0xAA, 0xBB])
    options = ip6.parse_tlv_options(area, 0, len(area))
    assert options.items == (ip6.TlvOption(ip6.PADN, 0, b""),)
    assert options.broken == 0x3E


def test_length_byte_outside_the_area_is_broken() -> None:
    # The area ends right after a router alert's type byte (the next byte is not its own).
    options = ip6.parse_tlv_options(bytes([0x00, 0x05, 0x02]), 0, 2)
    assert options.items == (ip6.TlvOption(ip6.PAD1, 0, b""),)
    assert options.broken == ip6.ROUTER_ALERT


def test_empty_area() -> None:
    assert ip6.parse_tlv_options(b"\x05\x02", 1, 1) == ip6.TlvOptions((), None)


SRC = bytes(15) + b"\x01"
DST = bytes(15) + b"\x02"


def _ip6(next_header: int, payload: bytes) -> tuple[bytes, ip6.IPv6Header]:
    # Version 6, payload length, next header, hop limit 64, ::1 > ::2.
    buf = struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64, SRC, DST) + payload
    return buf, ip6.parse_ipv6(buf, 0)


def test_chain_of_hop_by_hop_fragment_and_routing_to_tcp() -> None:
    hbh = bytes([44, 0, 0x01, 0x04]) + bytes(4)  # next: fragment; PadN(4)
    frag = struct.pack("!BBHI", 43, 0, 0x0001, 0xCAFE)  # next: routing; offset 0, M set
    routing = bytes([6, 2, 2, 1]) + bytes(4) + SRC  # next: TCP; type 2, 1 segment left
    buf, ip = _ip6(0, hbh + frag + routing)
    chain = ip6.parse_chain(buf, ip, len(buf))
    fragment = ip6.Fragment(43, 0, True, 0xCAFE)
    assert chain.headers == (ip6.Extension(ip6.HOPOPTS, 40, 44, 8, None),
                             ip6.Extension(ip6.FRAGMENT, 48, 43, 8, fragment),
                             ip6.Extension(ip6.ROUTING, 56, 6, 24, None))
    assert chain.upper == ip6.UpperHeader(6, 80, fragment, 48, 40)
    assert chain.cut is None and chain.error is None
    assert ip6.walk_extensions(buf, ip, len(buf)) == chain.upper


def test_later_fragment_ends_the_chain() -> None:
    frag = struct.pack("!BBHI", 17, 0, 1480, 7)  # offset 1480 bytes, no M
    buf, ip = _ip6(ip6.FRAGMENT, frag + bytes(8))
    chain = ip6.parse_chain(buf, ip, len(buf))
    assert chain.upper is not None and (chain.upper.proto, chain.upper.offset) == (17, 48)
    assert chain.upper.fragment == ip6.Fragment(17, 1480, False, 7)


def test_header_cut_after_its_length_byte() -> None:
    # A destination header of 16 bytes with only 10 captured.
    buf, ip = _ip6(ip6.DSTOPTS, bytes([59, 1]) + bytes(14))
    chain = ip6.parse_chain(buf, ip, 50)
    assert chain.headers == () and chain.upper is None
    assert chain.cut == ip6.Extension(ip6.DSTOPTS, 40, 59, 16, None)
    assert chain.error is not None and (chain.error.layer, chain.error.need,
                                        chain.error.have) == ("ip6", 16, 10)
    with pytest.raises(Truncated):
        ip6.walk_extensions(buf, ip, 50)


def test_header_cut_before_its_length_byte_and_a_cut_fragment() -> None:
    buf, ip = _ip6(ip6.ROUTING, bytes([59, 0, 0, 0]) + bytes(4))
    chain = ip6.parse_chain(buf, ip, 41)
    assert chain.cut == ip6.Extension(ip6.ROUTING, 40, None, None, None)
    buf, ip = _ip6(ip6.FRAGMENT, bytes(8))
    chain = ip6.parse_chain(buf, ip, 45)
    assert chain.cut == ip6.Extension(ip6.FRAGMENT, 40, None, None, None)
    assert chain.error is not None and chain.error.layer == "frag6"


def test_chain_longer_than_the_limit_is_an_error_without_a_cut_header() -> None:
    dst = bytes([ip6.DSTOPTS, 0, 0x01, 0x04]) + bytes(4)  # each names another one
    buf, ip = _ip6(ip6.DSTOPTS, dst * (ip6.MAX_EXTENSIONS + 1))
    chain = ip6.parse_chain(buf, ip, len(buf))
    assert len(chain.headers) == ip6.MAX_EXTENSIONS
    assert chain.upper is None and chain.cut is None and chain.error is not None


def test_routing_type_2_whole() -> None:
    # Type 2 (RFC 6275 §6.4), length 2, 1 segment left, reserved 0, the home address.
    header = bytes([6, 2, 2, 1, 0, 0, 0, 0]) + SRC
    assert ip6.parse_routing(header, 0, len(header)) == ip6.Routing(2, 2, 1, bytes(4), (SRC,))


def test_routing_type_4_segment_list() -> None:
    # Segment routing (RFC 8754 §2): length 4, last entry 1, flags 0, tag 0x0102.
    header = bytes([6, 4, 4, 1, 1, 0, 1, 2]) + DST + SRC
    rt = ip6.parse_routing(bytes(40) + header, 40, 40 + len(header))
    assert rt == ip6.Routing(4, 4, 1, bytes([1, 0, 1, 2]), (DST, SRC))


def test_routing_cut_by_the_capture_keeps_what_is_there() -> None:
    header = bytes([6, 4, 0, 2, 0, 0, 0, 0]) + DST + SRC
    assert ip6.parse_routing(header, 0, 30) == ip6.Routing(4, 0, 2, bytes(4), (DST,))
    assert ip6.parse_routing(header, 0, 6) == ip6.Routing(4, 0, 2, bytes(2), ())
    assert ip6.parse_routing(header, 0, 3) == ip6.Routing(4, 0, None, b"", ())
    assert ip6.parse_routing(header, 0, 1) == ip6.Routing(None, None, None, b"", ())


def test_routing_addresses_stop_at_the_header_length() -> None:
    # Length 1 holds 8 bytes after the first 8: no whole address, whatever follows.
    header = bytes([6, 1, 0, 0]) + bytes(4) + DST
    assert ip6.parse_routing(header, 0, len(header)).addresses == ()
