"""IPv4 option records (capdissect.dissect.ip_options): option bytes in, records out.

Each area is the bytes after the fixed 20-byte header, laid out by hand from RFC 791
§3.1 (routes, timestamp), RFC 2113 (router alert), RFC 1108 (security) and RFC 1393
(traceroute).
"""

from __future__ import annotations

from capdissect.dissect import ip_options as ipo

A1, A2, A3 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 3])


def test_nop_nop_then_eol_ends_the_walk() -> None:
    # NOP, NOP, EOL, then bytes after the EOL that are never read as options.
    options = ipo.parse_ip_options(bytes([1, 1, 0, 68]), 0, 4)
    assert [(o.code, o.offset, o.length) for o in options.items] == [(1, 0, 1), (1, 1, 1),
                                                                     (0, 2, 1)]
    assert options.problem is None and options.broken is None


def test_record_route_keeps_pointer_and_addresses() -> None:
    # RR, length 11 (two addresses), pointer 8: the first slot is filled.
    area = bytes([7, 11, 8]) + A1 + A2 + bytes([0])
    (rr, eol) = ipo.parse_ip_options(area, 0, len(area)).items
    assert rr.code == ipo.RR and rr.length == 11 and rr.data == area[2:11]
    assert rr.value == ipo.Route(8, (A1, A2), ragged=False)
    assert eol.code == ipo.EOL


def test_route_with_a_part_address_is_ragged() -> None:
    # LSRR, length 9: one whole address and two bytes of another.
    area = bytes([131, 9, 4]) + A1 + b"\x0a\x00" + bytes(3)
    route = ipo.parse_ip_options(area, 0, len(area)).items[0]
    assert route.value == ipo.Route(4, (A1,), ragged=True)


def test_route_of_length_2_has_no_record() -> None:
    route = ipo.parse_ip_options(bytes([7, 2, 1, 1]), 0, 4).items[0]
    assert (route.length, route.data, route.value) == (2, b"", None)


def test_timestamp_only_entries() -> None:
    # Timestamp, length 12, pointer 9 (one slot used), overflow 2, flag 0: 4-byte entries.
    area = bytes([68, 12, 9, 0x20]) + (1000).to_bytes(4, "big") + (0).to_bytes(4, "big")
    ts = ipo.parse_ip_options(area, 0, len(area)).items[0].value
    assert ts == ipo.Timestamp(9, 2, 0, (ipo.TimestampEntry(None, 1000),
                                         ipo.TimestampEntry(None, 0)), ragged=False)
    assert isinstance(ts, ipo.Timestamp) and ts.entry_len == 4


def test_timestamp_with_addresses_and_a_ragged_tail() -> None:
    # Flag 1 (address + timestamp), length 16: one 8-byte entry, then 4 bytes of another.
    area = bytes([68, 16, 13, 0x01]) + A1 + (7).to_bytes(4, "big") + A2
    ts = ipo.parse_ip_options(area, 0, len(area)).items[0].value
    assert ts == ipo.Timestamp(13, 0, 1, (ipo.TimestampEntry(A1, 7),), ragged=True)
    assert isinstance(ts, ipo.Timestamp) and ts.entry_len == 8


def test_timestamp_shorter_than_4_has_no_record() -> None:
    option = ipo.parse_ip_options(bytes([68, 3, 5, 0]), 0, 4).items[0]
    assert option.value is None


def test_router_alert_value_and_short_form() -> None:
    area = bytes([148, 4, 0, 0, 148, 4, 0x01, 0x02])
    first, second = ipo.parse_ip_options(area, 0, 8).items
    assert first.value == ipo.RouterAlert(0) and second.value == ipo.RouterAlert(0x0102)
    short = ipo.parse_ip_options(bytes([148, 2, 0, 0]), 0, 4).items[0]
    assert short.value is None


def test_security_traceroute_and_unknown_keep_their_data() -> None:
    # Security (length 11), traceroute (length 12), an unknown option 25 (length 2).
    security = bytes([130, 11]) + bytes(range(9))
    traceroute = bytes([82, 12]) + bytes([0, 1, 0, 3, 0, 0]) + A3
    area = security + traceroute + bytes([25, 2, 0, 0])
    items = ipo.parse_ip_options(area, 0, len(area)).items
    assert [(o.code, o.data, o.value) for o in items] == [
        (130, security[2:], None), (82, traceroute[2:], None), (25, b"", None), (0, b"", None)]


def test_length_below_2_is_bad() -> None:
    options = ipo.parse_ip_options(bytes([1, 7, 1, 0]), 0, 4)
    assert [o.code for o in options.items] == [1]
    assert options.problem == ipo.BAD and options.broken == ipo.IpOption(7, 1, 1, b"", None)


def test_length_past_the_header_is_bad_even_when_captured() -> None:
    # The header says 4 option bytes; the RR claims 7 and the capture has them all.
    buf = bytes([7, 7, 4]) + A1
    options = ipo.parse_ip_options(buf, 0, 4)
    assert options.problem == ipo.BAD and options.broken is not None
    assert options.broken.length == 7


def test_length_byte_read_past_the_header_end() -> None:
    # A NOP then an RR type byte end the 2-byte area; its length byte is in the capture.
    options = ipo.parse_ip_options(bytes([1, 7, 3, 4]), 0, 2)
    assert options.problem == ipo.BAD and options.broken is not None
    assert options.broken.length == 3


def test_data_past_the_capture_is_truncated() -> None:
    buf = bytes([7, 7, 4]) + A1
    options = ipo.parse_ip_options(buf, 0, 8, caplen=5)
    assert options.items == ()
    assert options.problem == ipo.TRUNCATED
    assert options.broken == ipo.IpOption(7, 0, 7, bytes([4, 10, 0]), None)


def test_capture_ending_before_the_length_byte_is_cut() -> None:
    options = ipo.parse_ip_options(bytes([1, 68]), 0, 8)
    assert [o.code for o in options.items] == [1]
    assert options.problem == ipo.CUT
    assert options.broken == ipo.IpOption(68, 1, None, b"", None)


def test_capture_ending_before_a_type_byte_is_cut_with_nothing_broken() -> None:
    options = ipo.parse_ip_options(bytes([1, 1]), 0, 8)
    assert len(options.items) == 2 and options.problem == ipo.CUT and options.broken is None


def test_walk_starts_at_an_offset() -> None:
    buf = bytes(20) + bytes([148, 4, 0, 5])
    (alert,) = ipo.parse_ip_options(buf, 20, 24).items
    assert alert.offset == 20 and alert.value == ipo.RouterAlert(5)


def test_source_route_destination_is_the_last_4_bytes_of_the_first_route() -> None:
    # RR first (ignored), then SSRR with two addresses, then an LSRR never reached.
    area = (bytes([7, 7, 4]) + A3 + bytes([137, 11, 4]) + A1 + A2
            + bytes([131, 7, 4]) + A3 + bytes(3))
    assert ipo.source_route_destination(ipo.parse_ip_options(area, 0, len(area))) == A2


def test_source_route_destination_of_a_ragged_route_is_its_last_4_bytes() -> None:
    # LSRR, length 8 (tcpdump's ip_finddst reads the last 4 bytes, whole address or not).
    area = bytes([131, 8, 4]) + A1 + b"\x09" + bytes(4)
    assert ipo.source_route_destination(ipo.parse_ip_options(area, 0, 12)) == bytes(
        [0, 0, 1, 9])


def test_no_source_route_destination_without_a_whole_route() -> None:
    short = bytes([131, 3, 4, 0])  # no address
    assert ipo.source_route_destination(ipo.parse_ip_options(short, 0, 4)) is None
    after_eol = bytes([0, 131, 7, 4]) + A1 + bytes(1)
    assert ipo.source_route_destination(ipo.parse_ip_options(after_eol, 0, 8)) is None
