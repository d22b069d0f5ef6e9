"""The TCP option table (capdissect.dissect.tcp_options.DECODERS): bytes in, records out.

Each option is written as it sits in a TCP header (kind, length, data), walked by
``parse_options`` and decoded by ``decode_option``; values are from the RFC figures
named at each case, or from tcpdump's test captures where noted.
"""

from __future__ import annotations

import pytest

from capdissect.dissect import mptcp as mp
from capdissect.dissect import tcp_options as to
from capdissect.report.tcpdump.tcp_options import NAMES


def records(raw: bytes) -> list[to.OptionRecord]:
    options = to.parse_options(raw, 0, len(raw))
    assert options.problem is None
    return [to.decode_option(option) for option in options.items]


@pytest.mark.parametrize(
    ("raw", "record"),
    [
        (bytes([0]), to.EndOfList()),
        (bytes([1]), to.NoOperation()),
        (bytes.fromhex("0204 05b4"), to.Mss(1460)),
        (bytes.fromhex("0303 07"), to.WindowScale(7)),
        (bytes.fromhex("0402"), to.SackPermitted()),
        (bytes.fromhex("050a 00000064 000000c8"), to.Sack(((100, 200),))),
        (bytes.fromhex("0512 00000001 00000002 fffffffe ffffffff"),
         to.Sack(((1, 2), (0xFFFFFFFE, 0xFFFFFFFF)))),
        (bytes.fromhex("0606 0000abcd"), to.Echo(0xABCD)),
        (bytes.fromhex("0706 00000010"), to.EchoReply(16)),
        (bytes.fromhex("080a 001a2b3c 00000001"), to.Timestamps(0x1A2B3C, 1)),
        (bytes.fromhex("0b06 00000005"), to.ConnectionCount(to.CC, 5)),
        (bytes.fromhex("0c06 00000006"), to.ConnectionCount(to.CCNEW, 6)),
        (bytes.fromhex("0d06 00000007"), to.ConnectionCount(to.CCECHO, 7)),
        (bytes([19, 18]) + bytes(range(16)), to.Md5(bytes(range(16)))),
        (bytes.fromhex("1404 0a02"), to.Scps(10, 2)),
        (bytes.fromhex("1c04 8005"), to.UserTimeout(0x8005)),
        (bytes.fromhex("1d06 0102 aabb"), to.TcpAo(1, 2, b"\xaa\xbb")),
        (bytes.fromhex("2202"), to.FastOpen(b"")),
        (bytes.fromhex("220a 0102030405060708"), to.FastOpen(bytes.fromhex("0102030405060708"))),
        (bytes.fromhex("fe08 f989 01020304"),
         to.Experimental(254, to.TFO_EXID, b"\x01\x02\x03\x04")),
        (bytes.fromhex("fd05 1234 ff"), to.Experimental(253, 0x1234, b"\xff")),
        (bytes.fromhex("6304 0102"), to.UnknownOption(99, b"\x01\x02")),
    ],
)
def test_one_record_per_kind(raw: bytes, record: to.OptionRecord) -> None:
    assert records(raw) == [record]


def test_user_timeout_granularity_is_the_high_bit() -> None:
    # RFC 5482 §2: G = 1 says minutes; the 15 bits after it are the timeout.
    minutes, seconds = to.UserTimeout(0x8005), to.UserTimeout(0x0005)
    assert (minutes.minutes, minutes.timeout) == (True, 5)
    assert (seconds.minutes, seconds.timeout) == (False, 5)


def test_mptcp_carries_the_mptcp_record() -> None:
    # MP_CAPABLE v1 on the SYN (RFC 8684 §3.1): kind 30, length 4, version 1, flags H.
    [record] = records(bytes.fromhex("1e04 0101"))
    assert isinstance(record, to.Mptcp)
    assert (record.length, record.subtype) == (4, mp.CAPABLE)
    assert record.record == mp.MpCapable(1, 0x01, None, None, None, None)


def test_mptcp_without_a_subtype_byte_is_malformed() -> None:
    assert records(bytes.fromhex("1e02")) == [to.Mptcp(2, None, mp.MptcpMalformed(None, 2))]


def test_a_common_syn() -> None:
    # Linux's SYN: mss, sackOK, TS, nop, wscale.
    raw = bytes.fromhex("0204ffd7 0402 080a 9a3b2f10 00000000 01 030307")
    assert records(raw) == [to.Mss(65495), to.SackPermitted(), to.Timestamps(0x9A3B2F10, 0),
                            to.NoOperation(), to.WindowScale(7)]


def test_data_too_short_for_the_record_is_unknown() -> None:
    # An mss of length 3 and a TS of length 6 (malformed: RFC 9293 §3.2 says 4 and 10).
    assert records(bytes.fromhex("0203 05")) == [to.UnknownOption(to.MSS, b"\x05")]
    assert records(bytes.fromhex("0806 00000001")) == [
        to.UnknownOption(to.TIMESTAMP, b"\x00\x00\x00\x01")]
    # An experimental option needs its 16-bit ExID (RFC 6994 §3).
    assert records(bytes.fromhex("fe03 f9")) == [to.UnknownOption(to.EXPERIMENT2, b"\xf9")]


def test_data_longer_than_the_record_is_read_from_the_start() -> None:
    # tcpdump reads the fixed-size data whatever the length byte says; so does the table.
    assert records(bytes.fromhex("0206 05b4 0000")) == [to.Mss(1460)]
    # A SACK block cut short is left out (RFC 2018 §3: blocks are 8 bytes).
    assert records(bytes.fromhex("050e 00000001 00000002 00000000")) == [to.Sack(((1, 2),))]


def test_decode_takes_the_kind_and_data() -> None:
    assert to.decode(to.MSS, b"\x05\xb4") == to.Mss(1460)
    assert to.decode(to.SACK, b"") == to.UnknownOption(to.SACK, b"")


def test_every_kind_tcpdump_names_has_a_decoder() -> None:
    assert set(NAMES) <= set(to.DECODERS)
    with pytest.raises(TypeError):
        to.DECODERS[99] = (0, to.FastOpen)  # type: ignore[index]
