"""Follow TCP connections and infer each endpoint's RFC 9293 state from the wire.

The observer sits at the capture point.  A segment changes its sender's state when it
is sent and its receiver's state when it arrives, which on loopback is at once.  Two
cases show the receiver had *not* processed a segment when it sent its own: the
segments crossed (simultaneous open, simultaneous close).  The ack field tells: a FIN
whose ack does not cover the peer's FIN was sent before that FIN arrived.  Such
crossings are recognised when the second segment is seen, and the first segment's
receive is replayed after the crossing send, so the paths read as RFC 9293 Figure 5.

Pure: records in, records out.  Memory holds the connections open at once: a finished
connection is handed out (``drain``) once it has been quiet for ``linger`` seconds of
capture time, or when a new SYN reuses its ports.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import IPv6Header
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, TcpHeader
from capdissect.track.analysis import ConnectionAnalysis, Finding, TcpAnalyzer
from capdissect.track.states import FINISHED, Seen, TcpState, next_state
from capdissect.track.table import FlowTable

S = TcpState
MOD: Final = 1 << 32

CLIENT: Final = "client"
SERVER: Final = "server"

# Wireshark's tcp.completeness bits (packet-tcp.c TCP_COMPLETENESS_*).
SYN_BIT, SYNACK_BIT, ACK_BIT, DATA_BIT, FIN_BIT, RST_BIT = 1, 2, 4, 8, 16, 32


def seq_le(a: int, b: int) -> bool:
    """a <= b in 32-bit sequence space (RFC 9293 §3.4)."""
    return (b - a) % MOD < (1 << 31)


class StateChange(NamedTuple):
    role: str
    before: TcpState | None
    after: TcpState


class Event(NamedTuple):
    """One segment as the timeline shows it."""

    frame: int
    ts: float
    sender: str  # CLIENT or SERVER
    flags: str  # tcpdump's letters, e.g. "S.", "P.", "F."
    seq: int | None  # relative to the sender's ISN (None for a SYN's absolute start)
    ack: int | None
    length: int
    phase: str  # handshake | data | teardown | reset
    label: str
    states: tuple[TcpState | None, TcpState | None]  # (client, server) after the segment
    changes: tuple[StateChange, ...]
    analysis: tuple[Finding, ...]


@dataclass(slots=True)
class Endpoint:
    addr: bytes
    port: int
    state: TcpState | None = None  # None until the wire reveals it
    path: list[TcpState] = field(default_factory=list)
    isn: int | None = None  # sequence number of its SYN
    base: int | None = None  # the sequence number relative numbers count from
    fin_seq: int | None = None  # sequence number its FIN occupies
    high: int = 0  # highest relative sequence number sent (snd.nxt), data and FIN
    data_high: int = 0  # highest relative data byte end: payload in sequence space
    sent_syn: bool = False
    sent_synack: bool = False
    sent_fin: bool = False
    sent_rst: bool = False
    sent_data_after_peer_fin: bool = False
    fin_acked: bool = False  # the peer has acknowledged its FIN
    history: str = ""

    def enter(self, state: TcpState) -> None:
        self.state = state
        if not self.path or self.path[-1] is not state:
            self.path.append(state)

    def rel(self, seq: int) -> int:
        return (seq - (self.base or 0)) % MOD

    @property
    def payload(self) -> int:
        """Bytes of data sent, counted in sequence space (retransmissions count once)."""
        return max(self.data_high - 1, 0)


@dataclass(slots=True)
class TcpConnection:
    id: int
    client: Endpoint
    server: Endpoint
    first_ts: float
    last_ts: float = 0.0
    packets: int = 0
    crossed_syns: bool = False
    crossed_fins: bool = False
    refused: bool = False
    reset_by: str | None = None
    first_fin_by: str | None = None
    completeness: int = 0
    anomalies: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    analysis_counts: dict[str, int] = field(default_factory=dict)
    # What Wireshark's analysis remembers (track/analysis.py); it goes with the record.
    analysis_state: ConnectionAnalysis = field(default_factory=ConnectionAnalysis, repr=False)
    reused_ports: bool = False  # its first SYN reused the ports of an open earlier record
    # Zeek's history: each letter the first time it happens in a direction, in order.
    history_letters: list[str] = field(default_factory=list)

    def endpoint(self, role: str) -> Endpoint:
        return self.client if role == CLIENT else self.server

    @property
    def finished(self) -> bool:
        return self.client.state in FINISHED and self.server.state in FINISHED

    @property
    def open(self) -> str:
        if self.refused:
            return "refused"
        if self.crossed_syns:
            return "simultaneous"
        if not self.client.sent_syn:
            return "none"
        if S.ESTABLISHED in self.client.path and S.ESTABLISHED in self.server.path:
            return "three-way"
        return "partial"

    @property
    def close(self) -> str:
        if self.refused or self.reset_by is not None:
            return "reset"
        if self.crossed_fins:
            return "simultaneous"
        if self.client.sent_data_after_peer_fin or self.server.sent_data_after_peer_fin:
            return "half-close"
        if self.client.sent_fin and self.server.sent_fin:
            return "normal"
        return "none"

    @property
    def closer(self) -> str | None:
        if self.refused or self.reset_by is not None:
            return self.reset_by
        if self.crossed_fins:
            return "both"
        return self.first_fin_by

    @property
    def conn_state(self) -> str:
        """Zeek's conn_state (base/protocols/conn/main.zeek)."""
        c, s = self.client, self.server
        if not c.sent_syn:
            if s.sent_synack and not c.sent_syn:
                if s.sent_rst:
                    return "RSTRH"
                if s.sent_fin:
                    return "SHR"
            return "OTH"
        if not s.sent_synack:
            if s.sent_rst:
                return "REJ"
            if c.sent_rst:
                return "RSTOS0"
            if c.sent_fin:
                return "SH"
            return "S0"
        if c.sent_rst:
            return "RSTO"
        if s.sent_rst:
            return "RSTR"
        if c.sent_fin and s.sent_fin:
            return "SF"
        if c.sent_fin:
            return "S2"
        if s.sent_fin:
            return "S3"
        return "S1"

    @property
    def history(self) -> str:
        return "".join(self.history_letters)


_FLAG_LETTERS: Final = ((FIN, "F"), (SYN, "S"), (RST, "R"), (0x08, "P"), (ACK, "."),
                        (0x20, "U"), (0x40, "E"), (0x80, "W"))


def flag_string(flags: int) -> str:
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"


class Update(NamedTuple):
    """What one segment did: its connection and its event."""

    connection: TcpConnection
    event: Event
    new: bool  # the segment opened a new connection record
    notes: tuple[str, ...]  # plain-language remarks (crossings, anomalies)


Key = tuple[bytes, int, bytes, int]


class TcpTracker:
    """Consumes TCP segments in capture order; keeps the connections open at once.

    *ids* numbers the connections (shared with the UDP tracker, so ids follow the
    capture); *linger* is how long, in capture time, a connection stays after its last
    segment (TIME_WAIT lasts 60 s on Linux); beyond *max_open* connections the oldest
    is retired early and counted in ``evicted``.
    """

    def __init__(self, ids: Iterator[int] | None = None, keep_events: bool = True,
                 linger: float = 120.0, max_open: int = 50_000) -> None:
        self.ids = ids if ids is not None else itertools.count(1)
        self.keep_events = keep_events
        self.analyzer = TcpAnalyzer()
        self.table: FlowTable[Key, TcpConnection] = FlowTable(linger, max_open)


    # ----- feeding --------------------------------------------------------------------
    def feed(self, frame: int, ts: float, ip: IPv4Header | IPv6Header, seg: TcpHeader,
             payload_len: int, whole: bool = True) -> Update:
        """Track one segment.  *whole* is False for the first fragment of a fragmented
        datagram: its flags still count, but the sequence analysis waits for a whole
        segment (Wireshark analyses the reassembled one)."""
        src = (ip.src, seg.src_port)
        dst = (ip.dst, seg.dst_port)
        key: Key = (*src, *dst) if src <= dst else (*dst, *src)
        flags = seg.flags & 0xFF
        conn = self.table.get(key)
        notes: list[str] = []
        new = reused = False
        if conn is not None and self._starts_new(conn, flags, seg, src):
            notes.append("a new connection reuses the ports of an earlier one")
            self.table.retire(key)
            conn = None
            reused = True
        if conn is None:
            conn = self._start(key, src, dst, flags, ts)
            conn.reused_ports = reused
            new = True
        else:
            self.table.touch(key)
        conn.packets += 1
        conn.last_ts = ts
        role = CLIENT if (conn.client.addr, conn.client.port) == src else SERVER
        event = self._segment(conn, role, frame, ts, seg, flags, payload_len, notes, whole)
        if self.keep_events:
            conn.events.append(event)
        self.table.expire(ts)
        return Update(conn, event, new, tuple(notes))

    def _starts_new(self, conn: TcpConnection, flags: int, seg: TcpHeader,
                    src: tuple[bytes, int]) -> bool:
        """A SYN (not a retransmission of this connection's) after the connection ended."""
        if flags & (SYN | ACK) != SYN:
            return False
        sender = conn.client if (conn.client.addr, conn.client.port) == src else conn.server
        if sender.isn is not None:
            return sender.isn != seg.seq  # the same ISN: a retransmitted SYN
        # A first SYN from this side: new unless it belongs to this connection's opening
        # (the crossing SYN of a simultaneous open).
        return (conn.finished or conn.refused or conn.reset_by is not None
                or not (conn.client.sent_syn or conn.server.sent_syn))

    def _start(self, key: Key, src: tuple[bytes, int], dst: tuple[bytes, int], flags: int,
               ts: float) -> TcpConnection:
        # Roles: the client sent the first SYN; a SYN-ACK's receiver is the client; with
        # neither, the first sender (SPEC §4).
        if flags & (SYN | ACK) == SYN | ACK:
            client, server = Endpoint(*dst), Endpoint(*src)
        else:
            client, server = Endpoint(*src), Endpoint(*dst)
        conn = TcpConnection(next(self.ids), client, server, ts)
        if flags & SYN:
            if flags & ACK:  # the capture starts at the SYN-ACK
                client.enter(S.SYN_SENT)
                server.enter(S.SYN_RECEIVED)
            else:
                client.enter(S.CLOSED)
                client.path.clear()
                server.enter(S.LISTEN)
        else:  # mid-stream: the wire shows two synchronized endpoints
            client.enter(S.ESTABLISHED)
            server.enter(S.ESTABLISHED)
        self.table.add(key, conn)
        return conn

    # ----- one segment ----------------------------------------------------------------
    def _segment(self, conn: TcpConnection, role: str, frame: int, ts: float, seg: TcpHeader,
                 flags: int, length: int, notes: list[str], whole: bool) -> Event:
        me = conn.endpoint(role)
        peer = conn.endpoint(SERVER if role == CLIENT else CLIENT)
        before = {id(me): me.state, id(peer): peer.state}
        findings = self.analyzer.segment(conn, me, peer, seg, length, ts, frame) if whole else ()
        for finding in findings:
            conn.analysis_counts[finding.name] = conn.analysis_counts.get(finding.name, 0) + 1
        upper = role == CLIENT
        self._history(conn, me, flags, length, upper)
        self._completeness(conn, flags, length)
        seq, ack = seg.seq, seg.ack
        # Relative numbers count from the ISN, as tcpdump and Wireshark show them; without
        # a SYN, from just before the first number seen.
        if me.base is None or flags & SYN:
            me.base = seq if flags & SYN else (seq - 1) % MOD
        if flags & ACK and peer.base is None:
            peer.base = (ack - 1) % MOD
        if flags & SYN:
            me.isn = seq
        end = (seq + length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) % MOD
        rel_end = me.rel(end)
        if rel_end > me.high and rel_end < (1 << 31):
            me.high = rel_end
        if length:
            data_end = me.rel((seq + length + (1 if flags & SYN else 0)) % MOD)
            if data_end > me.data_high and data_end < (1 << 31):
                me.data_high = data_end
            if peer.sent_fin and not me.sent_fin:
                me.sent_data_after_peer_fin = True
        label, phase = self._transitions(conn, role, me, peer, flags, seq, ack, length, notes)
        role = CLIENT if conn.client is me else SERVER  # a simultaneous open may swap roles
        changes = tuple(
            StateChange(CLIENT if who is conn.client else SERVER, before[id(who)], who.state)
            for who in (conn.client, conn.server)
            if who.state is not None and who.state is not before[id(who)]
        )
        after = (conn.client.state, conn.server.state)
        rel_ack = peer.rel(ack) if flags & ACK else None
        return Event(frame, ts, role, flag_string(flags), me.rel(seq), rel_ack, length, phase,
                     label, after, changes, findings)

    def _transitions(self, conn: TcpConnection, role: str, me: Endpoint, peer: Endpoint,
                     flags: int, seq: int, ack: int, length: int,
                     notes: list[str]) -> tuple[str, str]:
        """Apply the sender's and then the receiver's transitions; return (label, phase)."""
        has_ack = bool(flags & ACK)
        acks_peer_syn = has_ack and peer.isn is not None and seq_le((peer.isn + 1) % MOD, ack)
        # The first ACK covering the peer's FIN is the one that changes its state.
        acks_peer_fin = (has_ack and peer.fin_seq is not None and not peer.fin_acked
                         and seq_le((peer.fin_seq + 1) % MOD, ack))
        if acks_peer_fin:
            peer.fin_acked = True
        if flags & RST:
            return self._reset(conn, role, me, peer, notes)
        if flags & SYN:
            return self._syn(conn, role, me, peer, flags, seq, acks_peer_syn, notes)
        label, phase = ("data", "data") if length else ("ACK", "data")
        # The receiver first takes the ACK of its SYN, then this segment's data or FIN.
        if acks_peer_syn and peer.state is S.SYN_RECEIVED:
            self._step(conn, peer, Seen.RECV_ACK_OF_SYN)
            if not length and not flags & FIN:
                return "ACK", "handshake"
        if flags & FIN:
            fin_seq = (seq + length) % MOD
            if me.fin_seq is not None and me.fin_seq == fin_seq and me.sent_fin:
                return "FIN", "teardown"  # a retransmitted FIN: no new transition
            if me.state is S.CLOSE_WAIT and peer.state is S.FIN_WAIT_1 and not acks_peer_fin:
                # This FIN does not acknowledge the peer's: it was sent before that FIN
                # arrived.  The FINs crossed: replay this side as FIN_WAIT_1 -> CLOSING.
                self._uncross_fin(conn, me)
                notes.append("the FINs crossed: a simultaneous close (both sides go "
                             "FIN_WAIT_1 -> CLOSING -> TIME_WAIT)")
            else:
                self._step(conn, me, Seen.SEND_FIN)
            me.fin_seq = fin_seq
            me.sent_fin = True
            if conn.first_fin_by is None:
                conn.first_fin_by = role
            if peer.state is S.FIN_WAIT_1 and acks_peer_fin:
                self._step(conn, peer, Seen.RECV_FIN_ACK_OF_FIN)
            else:
                if acks_peer_fin:
                    self._step(conn, peer, Seen.RECV_ACK_OF_FIN)
                self._step(conn, peer, Seen.RECV_FIN)
            return "FIN", "teardown"
        if acks_peer_fin and peer.state in (S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK):
            self._step(conn, peer, Seen.RECV_ACK_OF_FIN)
        if not length and (me.sent_fin or peer.sent_fin):
            return "ACK", "teardown"
        return label, phase

    def _syn(self, conn: TcpConnection, role: str, me: Endpoint, peer: Endpoint, flags: int,
             seq: int, acks_peer_syn: bool, notes: list[str]) -> tuple[str, str]:
        if flags & ACK:
            me.sent_synack = True
            if me.state is S.LISTEN:  # the SYN it answers was not captured
                self._step(conn, me, Seen.RECV_SYN)
            if acks_peer_syn and peer.state in (S.SYN_SENT, S.SYN_RECEIVED):
                self._step(conn, peer, Seen.RECV_SYN_ACK)
            return "SYN-ACK", "handshake"
        retransmitted = me.sent_syn and me.isn == seq
        me.sent_syn = True
        if retransmitted:
            return "SYN", "handshake"
        if me.state is S.SYN_RECEIVED and not me.sent_synack and peer.state is S.SYN_SENT:
            # A bare SYN from an endpoint we took for a listener: it had not seen the
            # peer's SYN when it sent its own.  The SYNs crossed: a simultaneous open.
            self._uncross_syn(conn, me, peer)
            notes.append("the SYNs crossed: a simultaneous open (both sides go SYN_SENT -> "
                         "SYN_RECEIVED -> ESTABLISHED)")
            return "SYN", "handshake"
        if me.state in (None, S.CLOSED):
            me.path.clear()
        self._step(conn, me, Seen.SEND_SYN)
        if peer.state is S.LISTEN or peer.state is S.SYN_SENT:
            self._step(conn, peer, Seen.RECV_SYN)
        return "SYN", "handshake"

    def _reset(self, conn: TcpConnection, role: str, me: Endpoint, peer: Endpoint,
               notes: list[str]) -> tuple[str, str]:
        me.sent_rst = True
        if me.state is S.SYN_RECEIVED and not me.sent_synack and peer.state is S.SYN_SENT:
            # It answered a SYN with RST: nothing listened.  It never was a listener.
            conn.refused = True
            me.path[:] = [S.CLOSED]
            me.state = S.CLOSED
            notes.append("connection refused: nothing listens on that port, so the SYN "
                         "is answered with RST")
        else:
            self._step(conn, me, Seen.SEND_RST)
        if conn.reset_by is None:
            conn.reset_by = role
        self._step(conn, peer, Seen.RECV_RST)
        return "RST", "reset"

    # ----- crossings ------------------------------------------------------------------
    def _uncross_syn(self, conn: TcpConnection, me: Endpoint, peer: Endpoint) -> None:
        """Replay a simultaneous open: *me* sent its SYN first, then got the peer's."""
        me.path[:] = []
        me.state = S.CLOSED
        self._step(conn, me, Seen.SEND_SYN)
        self._step(conn, me, Seen.RECV_SYN)
        self._step(conn, peer, Seen.RECV_SYN)
        conn.crossed_syns = True
        # SPEC §4: in a simultaneous open the client is the lower (address, port).
        if (conn.server.addr, conn.server.port) < (conn.client.addr, conn.client.port):
            conn.client, conn.server = conn.server, conn.client
            conn.events[:] = [_swap_roles(e) for e in conn.events]
            conn.history_letters[:] = [c.swapcase() for c in conn.history_letters]
            if conn.first_fin_by is not None:
                conn.first_fin_by = _other(conn.first_fin_by)

    def _uncross_fin(self, conn: TcpConnection, me: Endpoint) -> None:
        """Replay a simultaneous close for *me*: FIN sent first, the peer's FIN after."""
        if me.path and me.path[-1] is S.CLOSE_WAIT:
            me.path.pop()
        me.state = S.ESTABLISHED
        self._step(conn, me, Seen.SEND_FIN)
        self._step(conn, me, Seen.RECV_FIN)
        conn.crossed_fins = True

    # ----- bookkeeping ----------------------------------------------------------------
    def _step(self, conn: TcpConnection, who: Endpoint, seen: Seen) -> None:
        state = who.state
        if state is None:
            return
        after = next_state(state, seen)
        if after is None:
            if seen not in (Seen.RECV_RST, Seen.SEND_RST) or state not in (S.CLOSED,
                                                                           S.LISTEN):
                conn.anomalies.append(f"{state.value} has no transition for {seen.value}")
            return
        who.enter(after)

    def _history(self, conn: TcpConnection, me: Endpoint, flags: int, length: int,
                 upper: bool) -> None:
        """Zeek's history letters: each the first time it happens in a direction."""
        letters = []
        if flags & SYN:
            letters.append("H" if flags & ACK else "S")
        if flags & FIN:
            letters.append("F")
        if flags & RST:
            letters.append("R")
        if length:
            letters.append("D")
        elif flags & ACK and not flags & (SYN | FIN | RST):
            letters.append("A")
        for letter in letters:
            if letter not in me.history:
                me.history += letter
                conn.history_letters.append(letter if upper else letter.lower())

    def _completeness(self, conn: TcpConnection, flags: int, length: int) -> None:
        bits = conn.completeness
        if flags & SYN:
            bits |= SYNACK_BIT if flags & ACK else SYN_BIT
        elif flags & ACK and bits & SYNACK_BIT:
            bits |= ACK_BIT
        if length:
            bits |= DATA_BIT
        if flags & FIN:
            bits |= FIN_BIT
        if flags & RST:
            bits |= RST_BIT
        conn.completeness = bits


    def drain(self) -> list[TcpConnection]:
        """The flows retired since the last call (see FlowTable)."""
        return self.table.drain()

    def close(self) -> list[TcpConnection]:
        """Retire everything at the end of the capture."""
        return self.table.close()


def _other(role: str) -> str:
    return SERVER if role == CLIENT else CLIENT


def _swap_roles(event: Event) -> Event:
    changes = tuple(c._replace(role=_other(c.role)) for c in event.changes)
    return event._replace(sender=_other(event.sender), states=event.states[::-1],
                          changes=changes)
