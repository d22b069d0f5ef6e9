"""IP fragment reassembly (dissect/defrag.py) on fragment shapes a test cannot make a
kernel send on demand: out of order, duplicated, overlapping, a missing piece, IPv6 with
an extension header before the Fragment header, and the memory bounds.  A real datagram
fragmented by the kernel is in tests/live/test_defrag_live.py."""

from __future__ import annotations

import struct

from capdissect.dissect.checksum import verify
from capdissect.dissect.defrag import Defragmenter
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import IPv6Header
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.packets import RawPacket

SRC, DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6, DST6 = bytes(15) + b"\1", bytes(15) + b"\2"
PAYLOAD = bytes(range(256)) * 4
DATAGRAM = struct.pack("!HHHH", 1000, 2000, 8 + len(PAYLOAD), 0) + PAYLOAD  # UDP


def packet(ip: bytes, ts: float, ethertype: int = 0x0800, cut: int = 0) -> Packet:
    frame = b"\2" * 6 + b"\4" * 6 + ethertype.to_bytes(2, "big") + ip
    data = frame[:len(frame) - cut]
    return decode(RawPacket(int(ts), int(ts % 1 * 1e9), 1, len(frame), data))


def v4(start: int, stop: int, more: bool, ts: float = 0.0, ident: int = 7,
       data: bytes = DATAGRAM, proto: int = 17, cut: int = 0) -> Packet:
    piece = data[start:stop]
    flags = (0x2000 if more else 0) | start // 8
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), ident, flags, 64, proto,
                         0, SRC, DST)
    return packet(header + piece, ts, cut=cut)


def v6(start: int, stop: int, more: bool, ts: float = 0.0, ident: int = 9) -> Packet:
    """With a Hop-by-Hop Options header (unfragmentable) before the Fragment header."""
    piece = DATAGRAM[start:stop]
    hop_by_hop = bytes((44, 0, 1, 4, 0, 0, 0, 0))  # next: Fragment; PadN
    fragment = struct.pack("!BBHI", 17, 0, start | more, ident)
    fixed = struct.pack("!IHBB16s16s", 6 << 28, 16 + len(piece), 0, 64, SRC6, DST6)
    return packet(fixed + hop_by_hop + fragment + piece, ts, 0x86DD)


def feed(defrag: Defragmenter, packets: list[Packet]) -> list[Packet | None]:
    return [defrag.feed(p) for p in packets]


def assert_whole(pkt: Packet | None) -> None:
    assert pkt is not None and pkt.error is None and not (pkt.fragment or pkt.partial)
    assert isinstance(pkt.transport, UdpHeader) and pkt.payload == PAYLOAD


def test_in_order_and_headers_rewritten() -> None:
    got = feed(Defragmenter(), [v4(0, 400, True), v4(400, 800, True), v4(800, 1032, False)])
    assert got[:2] == [None, None]
    whole = got[2]
    assert_whole(whole)
    assert whole is not None and isinstance(whole.ip, IPv4Header)
    assert whole.ip.total_len == 20 + len(DATAGRAM) and whole.ip.flags_frag == 0
    assert verify(whole.raw.data[14:34]) == 0  # the header checksum is made again
    assert whole.raw.wire_len == len(whole.raw.data) == 14 + 20 + len(DATAGRAM)


def test_out_of_order_completes_on_the_last_one_to_arrive() -> None:
    got = feed(Defragmenter(), [v4(800, 1032, False), v4(0, 400, True), v4(400, 800, True)])
    assert got[:2] == [None, None]
    assert_whole(got[2])


def test_duplicates_are_ignored() -> None:
    defrag = Defragmenter()
    got = feed(defrag, [v4(0, 400, True), v4(0, 400, True), v4(400, 800, True),
                        v4(200, 600, True),  # inside bytes held already: a duplicate too
                        v4(800, 1032, False)])
    assert got[:4] == [None] * 4
    assert_whole(got[4])


def test_an_overlap_drops_the_datagram() -> None:
    """RFC 5722 and Linux: a partial overlap is no duplicate; nothing is delivered."""
    got = feed(Defragmenter(), [v4(0, 400, True), v4(392, 800, True), v4(400, 800, True),
                                v4(800, 1032, False)])
    assert got == [None] * 4


def test_a_missing_last_fragment_times_out() -> None:
    defrag = Defragmenter(timeout=30.0)
    assert feed(defrag, [v4(0, 400, True, ts=0), v4(400, 800, True, ts=1)]) == [None, None]
    # 31 s later the first two were given up: the last alone completes nothing.
    assert defrag.feed(v4(800, 1032, False, ts=31)) is None
    assert defrag.feed(v4(0, 400, True, ts=32)) is None
    assert_whole(defrag.feed(v4(400, 800, True, ts=33)))


def test_inconsistent_ends_drop_the_datagram() -> None:
    assert feed(Defragmenter(), [v4(0, 400, True), v4(800, 1032, False),
                                 v4(800, 1024, False), v4(400, 800, True)]) == [None] * 4
    # Bytes past the end the last fragment set.
    assert feed(Defragmenter(), [v4(400, 800, False), v4(800, 1032, True),
                                 v4(0, 400, True)]) == [None] * 3


def test_ipv6_fragment_header_taken_out() -> None:
    got = feed(Defragmenter(), [v6(512, 1032, False), v6(0, 512, True)])
    assert got[0] is None
    whole = got[1]
    assert_whole(whole)
    assert whole is not None and isinstance(whole.ip, IPv6Header)
    assert whole.ip.payload_len == 8 + len(DATAGRAM)  # Hop-by-Hop kept, Fragment gone
    assert whole.raw.data[14 + 40] == 17  # Hop-by-Hop now names UDP


def test_ipv6_non_last_fragment_not_a_multiple_of_8_is_dropped() -> None:
    defrag = Defragmenter()
    odd = v6(0, 500, True)
    assert defrag.feed(odd) is odd  # not held: passed on as decoded
    assert feed(defrag, [v6(500, 1032, False)]) == [None]


def test_tcp_header_split_across_fragments() -> None:
    """A first fragment too short for the TCP header (8 bytes: the ports and seq)."""
    segment = struct.pack("!HHIIBBHHH", 80, 5000, 1, 0, 5 << 4, 0x18, 512, 0, 0) + b"hi!\n"
    first, last = (v4(0, 8, True, data=segment, proto=6),
                   v4(8, len(segment), False, data=segment, proto=6))
    assert first.error is not None  # decoding alone cannot read the TCP header
    defrag = Defragmenter()
    assert defrag.feed(first) is None
    whole = defrag.feed(last)
    assert whole is not None and isinstance(whole.transport, TcpHeader)
    assert whole.transport.seq == 1 and whole.payload == b"hi!\n"


def test_not_fragments_and_cut_fragments_pass_through() -> None:
    defrag = Defragmenter()
    plain = v4(0, 1032, False)
    cut = v4(0, 400, True, cut=10)  # the capture's snap length cut it
    assert defrag.feed(plain) is plain and defrag.feed(cut) is cut
    assert_whole(plain)


def test_memory_is_bounded() -> None:
    defrag = Defragmenter(max_pending=2)
    for ident in (1, 2, 3):  # the third datagram pushes out the first
        assert defrag.feed(v4(0, 400, True, ident=ident)) is None
    assert [defrag.feed(v4(400, 1032, False, ident=ident)) is None
            for ident in (3, 2, 1)] == [False, False, True]
    defrag = Defragmenter(max_bytes=1000)
    assert feed(defrag, [v4(0, 400, True, ident=1), v4(0, 400, True, ident=2),
                         v4(0, 400, True, ident=3)]) == [None] * 3
    assert_whole(defrag.feed(v4(400, 1032, False, ident=3)))
    assert defrag.feed(v4(400, 1032, False, ident=1)) is None  # given up for the bytes
