"""State walks of the TCP tracker on hand-made segments (no bytes: records in)."""

from __future__ import annotations

from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.tcp import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, TcpHeader
from capdissect.tracking.states import TRANSITIONS, Seen, TcpState, figure_edges
from capdissect.tracking.tcp import TcpConnection, TcpTracker

A = (bytes([127, 0, 0, 1]), 40000)  # the client in most walks
B = (bytes([127, 0, 0, 1]), 30002)  # the server


class Wire:
    """Feeds segments to a tracker; seq/ack are absolute, as on the wire."""

    def __init__(self) -> None:
        self.tracker = TcpTracker()
        self.frame = 0

    def send(self, src: tuple[bytes, int], dst: tuple[bytes, int], flags: int, seq: int,
             ack: int = 0, length: int = 0) -> list[str]:
        self.frame += 1
        ip = IPv4Header(0, 4, 20, 0, 40 + length, 0, 0, 64, 6, 0, src[0], dst[0])
        seg = TcpHeader(20, src[1], dst[1], seq, ack, 20, flags, 65535, 0, 0, NO_OPTIONS)
        self.update = self.tracker.feed(self.frame, float(self.frame), ip, seg, length)
        return list(self.update.notes)

    def done(self) -> TcpConnection:
        (conn,) = self.tracker.close()
        return conn


def paths(conn: TcpConnection) -> tuple[list[str], list[str]]:
    return [s.value for s in conn.client.path], [s.value for s in conn.server.path]


def lesson(w: Wire, server_closes_first: bool = False) -> None:
    w.send(A, B, SYN, 100)
    w.send(B, A, SYN | ACK, 500, 101)
    w.send(A, B, ACK, 101, 501)
    w.send(A, B, PSH | ACK, 101, 501, 11)
    w.send(B, A, ACK, 501, 112)
    first, second = (B, A) if server_closes_first else (A, B)
    seqs = {A: 112, B: 501}
    w.send(first, second, FIN | ACK, seqs[first], seqs[second])
    w.send(second, first, ACK, seqs[second], seqs[first] + 1)  # the ACK of the FIN, alone
    w.send(second, first, FIN | ACK, seqs[second], seqs[first] + 1)
    w.send(first, second, ACK, seqs[first] + 1, seqs[second] + 1)


def test_three_way_handshake_client_closes_first() -> None:
    w = Wire()
    lesson(w)
    conn = w.done()
    assert (conn.open, conn.close, conn.closer) == ("three-way", "normal", "client")
    assert paths(conn) == (
        ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"],
        ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"],
    )
    assert (conn.conn_state, conn.completeness) == ("SF", 31)
    assert conn.history == "ShADaFf"
    assert (conn.client.payload, conn.server.payload) == (11, 0)
    assert not conn.anomalies


def test_server_closes_first() -> None:
    w = Wire()
    lesson(w, server_closes_first=True)
    conn = w.done()
    assert (conn.close, conn.closer) == ("normal", "server")
    assert paths(conn)[1][-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert paths(conn)[0][-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def test_fin_and_ack_together_go_straight_to_time_wait() -> None:
    w = Wire()
    w.send(A, B, SYN, 1)
    w.send(B, A, SYN | ACK, 9, 2)
    w.send(A, B, ACK, 2, 10)
    w.send(A, B, FIN | ACK, 2, 10)
    w.send(B, A, FIN | ACK, 10, 3)  # acks the FIN and brings its own
    w.send(A, B, ACK, 3, 11)
    client, server = paths(w.done())
    assert client == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT"]
    assert server[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def test_half_close() -> None:
    w = Wire()
    w.send(A, B, SYN, 1)
    w.send(B, A, SYN | ACK, 9, 2)
    w.send(A, B, ACK, 2, 10)
    w.send(A, B, FIN | ACK, 2, 10)  # shutdown(SHUT_WR)
    w.send(B, A, PSH | ACK, 10, 3, 100)  # the server still answers
    w.send(A, B, ACK, 3, 110)
    w.send(B, A, FIN | ACK, 110, 3)
    w.send(A, B, ACK, 3, 111)
    conn = w.done()
    assert (conn.close, conn.closer) == ("half-close", "client")
    assert conn.server.payload == 100


def test_simultaneous_close() -> None:
    w = Wire()
    w.send(A, B, SYN, 1)
    w.send(B, A, SYN | ACK, 9, 2)
    w.send(A, B, ACK, 2, 10)
    w.send(A, B, FIN | ACK, 2, 10)
    notes = w.send(B, A, FIN | ACK, 10, 2)  # does not ack A's FIN: the FINs crossed
    assert any("crossed" in n for n in notes)
    w.send(A, B, ACK, 3, 11)
    w.send(B, A, ACK, 11, 3)
    conn = w.done()
    assert (conn.close, conn.closer) == ("simultaneous", "both")
    for path in paths(conn):
        assert path[-4:] == ["ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]


def test_a_fin_sent_three_times_on_loopback_arrives_as_the_last_copy() -> None:
    # Each copy sent again says the one before was lost (it would have been acknowledged
    # before the retransmission timeout): the server gets the FIN with the third copy.
    w = Wire()
    w.send(A, B, SYN, 100)
    w.send(B, A, SYN | ACK, 500, 101)
    w.send(A, B, ACK, 101, 501)
    for _ in range(3):
        w.send(A, B, FIN | ACK, 101, 501)  # frames 4, 5 and 6
    w.send(B, A, ACK, 501, 102)
    conn = w.done()
    server = [(e.frame, e.states[1]) for e in conn.events]
    assert server[3:] == [(4, TcpState.ESTABLISHED), (5, TcpState.ESTABLISHED),
                          (6, TcpState.CLOSE_WAIT), (7, TcpState.CLOSE_WAIT)]


class Streamed(Wire):
    """A Wire that keeps each segment's states as first reported (what streaming
    ``read -n`` prints under it), by the port of each side, and the corrections."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[int, dict[int, TcpState | None]] = {}
        self.corrected: list[str] = []

    def send(self, src: tuple[bytes, int], dst: tuple[bytes, int], flags: int, seq: int,
             ack: int = 0, length: int = 0) -> list[str]:
        notes = super().send(src, dst, flags, seq, ack, length)
        conn = self.update.connection
        client, server = self.update.event.states
        self.first[self.frame] = {conn.client.port: client, conn.server.port: server}
        self.corrected += self.update.corrections
        return notes


def test_a_receiver_that_sends_its_own_fin_again_has_not_got_the_first_copy() -> None:
    # The simultaneous-close lesson: both first FINs lost, the copies sent again cross.
    # B's FIN sent again (frame 6) does not acknowledge A's FIN of frame 4, a
    # retransmission timeout after it: that copy was lost, so B is still FIN_WAIT_1 when
    # frame 6 is printed, not CLOSING "just after" it; A's copy (frame 7) reaches it.
    w = Streamed()
    w.send(A, B, SYN, 100)
    w.send(B, A, SYN | ACK, 500, 101)
    w.send(A, B, ACK, 101, 501)
    w.send(A, B, FIN | ACK, 101, 501)  # 4: lost
    w.send(B, A, FIN | ACK, 501, 101)  # 5: lost, crossing 4
    w.send(B, A, FIN | ACK, 501, 101)  # 6: sent again, still without A's FIN
    assert w.first[6][B[1]] is TcpState.FIN_WAIT_1
    assert w.first[6][A[1]] is TcpState.CLOSING  # takes 6 as it is sent, until 7
    w.send(A, B, FIN | ACK, 101, 501)  # 7: sent again, crossing 6
    assert w.first[7] == {A[1]: TcpState.CLOSING, B[1]: TcpState.CLOSING}
    w.send(A, B, ACK, 102, 502)
    w.send(B, A, ACK, 502, 102)
    assert not [c for c in w.corrected if "frame 6: the server" in c]
    conn = w.done()
    states = [(e.frame, e.states) for e in conn.events]
    assert states[4:] == [(5, (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_1)),
                          (6, (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_1)),
                          (7, (TcpState.CLOSING, TcpState.CLOSING)),
                          (8, (TcpState.CLOSING, TcpState.TIME_WAIT)),
                          (9, (TcpState.TIME_WAIT, TcpState.TIME_WAIT))]


def test_a_receiver_that_sends_its_own_syn_again_has_not_got_the_first_copy() -> None:
    # The simultaneous-open lesson: both first SYNs lost, the copies sent again cross.
    hi = (bytes([127, 0, 0, 1]), 50000)
    lo = (bytes([127, 0, 0, 1]), 40000)
    w = Streamed()
    w.send(hi, lo, SYN, 1)  # 1: lost
    w.send(lo, hi, SYN, 7)  # 2: lost, crossing 1
    w.send(lo, hi, SYN, 7)  # 3: sent again, without hi's SYN a timeout after it
    assert w.first[3][lo[1]] is TcpState.SYN_SENT
    w.send(hi, lo, SYN, 1)  # 4: sent again, crossing 3
    assert w.first[4] == {lo[1]: TcpState.SYN_RECEIVED, hi[1]: TcpState.SYN_RECEIVED}
    w.send(hi, lo, SYN | ACK, 1, 8)
    w.send(lo, hi, SYN | ACK, 7, 2)
    assert not [c for c in w.corrected if "frame 3: the client" in c]
    conn = w.done()
    assert conn.open == "simultaneous"
    assert [e.states for e in conn.events][2:4] == [
        (TcpState.SYN_SENT, TcpState.SYN_SENT),
        (TcpState.SYN_RECEIVED, TcpState.SYN_RECEIVED)]


def test_simultaneous_open_roles_by_lower_endpoint() -> None:
    hi = (bytes([127, 0, 0, 1]), 50000)
    lo = (bytes([127, 0, 0, 1]), 40000)
    w = Wire()
    w.send(hi, lo, SYN, 1)
    notes = w.send(lo, hi, SYN, 7)  # a bare SYN back: the SYNs crossed
    assert any("simultaneous open" in n for n in notes)
    w.send(hi, lo, SYN | ACK, 1, 8)
    w.send(lo, hi, SYN | ACK, 7, 2)
    conn = w.done()
    assert conn.open == "simultaneous"
    assert conn.client.port == 40000  # SPEC §4: the lower (address, port)
    for path in paths(conn):
        assert path == ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"]


def test_refused_and_reset() -> None:
    w = Wire()
    w.send(A, B, SYN, 1)
    w.send(B, A, RST | ACK, 0, 2)
    conn = w.done()
    # SPEC §4: nothing listened, so there was no server socket to close.
    assert (conn.open, conn.close, conn.closer, conn.conn_state) == (
        "refused", "none", None, "REJ")
    assert paths(conn) == (["SYN_SENT", "CLOSED"], [])

    w = Wire()
    w.send(A, B, SYN, 1)
    w.send(B, A, SYN | ACK, 9, 2)
    w.send(A, B, ACK, 2, 10)
    w.send(A, B, RST | ACK, 2, 10)  # SO_LINGER 0
    conn = w.done()
    assert (conn.close, conn.closer, conn.conn_state) == ("reset", "client", "RSTO")
    assert conn.client.state is TcpState.CLOSED and conn.server.state is TcpState.CLOSED


def test_mid_stream_start_and_port_reuse() -> None:
    w = Wire()
    w.send(A, B, PSH | ACK, 1000, 2000, 10)
    w.send(B, A, ACK, 2000, 1010)
    lesson(w)  # a new SYN after the first connection: a new record
    first, second = w.tracker.close()
    assert (first.open, first.conn_state) == ("none", "OTH")
    assert paths(first) == (["ESTABLISHED"], ["ESTABLISHED"])
    assert second.open == "three-way" and second.id == first.id + 1


def test_time_wait_reuse_starts_a_new_connection() -> None:
    w = Wire()
    lesson(w)
    notes = w.send(A, B, SYN, 7777)
    assert any("reuses the ports" in n for n in notes)
    assert len(w.tracker.close()) == 2


def test_the_figure_comes_from_the_table() -> None:
    edges = {(e.before.value, e.after.value) for e in figure_edges()}
    assert ("FIN_WAIT_1", "CLOSING") in edges and ("CLOSING", "TIME_WAIT") in edges
    assert TRANSITIONS[(TcpState.SYN_SENT, Seen.RECV_SYN)] is TcpState.SYN_RECEIVED


def _syns(tracker: TcpTracker, count: int, answered: bool, first_port: int = 20000) -> None:
    for i in range(count):
        client = (bytes([10, 0, 0, 1]), first_port + i)
        w = Wire()
        w.tracker, w.frame = tracker, 2 * i
        w.send(client, B, SYN, 1000)
        if answered:
            w.send(B, client, SYN | ACK, 5000, 1001)


def test_unanswered_syns_have_a_cap_of_their_own() -> None:
    """A SYN flood holds at most max_half_open bare SYNs (the oldest retired early and
    counted as evicted); a SYN that was answered counts only against max_open."""
    flood = TcpTracker(max_open=10, max_half_open=3)
    _syns(flood, 5, answered=False)
    assert flood.table.evicted == 2
    assert [c.client.port for c in flood.table.drain()] == [20000, 20001]
    answered = TcpTracker(max_open=10, max_half_open=3)
    _syns(answered, 10, answered=True)
    assert answered.table.evicted == 0
    _syns(answered, 1, answered=False, first_port=30000)  # the eleventh: max_open retires one
    assert answered.table.evicted == 1

