"""MPTCP option decoding (capdissect.dissect.mptcp) and tcpdump 4.99.3's wording for it.

Option bytes are whole options (kind 30, length, data).  Those marked "capture" are
copied from tcpdump's test captures mptcp-v0.pcap, mptcp-v1.pcap and mptcp-fclose.pcap,
with the text tcpdump 4.99.3 prints for them; the others are built by hand from the
figures of RFC 8684 and checked against /usr/bin/tcpdump on a crafted capture.
"""

from __future__ import annotations

import pytest

from capdissect.dissect import mptcp as mp
from capdissect.dissect.tcp_options import MPTCP, Mptcp, decode
from capdissect.report.tcpdump.mptcp import render_mptcp

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
SYNACK = SYN | ACK

# MP_CAPABLE v1 on the SYN: kind 30, length 4, subtype 0 / version 1, flags 0x01 (H).
CAPABLE_V1_SYN = bytes.fromhex("1e04 0101")
# MP_CAPABLE v1 on the third ACK (capture): both 64-bit keys.
CAPABLE_V1_ACK = bytes.fromhex("1e14 0101 1fdb5df328bc3def 29a6c86981ad933c")
# MP_CAPABLE v0 on the SYN (capture): flags 0x81 = A (checksum) + H, the sender's key.
CAPABLE_V0_SYN = bytes.fromhex("1e0c 0081 9c9eabd1e46a33b2")
# MP_JOIN on the SYN (capture): address id 0, token, nonce.
JOIN_SYN = bytes.fromhex("1e0c 1000 e47f0142 1b665a18")
# MP_JOIN on the SYN/ACK (capture): address id 1, truncated HMAC, nonce.
JOIN_SYNACK = bytes.fromhex("1e10 1001 5ab680c7884af03d 33abe9d5")
# MP_JOIN on the ACK (capture): the full 160-bit HMAC.
JOIN_ACK = bytes.fromhex("1e18 1000 cb7b87f5e5f0502f43b535fb70ef6607df2e6c7a")
# DSS (capture): flags 0x05 = M + A, 4-byte data ack 0xd52abeca, DSN 0xd1b97490,
# subflow seq 1, data-level length 0x29, checksum 0x082f.
DSS_FULL = bytes.fromhex("1e14 2005 d52abeca d1b97490 00000001 0029 082f")
# DSS with DATA_FIN and an 8-byte data ack only: flags 0x13 = F + a + A.
DSS_FIN_ACK8 = bytes.fromhex("1e0c 2013 0000000100000002")
# DSS saying "8-byte data ack" but carrying 4 bytes: tcpdump prints the label, then rejects.
DSS_SHORT = bytes.fromhex("1e08 2003 00000001")
# ADD_ADDR v0 for IPv4 (capture): IPVer nibble 4, address id 1, 10.1.2.2.
ADD_ADDR_V0 = bytes.fromhex("1e08 3401 0a010202")
# ADD_ADDR v1 for IPv6 with a port and the 64-bit HMAC: 2001:db8::1 port 8080.
ADD_ADDR_V6 = bytes.fromhex("1e1e 3007 20010db8000000000000000000000001 1f90 0102030405060708")
# REMOVE_ADDR: address ids 3 and 4.
REMOVE_ADDR = bytes.fromhex("1e05 4003 04")
# MP_PRIO v0 form with an address id: B set, id 2.
PRIO = bytes.fromhex("1e04 5102")
# MP_FAIL: 64-bit data sequence number 42.
FAIL = bytes.fromhex("1e0c 6000 000000000000002a")
# MP_FASTCLOSE (capture): the receiver's key.
FAST_CLOSE = bytes.fromhex("1e0c 7000 d005b1ab34bad344")
# MP_TCPRST (RFC 8684 §3.6): flags T (0x1), reason 3 ("resource exceeded").
TCPRST = bytes.fromhex("1e04 8103")


def test_capable_v1_ack_keys() -> None:
    rec = mp.parse_mptcp(CAPABLE_V1_ACK)
    assert rec == mp.MpCapable(1, 0x01, 0x1FDB5DF328BC3DEF, 0x29A6C86981AD933C, None, None)


def test_capable_with_data_length_and_checksum() -> None:
    # RFC 8684 §3.1: the third ACK carrying data adds the data-level length and checksum.
    option = bytes.fromhex("1e18 0101 1fdb5df328bc3def 29a6c86981ad933c 0010 abcd")
    rec = mp.parse_mptcp(option)
    assert isinstance(rec, mp.MpCapable)
    assert (rec.data_len, rec.checksum) == (0x10, 0xABCD)


def test_capable_v0_checksum_flag() -> None:
    rec = mp.parse_mptcp(CAPABLE_V0_SYN)
    assert isinstance(rec, mp.MpCapable)
    assert rec.version == 0 and rec.checksum_required and rec.receiver_key is None


def test_join_forms_by_length() -> None:
    assert mp.parse_mptcp(JOIN_SYN) == mp.MpJoinSyn(False, 0, 0xE47F0142, 0x1B665A18)
    assert mp.parse_mptcp(JOIN_SYNACK) == mp.MpJoinSynAck(
        False, 1, 0x5AB680C7884AF03D, 0x33ABE9D5)
    assert mp.parse_mptcp(JOIN_ACK) == mp.MpJoinAck(JOIN_ACK[4:])
    assert mp.parse_mptcp(JOIN_SYN[:11]) == mp.MptcpMalformed(mp.JOIN, 11)


def test_dss_fields() -> None:
    assert mp.parse_mptcp(DSS_FULL) == mp.Dss(
        0x05, 0xD52ABECA, 0xD1B97490, 1, 0x29, 0x082F, complete=True)
    assert mp.parse_mptcp(DSS_FIN_ACK8) == mp.Dss(0x13, 0x100000002, None, None, None, None,
                                                  complete=True)


def test_dss_short_keeps_nothing_and_is_incomplete() -> None:
    assert mp.parse_mptcp(DSS_SHORT) == mp.Dss(0x03, None, None, None, None, None,
                                               complete=False)


def test_add_addr_families_port_and_hmac() -> None:
    assert mp.parse_mptcp(ADD_ADDR_V0) == mp.AddAddr(4, 1, bytes([10, 1, 2, 2]), None, None)
    rec = mp.parse_mptcp(ADD_ADDR_V6)
    assert isinstance(rec, mp.AddAddr)
    assert (len(rec.address), rec.port, rec.hmac, rec.echo) == (16, 8080, 0x0102030405060708,
                                                                False)


def test_other_subtypes() -> None:
    assert mp.parse_mptcp(REMOVE_ADDR) == mp.RemoveAddr((3, 4))
    assert mp.parse_mptcp(PRIO) == mp.Prio(True, 2)
    assert mp.parse_mptcp(FAIL) == mp.Fail(42)
    assert mp.parse_mptcp(FAST_CLOSE) == mp.FastClose(0xD005B1AB34BAD344)
    assert mp.parse_mptcp(TCPRST) == mp.TcpRst(0x1, 3)
    assert mp.parse_mptcp(bytes.fromhex("1e05 9000 ff")) == mp.MptcpUnknown(9, b"\x00\xff")
    assert mp.parse_mptcp(b"\x1e\x02") == mp.MptcpMalformed(None, 2)


def _record(option: bytes) -> Mptcp:
    """The TCP option table's record for a whole MPTCP option."""
    record = decode(MPTCP, option[2:])
    assert isinstance(record, Mptcp)
    assert record.length == len(option)
    return record


@pytest.mark.parametrize(
    ("option", "flags", "text"),
    [
        (CAPABLE_V1_SYN, SYN, " 4 capable v1"),
        (CAPABLE_V1_ACK, ACK, " 20 capable v1 {0x1fdb5df328bc3def,0x29a6c86981ad933c}"),
        (CAPABLE_V0_SYN, SYN, " 12 capable v0 csum {0x9c9eabd1e46a33b2}"),
        (bytes.fromhex("1e04 0200"), SYN, " 4 capable Unknown Version (2)"),
        (JOIN_SYN, SYN, " 12 join id 0 token 0xe47f0142 nonce 0x1b665a18"),
        (JOIN_SYNACK, SYNACK, " 16 join id 1 hmac 0x5ab680c7884af03d nonce 0x33abe9d5"),
        (JOIN_ACK, ACK, " 24 join hmac 0xcb7b87f5e5f0502f43b535fb70ef6607df2e6c7a"),
        (bytes.fromhex("1e0c 1105 00000001 00000002"), SYN,
         " 12 join backup id 5 token 0x1 nonce 0x2"),
        (DSS_FULL, ACK, " 20 dss ack 3576348362 seq 3518592144 subseq 1 len 41 csum 0x82f"),
        (DSS_FIN_ACK8, ACK | FIN, " 12 dss fin ack 4294967298"),
        (ADD_ADDR_V0, ACK, " 8 add-addr v0-ip4 id 1 10.1.2.2"),
        (ADD_ADDR_V6, ACK, " 30 add-addr v1 id 7 2001:db8::1:8080 hmac 0x102030405060708"),
        (REMOVE_ADDR, ACK, " 5 rem-addr id 3 4"),
        (PRIO, ACK, " 4 prio backup id 2"),
        (bytes.fromhex("1e03 50"), ACK, " 3 prio non-backup"),
        (FAIL, ACK, " 12 fail seq 42"),
        (FAST_CLOSE, ACK, " 12 fast-close key 0xd005b1ab34bad344"),
        # tcpdump 4.99.3 knows subtypes 0-7 only: MP_TCPRST is "unknown".
        (TCPRST, RST | ACK, " 4 unknown"),
    ],
)
def test_tcpdump_text(option: bytes, flags: int, text: str) -> None:
    assert render_mptcp(_record(option), flags) == (text, True)


@pytest.mark.parametrize(
    ("option", "flags", "text"),
    [
        # Each form on the wrong segment: capable SYN form on an ACK, third-ACK form on a
        # SYN, join SYN/ACK form on a plain SYN, any DSS on a SYN.
        (CAPABLE_V1_SYN, ACK, " 4 capable"),
        (CAPABLE_V1_ACK, SYNACK, " 20 capable"),
        (JOIN_SYNACK, SYN, " 16 join"),
        (DSS_FULL, SYN | ACK, " 20 dss"),
        # The 24-byte MP_CAPABLE with a checksum (RFC 8684 §3.1) is unknown to tcpdump.
        (bytes.fromhex("1e18 0101 1fdb5df328bc3def 29a6c86981ad933c 0010 abcd"), ACK,
         " 24 capable"),
        # Labels printed before the length check fails.
        (DSS_SHORT, ACK, " 8 dss ack "),
        (bytes.fromhex("1e0e 2005 00000001 00000002 0003"), ACK, " 14 dss ack 1 seq 2"),
        # Bytes left over after a complete DSS.
        (bytes.fromhex("1e16 2005 d52abeca d1b97490 00000001 0029 082f 0000"), ACK,
         " 22 dss ack 3576348362 seq 3518592144 subseq 1 len 41 csum 0x82f"),
        (bytes.fromhex("1e09 3001 0a010202 00"), ACK, " 9 add-addr"),
        (bytes.fromhex("1e03 40"), ACK, " 3 rem-addr"),
        (bytes.fromhex("1e0b 6000 0000000000000a"), ACK, " 11 fail"),
        (b"\x1e\x02", ACK, ""),
    ],
)
def test_tcpdump_rejects(option: bytes, flags: int, text: str) -> None:
    assert render_mptcp(_record(option), flags) == (text, False)


def test_add_addr_uses_the_namer() -> None:
    option = bytes.fromhex("1e0a 3005 7f000001 0016")  # 127.0.0.1 port 22
    text, ok = render_mptcp(_record(option), ACK, addr=lambda packed: "localhost")
    assert (text, ok) == (" 10 add-addr v1 id 5 localhost:22", True)


def test_add_addr_v4_mapped_ipv6_like_inet_ntop() -> None:
    option = bytes.fromhex("1e14 3402 00000000000000000000ffff0a000001")
    assert render_mptcp(_record(option), ACK) == (" 20 add-addr v0-ip4 id 2 ::ffff:10.0.0.1", True)
