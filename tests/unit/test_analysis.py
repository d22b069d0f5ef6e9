"""Wireshark's TCP analysis rules on hand-made segments (records in, findings out).

Each test builds the smallest exchange that meets one rule and checks the exact findings
of the segment that meets it (name and the numbers in ``why``), and the segments around
it that must not.  tests/conformance/test_analysis_vs_tshark.py checks the same rules
against tshark.  Sequence numbers are absolute (client ISN 100, server ISN 500 unless
said), times in ms.
"""

from __future__ import annotations

from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.tcp import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, TcpHeader
from capdissect.dissect.tcp_options import WSCALE, Options, TcpOption
from capdissect.tracking.analysis import (
    FAST_RETRANSMISSION,
    OUT_OF_ORDER,
    RETRANSMISSION,
    SPURIOUS_RETRANSMISSION,
    Finding,
    gt_seq,
    le_seq,
    lt_seq,
)
from capdissect.tracking.tcp import TcpConnection, TcpTracker

A = (bytes([127, 0, 0, 1]), 40000)  # the client
B = (bytes([127, 0, 0, 1]), 30002)  # the server
DATA = PSH | ACK


class Wire:
    """Feeds segments to a tracker and returns each segment's findings."""

    def __init__(self) -> None:
        self.tracker = TcpTracker()
        self.frame = 0
        self.ms = 0.0

    def send(self, src: tuple[bytes, int], dst: tuple[bytes, int], flags: int, seq: int,
             ack: int = 0, length: int = 0, *, window: int = 1000, at: float | None = None,
             wscale: int | None = None) -> list[Finding]:
        self.frame += 1
        self.ms = self.ms + 100 if at is None else at
        options = NO_OPTIONS if wscale is None else Options(
            (TcpOption(WSCALE, 3, bytes([wscale]), 1),), None)
        ip = IPv4Header(0, 4, 20, 0, 40 + length, 0, 0, 64, 6, 0, src[0], dst[0])
        seg = TcpHeader(20, src[1], dst[1], seq, ack, 20, flags, window, 0, 0, options)
        return list(self.tracker.feed(self.frame, self.ms / 1000, ip, seg, length)
                    .event.analysis)

    def handshake(self, client_ws: int | None = None, server_ws: int | None = None,
                  server_window: int = 1000) -> None:
        """At 0, 0.5 and 1 ms: the handshake RTT (out-of-order threshold) is 1 ms."""
        assert self.send(A, B, SYN, 100, at=0, wscale=client_ws) == []
        assert self.send(B, A, SYN | ACK, 500, 101, at=0.5, window=server_window,
                         wscale=server_ws) == []
        assert self.send(A, B, ACK, 101, 501, at=1) == []

    def done(self) -> TcpConnection:
        (conn,) = self.tracker.close()
        return conn


def names(findings: list[Finding]) -> list[str]:
    return [f.name for f in findings]


# ----- sequence space ---------------------------------------------------------------------
def test_sequence_comparisons_wrap_like_packet_tcp_c() -> None:
    assert gt_seq(5, 0xFFFFFFF0) and lt_seq(0xFFFFFFF0, 5)
    assert not gt_seq(5, 5) and le_seq(5, 5) and le_seq(4, 5) and not le_seq(6, 5)


def test_a_clean_lesson_has_no_findings() -> None:
    w = Wire()
    w.handshake()
    assert w.send(A, B, DATA, 101, 501, 11) == []
    assert w.send(B, A, DATA, 501, 112, 11) == []
    assert w.send(A, B, ACK, 112, 512) == []
    assert w.send(A, B, FIN | ACK, 112, 512) == []
    assert w.send(B, A, FIN | ACK, 512, 113) == []
    assert w.send(A, B, ACK, 113, 513) == []
    assert w.done().analysis_counts == {}


# ----- retransmission and its kinds ---------------------------------------------------
def test_retransmission() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 11, at=1000)
    assert w.send(A, B, DATA, 101, 501, 11, at=1300) == [
        Finding(RETRANSMISSION, "seq 1:12 below next expected 12 (reached in frame 4)")]
    assert w.done().analysis_counts == {RETRANSMISSION: 1}


def test_retransmitted_syn_is_a_retransmission_not_reused_ports() -> None:
    w = Wire()
    w.send(A, B, SYN, 100, at=0)
    assert names(w.send(A, B, SYN, 100, at=1000)) == [RETRANSMISSION]


def test_out_of_order_within_3_ms_when_the_rtt_is_unknown() -> None:
    w = Wire()  # mid-stream: no handshake, so no RTT
    w.send(A, B, DATA, 1101, 501, 100, at=1000)
    w.send(A, B, DATA, 1201, 501, 100, at=1000.1)
    assert w.send(A, B, DATA, 1101, 501, 100, at=1002) == [Finding(
        OUT_OF_ORDER, "seq 1:101 below next expected 201, 1.900 ms after frame 2 "
                      "(under the default 3.000 ms)")]
    assert names(w.send(A, B, DATA, 1101, 501, 100, at=1010)) == [RETRANSMISSION]


def test_out_of_order_threshold_is_the_handshake_rtt() -> None:
    w = Wire()
    w.send(A, B, SYN, 100, at=0)
    w.send(B, A, SYN | ACK, 500, 101, at=10)
    w.send(A, B, ACK, 101, 501, at=20)  # the first pure ACK: RTT 20 ms
    w.send(A, B, DATA, 201, 501, 100, at=100)  # 101:201 comes later
    assert names(w.send(A, B, DATA, 101, 501, 100, at=110)) == [OUT_OF_ORDER]
    w.send(A, B, DATA, 301, 501, 100, at=200)
    assert names(w.send(A, B, DATA, 101, 501, 100, at=225)) == [RETRANSMISSION]


def test_out_of_order_not_when_it_ends_at_the_next_expected_number() -> None:
    w = Wire()
    w.send(A, B, DATA, 1101, 501, 100, at=1000)
    assert names(w.send(A, B, DATA, 1101, 501, 100, at=1001)) == [RETRANSMISSION]


def holes_and_dup_acks(w: Wire) -> None:
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100, at=1000)
    assert names(w.send(A, B, DATA, 301, 501, 100, at=1000.1)) == ["lost_segment"]
    assert w.send(B, A, ACK, 501, 201, at=1001) == []
    assert w.send(B, A, ACK, 501, 201, at=1002) == [
        Finding("duplicate_ack", "dup ack #1 of frame 6")]
    assert w.send(B, A, ACK, 501, 201, at=1003) == [
        Finding("duplicate_ack", "dup ack #2 of frame 6")]


def test_fast_retransmission_after_two_dup_acks_within_20_ms() -> None:
    w = Wire()
    holes_and_dup_acks(w)
    assert w.send(A, B, DATA, 201, 501, 100, at=1010) == [Finding(
        FAST_RETRANSMISSION, "seq 101:201 asked for by 2 dup acks, 7.0 ms after the last")]


def test_no_fast_retransmission_20_ms_after_the_last_dup_ack() -> None:
    w = Wire()
    holes_and_dup_acks(w)
    assert names(w.send(A, B, DATA, 201, 501, 100, at=1023)) == [RETRANSMISSION]


def test_spurious_retransmission_of_acknowledged_data() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    w.send(B, A, ACK, 501, 201)
    assert w.send(A, B, DATA, 101, 501, 100) == [Finding(
        SPURIOUS_RETRANSMISSION, "seq 1:101 already acked by 127.0.0.1.30002 (ack 101)")]


def test_new_data_one_byte_below_next_expected_is_no_retransmission() -> None:
    # packet-tcp.c: after a 1-byte probe at next-1, real data from there is new data.
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    assert w.send(A, B, DATA, 200, 501, 50) == []


def test_one_retransmission_kind_per_segment() -> None:
    w = Wire()
    holes_and_dup_acks(w)
    kinds = {RETRANSMISSION, FAST_RETRANSMISSION, SPURIOUS_RETRANSMISSION, OUT_OF_ORDER}
    for at in (1004, 1005, 1030, 1031):
        found = names(w.send(A, B, DATA, 201, 501, 100, at=at))
        assert len(kinds.intersection(found)) == 1, found


# ----- lost and unseen segments -----------------------------------------------------
def test_lost_segment() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    assert w.send(A, B, DATA, 301, 501, 100) == [
        Finding("lost_segment", "seq 201 beyond next expected 101: 100 bytes not captured")]
    assert w.send(A, B, RST, 901) == []  # a RST beyond is not a lost segment


def test_ack_lost_segment_once_per_hole() -> None:
    w = Wire()
    w.handshake()
    w.send(B, A, DATA, 501, 101, 50)
    assert w.send(A, B, ACK, 101, 601) == [Finding(
        "ack_lost_segment", "ack 101 beyond seq 51, the end of what was seen from "
                            "127.0.0.1.30002")]
    assert "ack_lost_segment" not in names(w.send(A, B, ACK, 101, 611))
    # The server sends past a hole: the bound moves, and the next ACK beyond is reported.
    w.send(B, A, DATA, 651, 101, 10)
    assert "ack_lost_segment" in names(w.send(A, B, ACK, 101, 701))


def test_duplicate_ack_needs_same_window_and_no_data() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    w.send(B, A, ACK, 501, 201)
    assert names(w.send(B, A, ACK, 501, 201, window=900)) == ["window_update"]
    assert names(w.send(B, A, ACK, 501, 201, window=900)) == ["duplicate_ack"]
    assert w.send(B, A, ACK, 501, 201, window=900)[0].why == "dup ack #2 of frame 5"
    assert w.send(B, A, DATA, 501, 201, 10, window=900) == []  # data: no duplicate


# ----- windows ----------------------------------------------------------------------
def test_zero_window() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    assert w.send(B, A, ACK, 501, 201, window=0) == [
        Finding("zero_window", "window 0 from 127.0.0.1.30002")]
    assert w.send(B, A, FIN | ACK, 501, 201, window=0) == []  # not on SYN, FIN or RST


def test_zero_window_probe_and_its_ack() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    w.send(B, A, ACK, 501, 201, window=0)
    assert w.send(A, B, ACK, 201, 501, 1) == [Finding(
        "zero_window_probe", "1 byte at seq 101 while 127.0.0.1.30002 advertises window 0")]
    # Its ACK repeats the zero window: no duplicate ACK.
    assert names(w.send(B, A, ACK, 501, 201, window=0)) == ["zero_window", "zero_window_probe_ack"]
    # The probe did not move the next expected number: the data from there is new.
    assert names(w.send(A, B, ACK, 201, 501, 1)) == ["zero_window_probe"]
    assert names(w.send(B, A, ACK, 501, 201, window=500)) == ["window_update"]
    assert w.send(A, B, DATA, 201, 501, 100) == []


def test_window_update() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    w.send(B, A, ACK, 501, 201, window=100)
    assert w.send(B, A, ACK, 501, 201, window=400) == [Finding(
        "window_update", "window 400 (was 100) from 127.0.0.1.30002, seq and ack unchanged")]


def test_window_full_scaled_after_the_first_ack() -> None:
    w = Wire()
    w.handshake(client_ws=7, server_ws=7, server_window=100)
    # The server's last segment is its SYN-ACK: its window (100) is not scaled yet.
    assert w.send(A, B, DATA, 101, 501, 100) == [Finding(
        "window_full", "seq 1:101 fills the window 127.0.0.1.30002 offered (ack 1 + 100)")]
    w.send(B, A, ACK, 501, 201, window=2)  # now 2 << 7 = 256
    assert w.send(A, B, DATA, 201, 501, 255) == []
    assert names(w.send(A, B, DATA, 456, 501, 1)) == ["window_full"]


def test_window_full_needs_known_scaling() -> None:
    w = Wire()  # no SYN seen: the shift is unknown, so the edge is unknown
    w.send(A, B, DATA, 1101, 501, 100, window=100)
    w.send(B, A, ACK, 501, 1201, window=100)
    assert w.send(A, B, DATA, 1201, 501, 100) == []


def test_window_full_unscaled_when_a_syn_lacks_the_option() -> None:
    w = Wire()
    w.handshake(client_ws=None, server_ws=7, server_window=100)
    w.send(B, A, ACK, 501, 101, window=100)  # not scaled: the client's SYN had no wscale
    assert names(w.send(A, B, DATA, 101, 501, 100)) == ["window_full"]


# ----- keep-alive and reused ports --------------------------------------------------
def test_keep_alive_comes_before_retransmission() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 100)
    w.send(B, A, ACK, 501, 201)
    assert w.send(A, B, ACK, 200, 501) == [
        Finding("keep_alive", "seq 100 is one below next expected 101, with no data")]
    # The keep-alive's ACK is no duplicate: Wireshark flags it as the keep-alive's ACK.
    assert names(w.send(B, A, ACK, 501, 201)) == ["keep_alive_ack"]
    # A 1-byte keep-alive repeats an acknowledged byte: still a keep-alive only.
    assert names(w.send(A, B, ACK, 200, 501, 1)) == ["keep_alive"]


def test_reused_ports_on_a_syn_with_a_new_isn() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, FIN | ACK, 101, 501)
    w.send(B, A, FIN | ACK, 501, 102)
    w.send(A, B, ACK, 102, 502)
    assert w.send(A, B, SYN, 7000) == [Finding(
        "reused_ports", "SYN seq 7000 from 127.0.0.1.40000 opens a new connection on the "
                        "ports of an earlier one")]
    assert w.send(B, A, SYN | ACK, 8000, 7001) == []
    first, second = w.tracker.close()
    assert (first.analysis_counts, second.analysis_counts) == ({}, {"reused_ports": 1})


def test_reused_ports_on_a_syn_ack_with_a_new_number() -> None:
    w = Wire()
    w.handshake()
    found = w.send(B, A, SYN | ACK, 900, 101)
    assert found[0] == Finding("reused_ports", "SYN-ACK seq 900 from 127.0.0.1.30002 "
                                               "differs from the 500 it started with")
    assert names(found) == ["reused_ports", "lost_segment"]  # 900 is beyond 501, as tshark


# ----- where the state lives --------------------------------------------------------
def test_state_lives_on_the_connection_and_goes_with_it() -> None:
    w = Wire()
    w.handshake()
    w.send(A, B, DATA, 101, 501, 10)
    # The analyzer itself keeps nothing (compiled by mypyc it has no __dict__ at all).
    assert getattr(w.tracker.analyzer, "__dict__", {}) == {}
    assert not getattr(type(w.tracker.analyzer), "__slots__", ())
    conn = w.done()
    assert len(conn.analysis_state.flows) == 2
    assert w.tracker.close() == []  # the tracker forgot it: nothing else holds the state

