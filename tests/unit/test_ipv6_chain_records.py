"""IPv6 extension-header records (capdissect.dissect.ipv6): bytes in, records out.

The option areas are laid out by hand from RFC 8200 §4.2 (Pad1, PadN, the TLV shape),
RFC 2711 (router alert), RFC 2675 (jumbo payload) and RFC 6275 §6.3 (home address).
"""

from __future__ import annotations

from capdissect.dissect import ipv6 as ip6

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
