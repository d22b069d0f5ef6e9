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
from capdissect.dissect.tcp import ACK, FIN, FLAG_STRINGS, RST, SYN, TcpHeader
from capdissect.tracking.analysis import NO_WINDOW, ConnectionAnalysis, Finding, Flow, TcpAnalyzer
from capdissect.tracking.states import FINISHED, Seen, TcpState, next_state
from capdissect.tracking.table import FlowTable

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

S = TcpState
MOD: Final = 1 << 32
HALF: Final = 1 << 31

CLIENT: Final = "client"
SERVER: Final = "server"

# Wireshark's tcp.completeness bits (packet-tcp.c TCP_COMPLETENESS_*).
SYN_BIT, SYNACK_BIT, ACK_BIT, DATA_BIT, FIN_BIT, RST_BIT = 1, 2, 4, 8, 16, 32


def seq_le(a: int, b: int) -> bool:
    """a <= b in 32-bit sequence space (RFC 9293 §3.4)."""
    return (b - a) % MOD < HALF


def seq_lt(a: int, b: int) -> bool:
    """a < b in 32-bit sequence space."""
    return a != b and seq_le(a, b)


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
    nxt: int | None = None  # snd.nxt as the wire shows it: after its highest segment
    last_ack: int | None = None  # the ack field of its last segment with ACK (rcv.nxt)
    # The end of its highest data byte, relative, counted past 2**32 (payload in
    # sequence space: a transfer over 4 GiB wraps the 32-bit numbers, not this).
    data_high: int = 0
    sent_syn: bool = False
    sent_synack: bool = False
    sent_fin: bool = False
    sent_rst: bool = False
    sent_data_after_peer_fin: bool = False
    acked_peer_syn: bool = False  # one of its segments acknowledged the peer's SYN
    acked_peer_fin: bool = False  # one of its segments acknowledged the peer's FIN
    fin_frame: int = 0  # the frame of its first FIN
    # The start of the replay window (see TcpTracker): the state and path length there.
    window_state: TcpState | None = None
    window_path: int = 0
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


class _Seg:
    """What the state machine needs of one segment: facts fixed when it was captured.
    A plain class (native when compiled): one is made per segment."""

    __slots__ = (
        "acks_data",
        "acks_fin",
        "acks_syn",
        "fin",
        "gap",
        "has_ack",
        "new_fin",
        "new_syn",
        "rst",
        "rst_ok",
        "sender",
        "syn",
    )

    def __init__(self, sender: Endpoint, syn: bool, has_ack: bool, fin: bool, rst: bool,
                 new_syn: bool, new_fin: bool, acks_syn: bool, acks_fin: bool,
                 acks_data: bool, rst_ok: bool, gap: bool) -> None:
        self.sender = sender
        self.syn = syn
        self.has_ack = has_ack
        self.fin = fin
        self.rst = rst
        self.new_syn = new_syn  # the sender's first SYN or SYN-ACK (not a retransmission)
        self.new_fin = new_fin  # the sender's first FIN
        self.acks_syn = acks_syn  # its ack covers the peer's SYN
        self.acks_fin = acks_fin  # its ack covers the peer's FIN
        self.acks_data = acks_data  # its ack covers data of the peer (beyond its SYN)
        self.rst_ok = rst_ok  # a RST its receiver accepts (RFC 9293 §3.10.7)
        # its seq is past all its sender was seen sending: some of that is not captured
        self.gap = gap


_Replayed = tuple[tuple[TcpState | None, TcpState | None], tuple[StateChange, ...]]

# A segment whose receipt a later segment can still show to have come later (or never):
# a bare SYN and a FIN.  Its receiver's transition waits in the connection's window.
_KIND_SYN: Final = 0
_KIND_FIN: Final = 1
MAX_WINDOW: Final = 64  # segments replayed at most; past it the window is taken as settled
LISTENER_UNKNOWN: Final = 0
LISTENER_YES: Final = 1
LISTENER_NO: Final = 2


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
    # A tuple, not a list: almost every connection has none (a SYN flood holds 50,000).
    anomalies: tuple[str, ...] = ()
    anomaly_count: int = 0  # anomalies seen; only the first MAX_ANOMALIES are kept
    events: list[Event] = field(default_factory=list)
    flag_counts: dict[str, int] | None = None  # made at the first finding
    # What Wireshark's analysis remembers (tracking/analysis.py); it goes with the record.
    analysis_state: ConnectionAnalysis = field(default_factory=ConnectionAnalysis, repr=False)
    reused_ports: bool = False  # its first SYN reused the ports of an open earlier record
    # Zeek's history: each letter the first time it happens in a direction, in order.
    zeek_history: str = ""
    # SPEC §4: a receiver's state changes at once only on loopback; elsewhere when its
    # own later segments show it got the segment.
    loopback: bool = False
    # Whether the server of a bare SYN was listening: its reply tells (SYN-ACK: yes; RST
    # or a SYN of its own: no).  Until then it has no state the wire has revealed.
    listener: int = LISTENER_YES
    # The replay window: the segments (and their events as last reported) whose states a
    # later segment may still change.  Empty almost always: only between a SYN or FIN and
    # the segment that shows its receiver got it.
    window: list[_Seg] = field(default_factory=list, repr=False)
    window_events: list[Event] = field(default_factory=list, repr=False)

    def endpoint(self, role: str) -> Endpoint:
        return self.client if role == CLIENT else self.server

    @property
    def finished(self) -> bool:
        # A refused SYN's server never had a state: only the client's counts then.
        return self.client.state in FINISHED and (self.server.state is None
                                                  or self.server.state in FINISHED)

    @property
    def settled(self) -> bool:
        """No reported state of this connection can change any more."""
        return not self.window

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
        if self.refused:
            return "none"  # SPEC §4: no server socket existed, so nothing was closed
        if self.reset_by is not None:
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
        if self.refused:
            return None
        if self.reset_by is not None:
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
    def analysis_counts(self) -> dict[str, int]:
        """How many segments got each analysis flag (a copy: the tracker counts)."""
        return dict(self.flag_counts) if self.flag_counts else {}

    @property
    def history(self) -> str:
        return self.zeek_history

    @property
    def hints(self) -> list[str]:
        """What the final states say about the programs (a socket left in CLOSE_WAIT)."""
        out = []
        for me, peer in ((self.client, self.server), (self.server, self.client)):
            if me.state is S.CLOSE_WAIT:
                out.append(f"the {_role(self, me)} got the {_role(self, peer)}'s FIN at frame "
                           f"{peer.fin_frame} but never sent its own: its application has "
                           "not called close() (or shutdown()), so the socket stays in "
                           "CLOSE_WAIT until it does")
        return out

    def note_anomaly(self, text: str) -> None:
        """Record an anomaly; memory stays bounded however many a capture has."""
        self.anomaly_count += 1
        if len(self.anomalies) < MAX_ANOMALIES and text not in self.anomalies:
            self.anomalies += (text,)


MAX_ANOMALIES: Final = 16
# Connections that are a bare SYN nobody answered, held at once at most (the oldest is
# retired early beyond it, counted as evicted).  Linux holds at most its SYN backlog
# (net.ipv4.tcp_max_syn_backlog, a few thousand) of such requests per listener.
MAX_HALF_OPEN: Final = 10_000

class Update(NamedTuple):
    """What one segment did: its connection and its event."""

    connection: TcpConnection
    event: Event
    new: bool  # the segment opened a new connection record
    notes: tuple[str, ...]  # plain-language remarks (crossings, refusals, anomalies)
    # Earlier events of this connection whose states this segment showed to be wrong,
    # rewritten (SPEC §4: held events are rewritten when a crossing is recognised), and
    # what streaming output says about it (reports that hold events just use them).
    revised: tuple[Event, ...] = ()
    corrections: tuple[str, ...] = ()


Key = tuple[bytes, int, bytes, int]


def is_loopback(addr: bytes) -> bool:
    """127.0.0.0/8 or ::1."""
    return addr[:1] == b"\x7f" if len(addr) == 4 else addr == b"\0" * 15 + b"\1"


class TcpTracker:
    """Consumes TCP segments in capture order; keeps the connections open at once.

    *ids* numbers the connections (shared with the UDP tracker, so ids follow the
    capture); *linger* is how long, in capture time, a connection stays after its last
    segment (TIME_WAIT lasts 60 s on Linux); beyond *max_open* connections the oldest
    is retired early and counted in ``evicted``, and so is the oldest bare SYN nobody
    answered beyond ``MAX_HALF_OPEN`` of them.

    States.  A segment changes its sender's state when it is sent.  Its receiver's state
    changes when the receiver got it, which the observer learns in one of two ways (SPEC
    §4): on loopback at once, unless the receiver's own next segment shows it had not got
    it yet (its ack does not cover the segment: the two crossed); elsewhere, when the
    receiver's own segment acknowledges it.  A bare SYN's receiver is known to have been
    listening only from its reply, so the server of a connection shows no state until
    its SYN-ACK (a RST says nothing listened: there was no server socket at all).
    Between such a SYN or FIN and the segment that settles it, the connection keeps a
    small window of segments, and each new one replays the window from its start with
    what is known now (``_replay``).  Events whose states come out different are handed
    back rewritten (``Update.revised``) with a correction note, so the reports that
    hold events can show what really happened and the streaming ones can say so.
    """

    def __init__(self, ids: Iterator[int] | None = None, keep_events: bool = True,
                 linger: float = 120.0, max_open: int = 50_000,
                 max_half_open: int = MAX_HALF_OPEN) -> None:
        self.ids = ids if ids is not None else itertools.count(1)
        self.keep_events = keep_events
        self.analyzer = TcpAnalyzer()
        self.table: FlowTable[Key, TcpConnection] = FlowTable(
            linger, max_open, _lives_on, max_young=min(max_open, max_half_open))

    def connection(self, src: tuple[bytes, int], dst: tuple[bytes, int]
                   ) -> TcpConnection | None:
        """The open connection between *src* and *dst*, if any."""
        return self.table.get((*src, *dst) if src <= dst else (*dst, *src))

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
        self.table.advance(ts)
        conn = self.table.get(key)
        notes: list[str] = []
        new = reused = False
        if conn is not None and self._starts_new(conn, flags, seg, src):
            notes.append("a new connection reuses the ports of an earlier one")
            self.table.retire(key)
            self.settle(conn)
            conn = None
            reused = True
        if conn is None:
            conn = self._start(key, src, dst, flags, ts)
            conn.reused_ports = reused
            new = True
            if not flags & SYN:
                notes.append("the capture starts mid-connection (no SYN): both endpoints are "
                             "taken to be ESTABLISHED, as a segment without SYN implies")
        else:
            self.table.touch(key)
        conn.packets += 1
        conn.last_ts = ts
        role = CLIENT if (conn.client.addr, conn.client.port) == src else SERVER
        if role == SERVER or flags & (SYN | ACK | FIN | RST) != SYN:
            self.table.grown(key)
        corrections: list[str] = []
        event, revised = self._segment(conn, role, frame, ts, seg, flags, payload_len, notes,
                                       corrections, whole)
        if self.keep_events:
            if revised:
                by_frame = {e.frame: e for e in revised}
                recent = conn.events[-MAX_WINDOW:]
                conn.events[-MAX_WINDOW:] = [by_frame.get(e.frame, e) for e in recent]
            conn.events.append(event)
        self.table.expire(ts)
        return _new_tuple(Update, (conn, event, new, tuple(notes), revised,
                                   tuple(corrections)))

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
        conn.loopback = is_loopback(src[0]) and is_loopback(dst[0])
        if flags & SYN:
            if flags & ACK:  # the capture starts at the SYN-ACK
                client.enter(S.SYN_SENT)
                server.enter(S.SYN_RECEIVED)
            else:  # the first state the wire reveals is the client's SYN_SENT
                client.state = S.CLOSED
                conn.listener = LISTENER_UNKNOWN
        else:  # mid-stream: the wire shows two synchronized endpoints
            client.enter(S.ESTABLISHED)
            server.enter(S.ESTABLISHED)
        # A bare SYN is young until anything else is seen on its connection: a flood of
        # them is bounded by MAX_HALF_OPEN, as a kernel bounds its SYN backlog.
        self.table.add(key, conn, young=flags & (SYN | ACK) == SYN)
        return conn

    # ----- one segment ----------------------------------------------------------------
    def _segment(self, conn: TcpConnection, role: str, frame: int, ts: float, seg: TcpHeader,
                 flags: int, length: int, notes: list[str], corrections: list[str],
                 whole: bool) -> tuple[Event, tuple[Event, ...]]:
        me = conn.endpoint(role)
        peer = conn.endpoint(SERVER if role == CLIENT else CLIENT)
        findings = self.analyzer.segment(
            conn.analysis_state, me, peer, seg, length, ts, frame,
            reopens=conn.reused_ports and conn.packets == 1) if whole else ()
        for finding in findings:
            if conn.flag_counts is None:
                conn.flag_counts = {}
            conn.flag_counts[finding.name] = conn.flag_counts.get(finding.name, 0) + 1
        self._history(conn, me, flags, length, role == CLIENT)
        self._completeness(conn, flags, length)
        seq, ack = seg.seq, seg.ack
        # Relative numbers count from the ISN, as tcpdump and Wireshark show them; without
        # a SYN, from just before the first number seen.  A RST from a side that never
        # numbered anything (a refused SYN's answer) keeps its literal seq, as tcpdump
        # prints it: RFC 9293 §3.10.7.1 gives it the SYN's ack field or zero.
        literal_seq = bool(flags & RST) and me.base is None
        if literal_seq:
            pass
        elif me.base is None or flags & SYN:
            me.base = seq if flags & SYN else (seq - 1) % MOD
        if flags & ACK and peer.base is None:
            peer.base = (ack - 1) % MOD
        facts = self._facts(conn, me, peer, flags, seq, ack, length, frame, notes)
        label, phase = _label(facts, me, peer, length)
        end = (seq + length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) % MOD
        if me.nxt is None or seq_lt(me.nxt, end):
            me.nxt = end
        if flags & ACK:
            me.last_ack = ack
        if length:
            ahead = (me.rel((seq + length + (1 if flags & SYN else 0)) % MOD)
                     - me.data_high) % MOD
            if ahead < HALF:  # forward in sequence space: new data
                me.data_high += ahead
        # Most segments (data, ACKs of data) can change no state: they skip the replay.
        quiet = not (flags & (SYN | FIN | RST)
                     or (facts.acks_syn and not me.acked_peer_syn)
                     or (facts.acks_fin and not me.acked_peer_fin)
                     or me.state is S.SYN_SENT or me.state is S.SYN_RECEIVED)
        if facts.acks_syn:
            me.acked_peer_syn = True
        if facts.acks_fin:
            me.acked_peer_fin = True
        role = CLIENT if conn.client is me else SERVER  # a simultaneous open may swap roles
        rel_ack = peer.rel(ack) if flags & ACK else None
        final = quiet and not conn.window  # the states after it are known now
        event = _new_tuple(Event, (
            frame, ts, role, FLAG_STRINGS[flags], seq if literal_seq else me.rel(seq), rel_ack,
            length, phase, label,
            (conn.client.state, conn.server.state) if final else (None, None), (), findings))
        if final:
            return event, ()
        return self._advance(conn, facts, event, corrections)

    def _facts(self, conn: TcpConnection, me: Endpoint, peer: Endpoint, flags: int, seq: int,
               ack: int, length: int, frame: int, notes: list[str]) -> _Seg:
        """What this segment is, in the terms of the state machine, and the facts it
        establishes for good (who sent what, crossings, a refusal)."""
        has_ack = bool(flags & ACK)
        syn, fin, rst = bool(flags & SYN), bool(flags & FIN), bool(flags & RST)
        rst_ok = rst and _rst_acceptable(me, peer, seq, ack, has_ack,
                                         conn.analysis_state.find(peer))
        if has_ack and not rst and peer.isn is None and not peer.sent_syn and (
                syn or (me.sent_syn and not conn.refused)):
            # The SYN this segment answers was not captured (or not yet): a SYN-ACK
            # acknowledges the peer's ISN + 1, and so does a client's first ACK after its
            # SYN the server's.  The states the wire implies follow from it (SPEC §4).
            peer.isn = (ack - 1) % MOD
            notes.append(_MISSING_SYN_NOTE[syn])
        acks_syn = has_ack and peer.isn is not None and seq_le((peer.isn + 1) % MOD, ack)
        acks_fin = (has_ack and peer.fin_seq is not None
                    and seq_le((peer.fin_seq + 1) % MOD, ack))
        acks_data = acks_syn and peer.isn is not None and (ack - peer.isn) % MOD > 1
        new_syn = syn and not (me.sent_synack if has_ack else me.sent_syn)
        if syn and not has_ack and me.sent_syn and me.isn != seq:
            new_syn = True  # a SYN with another ISN (the same ports reused at once)
        if syn and not has_ack and conn.refused:
            # The SYN again after the RST: a new attempt, and the refusal is history.
            new_syn = True
            conn.refused = False
            conn.listener = LISTENER_UNKNOWN
            notes.append("the client sends its SYN again after the RST: a new attempt on "
                         "the same ports, so the connection is not refused unless this "
                         "SYN is refused too")
        elif syn and not has_ack and peer.sent_synack and me.isn == seq and new_syn:
            # Its SYN-ACK came first: the capture point saw them out of order.  Matched by
            # sequence numbers, not by arrival, it changes no state.
            new_syn = False
            notes.append("the SYN-ACK that answers this SYN was captured before it (its ack "
                         "is this SYN's sequence number + 1): the two passed the capture "
                         "point out of order, and the SYN-ACK's states stand")
        new_fin = fin and not me.sent_fin
        if syn:
            me.isn = seq
            if has_ack:
                me.sent_synack = True
            else:
                if new_syn and peer.sent_syn and not peer.sent_synack and not me.sent_synack:
                    # A bare SYN answering a bare SYN: it was sent before the peer's SYN
                    # arrived.  The SYNs crossed: a simultaneous open.
                    swapped = self._cross_syns(conn)
                    notes.append("the SYNs crossed: a simultaneous open (both sides go "
                                 "SYN_SENT -> SYN_RECEIVED -> ESTABLISHED)")
                    if swapped:
                        notes.append("roles: in a simultaneous open the client is the lower "
                                     "address and port (SPEC), so the first SYN came from the "
                                     "server")
                me.sent_syn = True
        if fin:
            fin_seq = (seq + length) % MOD
            if new_fin:
                me.fin_seq = fin_seq
                me.sent_fin = True
                me.fin_frame = frame
                if conn.first_fin_by is None:
                    conn.first_fin_by = CLIENT if me is conn.client else SERVER
                if peer.sent_fin and not acks_fin:
                    conn.crossed_fins = True
                    notes.append(
                        f"the FINs crossed: the {_role(conn, me)} sent this FIN before the "
                        f"{_role(conn, peer)}'s FIN of frame {peer.fin_frame} reached it, so "
                        "it went ESTABLISHED -> FIN_WAIT_1, not CLOSE_WAIT: a simultaneous "
                        "close (both sides go FIN_WAIT_1 -> CLOSING -> TIME_WAIT)")
        if rst and not rst_ok and (peer.sent_syn or peer.sent_synack):
            notes.append(f"the {_role(conn, peer)} does not accept this RST (RFC 9293 "
                         "section 3.10.7.3: its sequence number, or in SYN_SENT its ack, is "
                         "not one it expects), so its state does not change")
        if rst:
            me.sent_rst = True
            if not rst_ok:
                pass
            elif (me is conn.server and conn.listener != LISTENER_YES and not me.sent_synack
                    and not me.sent_syn and conn.client.sent_syn):
                # A SYN answered by RST: nothing listened, so no server socket existed.
                conn.refused = True
                conn.listener = LISTENER_NO
                notes.append("connection refused: nothing listens on that port, so the "
                             "kernel answers the SYN with RST (there is no server socket)")
            elif conn.reset_by is None:
                conn.reset_by = CLIENT if me is conn.client else SERVER
        if length and peer.sent_fin and not me.sent_fin:
            me.sent_data_after_peer_fin = True
            notes.append(f"half-close: the {_role(conn, me)} still sends data after the "
                         f"{_role(conn, peer)}'s FIN of frame {peer.fin_frame}: a FIN closes "
                         "only its sender's direction")
        if conn.listener == LISTENER_UNKNOWN and not rst:
            if me is conn.server and syn and not has_ack:
                conn.listener = LISTENER_NO  # a SYN of its own: it was connecting too
            elif acks_syn:  # the server's SYN-ACK, or the client's ACK of one not captured
                conn.listener = LISTENER_YES
        gap = me.nxt is not None and seq_lt(me.nxt, seq)
        return _Seg(me, syn, has_ack, fin, rst, new_syn, new_fin, acks_syn, acks_fin,
                    acks_data, rst_ok, gap)

    # ----- the replay window ----------------------------------------------------------
    def _advance(self, conn: TcpConnection, facts: _Seg, event: Event,
                 corrections: list[str]) -> tuple[Event, tuple[Event, ...]]:
        """Add the segment to the window, replay it, report what changed, and settle."""
        window = conn.window
        if not window:
            if not (facts.new_syn and not facts.has_ack) and not facts.new_fin:
                # Nothing pending: the segment's transitions are final at once.
                event = self._replay_one(conn, facts, event)
                return event, ()
            _open_window(conn)
        window.append(facts)
        conn.window_events.append(event)
        results, pending = self._replay(conn)
        revised: list[Event] = []
        old_events = conn.window_events
        new_events = [_replayed(old, CLIENT if seg.sender is conn.client else SERVER,
                                states, changes)
                      for old, seg, (states, changes) in zip(old_events, window, results,
                                                             strict=True)]
        for old, new_event in zip(old_events[:-1], new_events[:-1], strict=True):
            if old != new_event:
                revised.append(new_event)
                corrections.extend(_corrections(old, new_event))
        conn.window_events = new_events
        if not pending or len(window) >= MAX_WINDOW:
            self.settle(conn)
        return new_events[-1], tuple(revised)  # (settle leaves new_events be)

    def settle(self, conn: TcpConnection) -> None:
        """Take the window's states as final (settled, or held as long as it may be)."""
        conn.window = []
        conn.window_events = []
        if conn.listener == LISTENER_UNKNOWN:
            conn.listener = LISTENER_NO  # no reply while it was held: nothing listened

    def _replay_one(self, conn: TcpConnection, facts: _Seg, event: Event) -> Event:
        """A segment outside any window: apply its transitions now."""
        _open_window(conn)
        conn.window.append(facts)
        out, _pending = self._replay(conn)
        conn.window.clear()
        states, changes = out[0]
        return _replayed(event, event.sender, states, changes)

    def _replay(self, conn: TcpConnection) -> tuple[list[_Replayed], bool]:
        """Replay the window from its start; return each segment's (states, changes) and
        whether a receipt is still unsettled.  The endpoints end in the replayed states."""
        window = conn.window
        client, server = conn.client, conn.server
        # When each receiver got each pending SYN or FIN: (index, at_start) per
        # (receiver, kind); at_start means before the receiver's own segment there.
        schedule: dict[tuple[int, int], tuple[int, bool]] = {}
        pending = False
        for receiver in (client, server):
            for kind in (_KIND_SYN, _KIND_FIN):
                when, unsettled = _receipt(conn, window, receiver, kind)
                pending = pending or unsettled
                if when is not None:
                    schedule[(id(receiver), kind)] = when
        for ep in (client, server):
            del ep.path[ep.window_path:]
            ep.state = ep.window_state
        if conn.listener == LISTENER_YES and server.state is None:
            server.enter(S.LISTEN)
        elif conn.listener == LISTENER_UNKNOWN:
            pending = True
        out: list[_Replayed] = []
        fin_acked: dict[int, bool] = {}
        for index, seg in enumerate(window):
            hops: list[StateChange] = []
            me = seg.sender
            peer = server if me is client else client
            due = schedule.get((id(me), _KIND_SYN))
            if due == (index, True):
                self._hop(conn, me, Seen.RECV_SYN, hops)
            due = schedule.get((id(me), _KIND_FIN))
            if due == (index, True):
                self._hop(conn, me, Seen.RECV_FIN, hops)
            # What its sending shows it had got, though the capture missed it: an ACK
            # from SYN_SENT, the SYN-ACK; an ack of data from SYN_RECEIVED, the ACK of
            # its SYN (that data carried one).
            if not (seg.syn or seg.rst):
                if me.state is S.SYN_SENT and seg.has_ack:
                    self._hop(conn, me, Seen.RECV_SYN_ACK, hops)
                elif me.state is S.SYN_RECEIVED and seg.acks_data:
                    self._hop(conn, me, Seen.RECV_ACK_OF_SYN, hops)
            # The sender's own transitions.
            if seg.rst:
                if me.state not in (None, S.CLOSED, S.LISTEN):
                    self._hop(conn, me, Seen.SEND_RST, hops)
            elif seg.syn and seg.new_syn:
                if not seg.has_ack and me.state in (None, S.CLOSED):
                    if me.state is None:
                        me.state = S.CLOSED
                    self._hop(conn, me, Seen.SEND_SYN, hops)
                elif seg.has_ack and me.state is S.LISTEN:  # the SYN was not captured
                    self._hop(conn, me, Seen.RECV_SYN, hops)
            if seg.fin and seg.new_fin:
                self._hop(conn, me, Seen.SEND_FIN, hops)
            # What its receiver takes at once: a RST, the ACK of its SYN or FIN.
            fin_due = schedule.get((id(peer), _KIND_FIN)) == (index, False)
            if seg.rst:
                if peer.state is S.SYN_SENT and seg.rst_ok:
                    # Taken, unless the receiver sends its SYN again: it was still
                    # connecting, so the RST never reached it (SPEC §4: its own next
                    # segment shows it).  Until it sends anything, that is open.
                    again = _sends_after(window, index, peer)
                    if again < 0:
                        pending = True
                    if again < 0 or not window[again].syn:
                        self._hop(conn, peer, Seen.RECV_RST, hops)
                elif seg.rst_ok and peer.state not in (None, S.CLOSED, S.LISTEN):
                    self._hop(conn, peer, Seen.RECV_RST, hops)
            elif seg.syn and seg.has_ack and seg.acks_syn:
                if peer.state in (S.SYN_SENT, S.SYN_RECEIVED):
                    self._hop(conn, peer, Seen.RECV_SYN_ACK, hops)
            elif seg.acks_syn and peer.state is S.SYN_RECEIVED:
                self._hop(conn, peer, Seen.RECV_ACK_OF_SYN, hops)
            if seg.acks_fin and not fin_acked.get(id(peer)) and peer.sent_fin:
                fin_acked[id(peer)] = True
                if fin_due and peer.state is S.FIN_WAIT_1:
                    self._hop(conn, peer, Seen.RECV_FIN_ACK_OF_FIN, hops)
                    fin_due = False
                elif peer.state in (S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK):
                    self._hop(conn, peer, Seen.RECV_ACK_OF_FIN, hops)
            # Receipts due after this segment: the receiver's of this one, at once, and
            # the sender's of the peer's SYN or FIN, which it had not got before sending.
            for who, kind in ((peer, _KIND_SYN), (me, _KIND_SYN), (peer, _KIND_FIN),
                              (me, _KIND_FIN)):
                if schedule.get((id(who), kind)) == (index, False):
                    if kind == _KIND_FIN and who is peer and not fin_due:
                        continue  # taken with the ACK of its own FIN above
                    self._hop(conn, who, Seen.RECV_SYN if kind == _KIND_SYN else Seen.RECV_FIN,
                              hops)
            out.append(((client.state, server.state), tuple(hops)))
        # Whether each side's FIN was acknowledged is kept across windows.
        return out, pending

    def _hop(self, conn: TcpConnection, who: Endpoint, seen: Seen,
             hops: list[StateChange]) -> None:
        state = who.state
        if state is None:
            return
        after = next_state(state, seen)
        if after is None:
            if seen not in (Seen.RECV_RST, Seen.SEND_RST) or state not in (S.CLOSED,
                                                                           S.LISTEN):
                conn.note_anomaly(f"{state.value} has no transition for {seen.value}")
            return
        if after is state:
            return
        hops.append(_new_tuple(StateChange, (_role(conn, who), state, after)))
        who.enter(after)

    # ----- crossings ------------------------------------------------------------------
    def _cross_syns(self, conn: TcpConnection) -> bool:
        """A simultaneous open: nobody listened; the client is the lower (address, port).
        True when that swapped the roles taken from the first SYN."""
        conn.crossed_syns = True
        conn.listener = LISTENER_NO
        swap = (conn.server.addr, conn.server.port) < (conn.client.addr, conn.client.port)
        if swap:
            conn.client, conn.server = conn.server, conn.client
            conn.events[:] = [swap_roles(e) for e in conn.events]
            conn.zeek_history = conn.zeek_history.swapcase()
            if conn.first_fin_by is not None:
                conn.first_fin_by = _other(conn.first_fin_by)
        return swap

    # ----- bookkeeping ----------------------------------------------------------------
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
                conn.zeek_history += letter if upper else letter.lower()

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
        """The flows retired since the last call (see FlowTable), their states final."""
        done = self.table.drain()
        for conn in done:
            self.settle(conn)
        return done

    def close(self) -> list[TcpConnection]:
        """Retire everything at the end of the capture."""
        done = self.table.close()
        for conn in done:
            self.settle(conn)
        return done



_SYNCHRONIZED: Final = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
                                  S.CLOSING, S.LAST_ACK})


def _lives_on(conn: TcpConnection) -> bool:
    """A connection no timeout ends: an endpoint synchronized, neither finished."""
    return ((conn.client.state in _SYNCHRONIZED or conn.server.state in _SYNCHRONIZED)
            and conn.client.state not in FINISHED and conn.server.state not in FINISHED)


def _other(role: str) -> str:
    return SERVER if role == CLIENT else CLIENT


def _role(conn: TcpConnection, ep: Endpoint) -> str:
    return CLIENT if ep is conn.client else SERVER


def swap_roles(event: Event) -> Event:
    """*event* with client and server exchanged (the roles a simultaneous open swaps)."""
    changes = tuple(StateChange(_other(c.role), c.before, c.after) for c in event.changes)
    return _replayed(event, _other(event.sender), (event.states[1], event.states[0]), changes)


def _replayed(event: Event, sender: str, states: tuple[TcpState | None, TcpState | None],
              changes: tuple[StateChange, ...]) -> Event:
    """*event* with the sender, states and changes a replay found.  Built whole: a
    NamedTuple's _replace runs as Python, and the tracker calls this per state change."""
    return _new_tuple(Event, (event.frame, event.ts, sender, event.flags, event.seq, event.ack,
                              event.length, event.phase, event.label, states, changes,
                              event.analysis))


def _open_window(conn: TcpConnection) -> None:
    """The window starts here: remember each endpoint's state and path length."""
    for ep in (conn.client, conn.server):
        ep.window_state = ep.state
        ep.window_path = len(ep.path)


def _label(seg: _Seg, me: Endpoint, peer: Endpoint, length: int) -> tuple[str, str]:
    """The segment's (label, phase), from what it carries."""
    if seg.rst:
        return "RST", "reset"
    if seg.syn:
        return ("SYN-ACK" if seg.has_ack else "SYN"), "handshake"
    if seg.fin:
        return "FIN", "teardown"
    if seg.acks_syn and not me.acked_peer_syn and not length and peer.sent_synack:
        return "ACK", "handshake"  # the third segment of the handshake
    if length:
        return "data", "data"
    if me.sent_fin or peer.sent_fin:
        return "ACK", "teardown"
    return "ACK", "data"


def _receipt(conn: TcpConnection, window: list[_Seg], receiver: Endpoint,
             kind: int) -> tuple[tuple[int, bool] | None, bool]:
    """When *receiver* got the other side's bare SYN or FIN that starts in *window*.

    Returns ((index, at_start), unsettled): after the segment at *index*, or before it
    with *at_start* (the receiver's own segment that acknowledges it); None when it
    never got it as far as the wire shows.  *unsettled* is True while a later segment of
    the receiver could still move it.
    """
    sender = conn.server if receiver is conn.client else conn.client
    created = -1
    for index, seg in enumerate(window):
        if seg.sender is sender and _bare(seg, kind) and _first(seg, kind):
            created = index
            break
    if created < 0:
        return None, False
    # A listener's SYN: known only from its reply (SPEC §4's example: LISTEN until then).
    listener = kind == _KIND_SYN and not conn.crossed_syns
    if listener and conn.listener == LISTENER_NO:
        return None, False  # refused: no socket got it
    at_once = conn.loopback and not listener
    last = created  # the receiver's last segment sent before it got it
    taken = -1  # the sender's first later segment the receiver took at once
    # The sender's last copy sent again (-1: none): the one before may have been lost.
    # On loopback it was (a receiver acknowledges a SYN at once and a FIN within its
    # delayed ACK, before the sender's retransmission timeout), so the receiver got it
    # no earlier than this copy.  tests/live/test_lost_fin_kernel.py checks it against ss.
    again = -1
    # The receiver's own latest SYN (or FIN) here, and its one before the latest it sent
    # again (-1: none).  A copy of the sender's sent before *cut* was lost on loopback:
    # it would have arrived by then or just after, and the receiver's copy came a
    # retransmission timeout later without acknowledging it.  Until the receiver
    # acknowledges one, its receipt then waits for a later copy.
    own = cut = -1
    for index in range(created + 1, len(window)):
        seg = window[index]
        if seg.sender is not receiver:
            if listener and seg.acks_syn and not seg.syn:
                # The sender acknowledges the receiver's SYN-ACK, which the capture missed:
                # the receiver got the SYN before that.
                return (index - 1, False), False
            if _bare(seg, kind) and not _first(seg, kind):
                again = index
            elif kind == _KIND_FIN and taken < 0 and seg.acks_fin and receiver.sent_fin:
                taken = index
            continue
        if seg.rst:
            # It reset the connection instead (a RST's ack shows no receipt), unless the
            # sender tries its SYN again: then that one is the SYN to get.
            retry = _sends_after(window, index, sender) if kind == _KIND_SYN else -1
            if retry < 0 or not window[retry].syn:
                return None, False
            last = retry
            continue
        if seg.acks_fin if kind == _KIND_FIN else seg.acks_syn:
            if at_once:
                return (max(last, again), False), False
            # A receiver's segment missing before this one may be its own FIN, captured
            # later: it stays open while such a gap does.
            open_gap = kind == _KIND_FIN and seg.gap
            if kind == _KIND_FIN:
                late = _late_fin(window, index, receiver)
                if late >= 0:
                    return (late, False), False
            if created < taken < index and again < 0:
                # One path delivers in order: the FIN came before the sender's later
                # segment that the receiver took at once (the ACK of its own FIN).
                return (max(last, taken - 1), False), open_gap
            return (index, True), open_gap
        if _bare(seg, kind):
            if not _first(seg, kind) and own >= 0:
                cut = own
            own = index
        if seg.has_ack or (kind == _KIND_SYN and seg.syn):
            last = index  # sent without acknowledging it: it had not got it yet
    if not at_once or max(created, again) < cut:
        return None, True  # (on loopback: every copy so far was lost; the next decides)
    return (max(last, again), False), True


def _bare(seg: _Seg, kind: int) -> bool:
    """Whether *seg* carries a FIN, or a SYN without an ACK (by *kind*)."""
    return seg.fin if kind == _KIND_FIN else seg.syn and not seg.has_ack


def _first(seg: _Seg, kind: int) -> bool:
    """Whether *seg*'s FIN or SYN (by *kind*) is its sender's first, not a copy."""
    return seg.new_fin if kind == _KIND_FIN else seg.new_syn


_MISSING_SYN_NOTE: Final = {
    True: "the capture starts at the SYN-ACK (the SYN it answers was not captured): the "
          "client is taken to be in SYN_SENT and the server in SYN_RECEIVED, as the SYN-ACK "
          "implies",
    False: "the server's SYN-ACK was not captured: the client's ACK of it shows that the "
           "server answered its SYN and that the client got the answer",
}


def _rst_acceptable(sender: Endpoint, receiver: Endpoint, seq: int, ack: int,
                    has_ack: bool, flow: Flow | None) -> bool:
    """Whether *receiver* accepts a RST from *sender* (RFC 9293 §3.10.7.3).

    In SYN-SENT (it sent a SYN, the sender none) only a RST whose ack acknowledges that
    SYN (ISS < SEG.ACK =< SND.NXT).  Synchronized, one in the window: RCV.NXT =< SEG.SEQ
    < RCV.NXT + RCV.WND.  A path delivers in order, so RCV.NXT is the sender's snd.nxt
    (all it sent arrived before the RST), or the receiver's last ack when that is
    higher; RCV.WND is the receiver's last window, scaled when the SYNs said how.  A RST
    from a side that has sent nothing yet cannot be judged, and is accepted.
    """
    if receiver.sent_syn and not receiver.sent_synack and not (sender.sent_syn
                                                              or sender.sent_synack):
        return (has_ack and receiver.isn is not None and seq_lt(receiver.isn, ack)
                and (receiver.nxt is None or seq_le(ack, receiver.nxt)))
    rcv_nxt = sender.nxt
    if rcv_nxt is None or (receiver.last_ack is not None
                           and seq_lt(rcv_nxt, receiver.last_ack)):
        rcv_nxt = receiver.last_ack
    if rcv_nxt is None:
        return True
    wnd = HALF
    if flow is not None and flow.window != NO_WINDOW:
        wnd = flow.window << max(flow.win_scale, 0)
    return seq == rcv_nxt or (seq_le(rcv_nxt, seq) and (seq - rcv_nxt) % MOD < wnd)


def _late_fin(window: list[_Seg], index: int, who: Endpoint) -> int:
    """The index of *who*'s first FIN after *index* whose ack does not cover the peer's
    FIN, though *who*'s segment at *index* acknowledged it: that FIN was sent first (its
    ack says it had not got the peer's FIN yet) and passed the capture point late,
    reordered on the way.  *who* got the peer's FIN after sending it.  -1 if none."""
    for later in range(index + 1, len(window)):
        seg = window[later]
        if seg.sender is who and seg.new_fin and not seg.acks_fin:
            return later
    return -1


def _sends_after(window: list[_Seg], index: int, who: Endpoint) -> int:
    """The index of *who*'s first segment after *index* in *window*, or -1."""
    for later in range(index + 1, len(window)):
        if window[later].sender is who:
            return later
    return -1


def _corrections(old: Event, new: Event) -> list[str]:
    """Plain-language corrections of an earlier event's states."""
    before = old.states if old.sender == new.sender else old.states[::-1]
    lines = []
    for role, was, now in zip((CLIENT, SERVER), before, new.states, strict=True):
        if was is not None and was is not now:
            now_text = now.value if now is not None else "without a socket"
            lines.append(f"correction to frame {old.frame}: the {role} was {now_text} after "
                         f"it, not {was.value}")
    return lines
