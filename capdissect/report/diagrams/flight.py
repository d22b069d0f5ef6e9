"""One TCP connection, segment by segment, as the graphs plot it: sequence numbers, acks,
windows, SACK blocks, and the round-trip time and bytes in flight by Wireshark's rules.

Wireshark 4.0 (packet-tcp.c, tcp_analyze_sequence_number) keeps per direction a list of
unacknowledged segments (``tcp_unacked_t``: seq, next seq, frame, time), at most 1000:

- a segment with data, SYN or FIN joins its sender's list;
- an ACK walks the other direction's list: a segment whose next seq equals the ack is
  acknowledged by it, and its time to this ACK is ``tcp.analysis.ack_rtt``; one the ack
  covers in part is trimmed to the unacked part; one below the ack is dropped;
- after that, a segment with data reports ``tcp.analysis.bytes_in_flight``: the span from
  the lowest seq to the highest next seq of its sender's list, relative to the sender's
  base (the SYN's seq, or one less than the first seq seen), less the bytes the peer's
  last SACK blocks cover and less one for a SYN or FIN, when above 0 (and below 2e9);
  none from a segment flagged "previous segment not captured" until the peer sends one.

Pure: packets in, samples out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import ACK, FIN, SYN, TcpHeader
from capdissect.dissect.tcp_options import SACK, Sack, decode_option
from capdissect.errors import NotTcp
from capdissect.tracking.analysis import LOST_SEGMENT, gt_seq, le_seq, window_shift
from capdissect.tracking.tcp import CLIENT, SERVER, TcpConnection, Update
from capdissect.tracking.tracker import Tracker

MOD: Final = 1 << 32
MAX_UNACKED: Final = 1000  # TCP_MAX_UNACKED_SEGMENTS


class Sample(NamedTuple):
    frame: int
    ts: float  # seconds since the connection's first packet
    sender: str  # CLIENT or SERVER
    seq: int  # relative to the sender's base (Wireshark's relative numbers)
    ack: int | None  # relative to the receiver's base; None without the ACK flag
    length: int
    flags: str  # tcpdump's letters
    window: int  # the advertised window in bytes (scaled when the SYNs showed the scale)
    sacks: tuple[tuple[int, int], ...]  # SACK blocks, relative to the receiver's base
    retransmission: bool  # any of Wireshark's retransmission findings
    ack_rtt: float | None  # seconds from the segment this ack acknowledges exactly
    in_flight: int | None  # bytes in flight after this segment (segments with data)


@dataclass(slots=True)
class _Unacked:
    frame: int
    seq: int
    nextseq: int
    ts: float


@dataclass(slots=True)
class _Side:
    base: int | None = None
    shift: int | None = None  # window scale from its SYN; None: not known
    sacked: int = 0  # bytes its last segment's SACK blocks cover
    valid: bool = True  # valid_bif: no "previous segment not captured" since the peer spoke
    unacked: list[_Unacked] = field(default_factory=list)  # newest first, as Wireshark's


@dataclass(slots=True)
class FlightState:
    """Wireshark's unacked lists for the two directions of one connection."""

    sides: dict[str, _Side] = field(default_factory=lambda: {CLIENT: _Side(), SERVER: _Side()})

    def segment(self, sender: str, tcp: TcpHeader, seglen: int, ts: float, frame: int,
                sacks: tuple[tuple[int, int], ...] = (), lost: bool = False
                ) -> tuple[float | None, int | None]:
        """(ack_rtt, bytes_in_flight) of one segment with its SACK blocks (*lost*: Wireshark
        flags it "previous segment not captured"), and remember it."""
        fwd = self.sides[sender]
        rev = self.sides[SERVER if sender == CLIENT else CLIENT]
        rev.valid = True  # the peer's bytes in flight count again once this side speaks
        if lost:
            fwd.valid = False
        if fwd.base is None:
            fwd.base = tcp.seq if tcp.flags & SYN else (tcp.seq - 1) % MOD
        seq = tcp.seq
        if (seglen or tcp.flags & (SYN | FIN)) and len(fwd.unacked) < MAX_UNACKED:
            nextseq = (seq + seglen + (1 if tcp.flags & (SYN | FIN) else 0)) % MOD
            fwd.unacked.insert(0, _Unacked(frame, seq, nextseq, ts))
        rtt = _acknowledge(rev, tcp.ack, ts)  # the ack field, even without the ACK flag
        flight = None
        if seglen and fwd.unacked and fwd.valid:
            first = min((u.seq - fwd.base) % MOD for u in fwd.unacked)
            last = max((u.nextseq - fwd.base) % MOD for u in fwd.unacked)
            # Less what the peer's last SACK blocks say it holds already, and less the
            # number a FIN takes (it is no byte; tshark 4.0 leaves it out here too).
            span = last - first - rev.sacked - (1 if tcp.flags & (SYN | FIN) else 0)
            if 0 < span < 2_000_000_000:
                flight = span
        fwd.sacked = sum((right - left) % MOD for left, right in sacks)
        return rtt, flight


def _acknowledge(rev: _Side, ack: int, ts: float) -> float | None:
    rtt = None
    kept = []
    for u in rev.unacked:
        if ack == u.nextseq:
            rtt = ts - u.ts
            continue
        if gt_seq(ack, u.seq) and le_seq(ack, u.nextseq):
            u.seq = ack  # acknowledged in part
        elif gt_seq(u.nextseq, ack):
            kept.append(u)
            continue
        else:
            continue  # old: acknowledged
        kept.append(u)
    rev.unacked = kept
    return rtt


_RETRANSMISSIONS: Final = frozenset({"retransmission", "fast_retransmission",
                                     "spurious_retransmission"})


def samples(packets: Iterable[Packet], conn: int | None, name: str = "capture"
            ) -> tuple[TcpConnection, list[Sample]]:
    """Connection *conn*'s segments as samples (numbered as ``flows`` does; None: the
    first TCP connection)."""
    every = all_samples(packets, conn)
    if not every:
        raise NotTcp(name, conn or 1)
    return every[conn] if conn is not None else next(iter(every.values()))


def all_samples(packets: Iterable[Packet], only: int | None = None
                ) -> dict[int, tuple[TcpConnection, list[Sample]]]:
    """Every TCP connection's samples (or connection *only*'s), in one pass."""
    tracker = Tracker(keep_events=False)
    found: dict[int, tuple[TcpConnection, list[Sample]]] = {}
    states: dict[int, tuple[FlightState, float]] = {}
    for frame, pkt in enumerate(packets, 1):
        seen = tracker.feed(frame, pkt)
        tracker.drain()
        if not isinstance(seen, Update) or only not in (None, seen.connection.id):
            continue
        tcp = pkt.transport
        assert isinstance(tcp, TcpHeader)
        conn = seen.connection.id
        if conn not in found:
            found[conn] = (seen.connection, [])
            states[conn] = (FlightState(), pkt.raw.ts)
        state, t0 = states[conn]
        found[conn][1].append(_sample(state, frame, pkt, tcp, seen, t0))
    return found


def _sample(state: FlightState, frame: int, pkt: Packet, tcp: TcpHeader, seen: Update,
            t0: float) -> Sample:
    event = seen.event
    me = state.sides[event.sender]
    peer = state.sides[SERVER if event.sender == CLIENT else CLIENT]
    if tcp.flags & SYN:
        me.shift = window_shift(tcp.options)
    blocks = tuple(block for option in tcp.options.items if option.kind == SACK
                   for decoded in [decode_option(option)] if isinstance(decoded, Sack)
                   for block in decoded.blocks)
    rtt, flight = state.segment(event.sender, tcp, pkt.payload_len, pkt.raw.ts, frame,
                                blocks, any(f.name == LOST_SEGMENT for f in event.analysis))
    both = me.shift is not None and peer.shift is not None
    window = tcp.window if tcp.flags & SYN or not both else tcp.window << (me.shift or 0)
    base = peer.base or 0
    assert me.base is not None
    return Sample(
        frame, pkt.raw.ts - t0, event.sender, (tcp.seq - me.base) % MOD,
        (tcp.ack - base) % MOD if tcp.flags & ACK else None, pkt.payload_len, event.flags,
        window, tuple(((left - base) % MOD, (right - base) % MOD) for left, right in blocks),
        any(f.name in _RETRANSMISSIONS for f in event.analysis), rtt, flight)
