"""TCP analysis with Wireshark's rules and names (packet-tcp.c, tcp_analyze_sequence_number).

``TcpAnalyzer.segment`` looks at one segment in the context of its connection and
returns the findings Wireshark would flag on it, each with the numbers that met the
rule (SPEC §4): retransmission, fast_retransmission, spurious_retransmission,
out_of_order, lost_segment, ack_lost_segment, duplicate_ack, zero_window,
zero_window_probe, zero_window_probe_ack, window_update, window_full, keep_alive,
keep_alive_ack, reused_ports, and TCP Fast Open's tfo_syn, tfo_ack and tfo_ignored
(RFC 7413): every tcp.analysis flag of Wireshark 4.0 that marks a segment.

The reference is Wireshark 4.0 (the tshark tests/conformance/test_analysis_vs_tshark.py compares
with) with its default preferences: sequence analysis on, relative sequence numbers,
fast retransmission checked before out-of-order, and window scaling "not known" unless
the SYNs show it.  Without the SYNs the shift is unknown, so window_full, whose edge
needs it, is never reported; zero_window needs no scaling and still is.  The rules,
their order and the way one stops the others are Wireshark's: the User's Guide
summarises them (ChAdvTCPAnalysis), packet-tcp.c is the fine print.  A segment is at
most one of retransmission, fast retransmission, spurious retransmission and
out-of-order (tshark shows the retransmission item beside the fast and the spurious
kind; that item is not repeated here).

What Wireshark remembers per direction (tcp_flow_t) is a ``Flow``; the two flows and the
handshake round-trip time are a ``ConnectionAnalysis``, kept on the connection record
(``TcpConnection.analysis_state``), so the memory goes when the tracker forgets the
connection.  That is also where this differs from Wireshark, which never forgets: a
connection the tracker retired (quiet for its linger time, or evicted) starts afresh,
and a SYN reusing its ports is not flagged reused_ports.  Not followed: MPTCP's
tolerance of duplicate ACKs that carry new MPTCP options.  Pure: no IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from capdissect.addresses import dotted
from capdissect.dissect.tcp import ACK, FIN, RST, SYN
from capdissect.dissect.tcp_options import (
    EXPERIMENT2,
    FASTOPEN,
    TFO_EXID,
    WSCALE,
    Experimental,
    FastOpen,
    WindowScale,
    decode_option,
)

if TYPE_CHECKING:
    from capdissect.dissect.tcp import TcpHeader
    from capdissect.dissect.tcp_options import Options

MOD: Final = 1 << 32
HALF: Final = 1 << 31

RETRANSMISSION: Final = "retransmission"
FAST_RETRANSMISSION: Final = "fast_retransmission"
SPURIOUS_RETRANSMISSION: Final = "spurious_retransmission"
OUT_OF_ORDER: Final = "out_of_order"
LOST_SEGMENT: Final = "lost_segment"
ACK_LOST_SEGMENT: Final = "ack_lost_segment"
DUPLICATE_ACK: Final = "duplicate_ack"
ZERO_WINDOW: Final = "zero_window"
ZERO_WINDOW_PROBE: Final = "zero_window_probe"
WINDOW_UPDATE: Final = "window_update"
WINDOW_FULL: Final = "window_full"
KEEP_ALIVE: Final = "keep_alive"
KEEP_ALIVE_ACK: Final = "keep_alive_ack"
ZERO_WINDOW_PROBE_ACK: Final = "zero_window_probe_ack"
REUSED_PORTS: Final = "reused_ports"
TFO_SYN: Final = "tfo_syn"
TFO_ACK: Final = "tfo_ack"
TFO_IGNORED: Final = "tfo_ignored"

NAMES: Final = (RETRANSMISSION, FAST_RETRANSMISSION, SPURIOUS_RETRANSMISSION, OUT_OF_ORDER,
                LOST_SEGMENT, ACK_LOST_SEGMENT, DUPLICATE_ACK, ZERO_WINDOW, ZERO_WINDOW_PROBE,
                ZERO_WINDOW_PROBE_ACK, WINDOW_UPDATE, WINDOW_FULL, KEEP_ALIVE, KEEP_ALIVE_ACK,
                REUSED_PORTS, TFO_SYN, TFO_ACK, TFO_IGNORED)

# Window scaling as packet-tcp.c keeps it per direction: a shift (0..14), or one of these.
WS_UNKNOWN: Final = -1  # no SYN seen: the shift is unknown (tcp.default_window_scaling)
WS_NONE: Final = -2  # the SYNs were seen and did not both offer it: windows are unscaled
MAX_SHIFT: Final = 14  # RFC 7323 §2.3: a larger shift is taken as 14
NO_WINDOW: Final = 0xFFFFFFFF  # no window field seen yet (packet-tcp.c: G_MAXUINT32)

FAST_RETRANSMISSION_US: Final = 20_000  # within 20 ms of the last duplicate ACK
OUT_OF_ORDER_US: Final = 3_000  # ... or the handshake RTT when it is known
NO_DATA_FLAGS: Final = SYN | FIN | RST  # segments never taken for ACK-only events
_SYN_ACK: Final = SYN | ACK


class Finding(NamedTuple):
    """An analysis finding on a segment, with the numbers that met the rule."""

    name: str
    why: str


class Sender(Protocol):
    """What the analysis needs of an endpoint: its address and port; the object itself
    names the flow it sends (the tracker's ``tcp.Endpoint``)."""

    addr: bytes
    port: int


@dataclass(slots=True)
class Flow:
    """One direction's memory: packet-tcp.c's tcp_flow_t and tcp_analyze_seq_flow_info_t.

    Sequence numbers are absolute.  As in packet-tcp.c, ``nextseq`` and
    ``maxseqtobeacked`` of 0 mean "not seen yet" (a real 0 is taken the same way).
    """

    # id() of the sending endpoint (the tracker's record, which lives as long as the
    # connection that holds this flow: a connection to itself has two endpoints with one
    # address), and its address for the findings' text.
    owner: int
    addr: bytes
    port: int
    base_seq: int | None = None  # relative numbers count from here
    win_scale: int = WS_UNKNOWN
    window: int = NO_WINDOW  # the last window field it sent, unscaled
    is_first_ack: bool = False  # a SYN was its last segment: its window is not scaled yet
    nextseq: int = 0  # highest sequence number sent + 1
    nextseq_frame: int = 0
    nextseq_ts: float = 0.0
    maxseqtobeacked: int = 0  # end of the data seen without a hole
    lastack: int = 0  # the ack field of its last segment
    lastack_ts: float = 0.0
    dupacknum: int = 0  # duplicate ACKs in a row (-1: reset by an "ACKed unseen" finding)
    lastnondupack: int = 0  # frame of its last ACK that was not a duplicate
    last_keep_alive: bool = False  # its last segment was a keep-alive ...
    last_zero_window_probe: bool = False  # ... or a zero window probe

    def rel(self, seq: int) -> int:
        return (seq - (self.base_seq or 0)) % MOD

    @property
    def name(self) -> str:
        """The sender as tcpdump writes it: 127.0.0.1.30002 (made when a finding needs it:
        a SYN flood's half-open connections never do)."""
        return dotted((self.addr, self.port))


@dataclass(slots=True)
class ConnectionAnalysis:
    """Wireshark's per-conversation analysis state (tcp_analysis): two flows and the RTT."""

    # The two flows, in the order their senders were first seen (two slots, not a dict:
    # a SYN flood holds 50,000 of these).  The tracker may swap client and server, not
    # the endpoints, so a flow stays with its sender.
    first: Flow | None = None
    second: Flow | None = None
    last_syn_ts: float | None = None  # ts_mru_syn: when the last SYN (without ACK) was seen
    first_rtt_us: int = 0  # ts_first_rtt: SYN to the first pure ACK; 0 = not known
    tfo_syn_data: int = 0  # bytes of data on a SYN with a Fast Open cookie; 0 = none seen

    @property
    def flows(self) -> list[Flow]:
        return [flow for flow in (self.first, self.second) if flow is not None]

    def find(self, ep: Sender) -> Flow | None:
        """The flow *ep* sends, if it has sent anything yet."""
        for flow in (self.first, self.second):
            if flow is not None and flow.owner == id(ep):
                return flow
        return None

    def flow(self, ep: Sender) -> Flow:
        flow = self.find(ep)
        if flow is None:
            flow = Flow(id(ep), ep.addr, ep.port)
            if self.first is None:
                self.first = flow
            else:
                self.second = flow
        return flow


class Seg:
    """The numbers of one segment that the rules look at (absolute, window unscaled).

    A plain class, not a NamedTuple: one is made per segment, and compiled code builds a
    native instance several times faster than a tuple subclass."""

    __slots__ = ("ack", "flags", "frame", "length", "seq", "ts", "window")

    def __init__(self, frame: int, ts: float, seq: int, ack: int, length: int, flags: int,
                 window: int) -> None:
        self.frame = frame
        self.ts = ts
        self.seq = seq
        self.ack = ack
        self.length = length
        self.flags = flags
        self.window = window

    @property
    def end(self) -> int:
        """The sequence number after the segment: data, plus one for SYN or FIN."""
        return (self.seq + self.length + (1 if self.flags & (SYN | FIN) else 0)) % MOD


# 32-bit sequence comparisons, exactly as packet-tcp.c's GT_SEQ/LT_SEQ/LE_SEQ macros.
def gt_seq(a: int, b: int) -> bool:
    return (b - a) % MOD >= HALF


def lt_seq(a: int, b: int) -> bool:
    return (a - b) % MOD >= HALF


def le_seq(a: int, b: int) -> bool:
    return a == b or lt_seq(a, b)


def elapsed_us(now: float, then: float) -> int:
    """Microseconds from *then* to *now*, exact for timestamps with microseconds.

    packet-tcp.c compares times in whole nanoseconds; capture timestamps as floats
    (about 1.7e9 s) are off by up to a quarter microsecond, enough to put a gap of
    exactly 20 ms on the wrong side of the fast retransmission bound.  Rounding the
    difference to whole microseconds undoes that for microsecond captures; a nanosecond
    capture can differ only within half a microsecond of a bound.
    """
    return round((now - then) * 1_000_000)


class TcpAnalyzer:
    """Wireshark's sequence analysis, fed one segment at a time in capture order."""

    def segment(self, state: ConnectionAnalysis, sender: Sender, receiver: Sender,
                seg: TcpHeader, length: int, ts: float, frame: int, *,
                reopens: bool = False) -> tuple[Finding, ...]:
        """The findings for *seg*, sent by *sender*, before the tracker updates state;
        *state* is the connection's memory.  *reopens*: the tracker started a new
        connection record for this SYN on the ports of an earlier one."""
        fwd = state.flow(sender)
        rev = state.flow(receiver)
        s = Seg(frame, ts, seg.seq, seg.ack, length, seg.flags, seg.window)
        found: list[Finding] = []
        if s.flags & SYN:
            _add(found, _reused_ports(reopens, fwd, s))
        analyze(state, fwd, rev, s, found)
        if s.flags & SYN:
            _add(found, _fast_open(state, fwd, rev, s, seg.options))
        _after_analysis(state, fwd, rev, s, seg.options)
        return tuple(found) if found else ()


def analyze(state: ConnectionAnalysis, fwd: Flow, rev: Flow, s: Seg,
            found: list[Finding]) -> None:
    """tcp_analyze_sequence_number: the checks in packet-tcp.c's order, then the memory."""
    # Relative numbers start at the SYN, else one before the first number seen; the
    # peer's from the first ACK field (its ISN + 1) until it sends its own.
    if fwd.base_seq is None:
        fwd.base_seq = s.seq if s.flags & SYN else (s.seq - 1) % MOD
    if rev.base_seq is None and s.flags & ACK:
        rev.base_seq = (s.ack - 1) % MOD
    probe = s.length == 1 and s.seq == fwd.nextseq and rev.window == 0
    keep_alive = False
    if probe:
        # packet-tcp.c: a zero window probe skips every other check on the sending side.
        found.append(_zero_window_probe(fwd, rev, s))
    else:
        keep_alive = _sender_checks(fwd, rev, s, found)
    if s.ack != fwd.lastack:  # a new ack number restarts the duplicate count
        fwd.lastnondupack = s.frame
        fwd.dupacknum = 0
    if rev.maxseqtobeacked and s.flags & ACK and gt_seq(s.ack, rev.maxseqtobeacked):
        _add(found, _ack_lost_segment(rev, s))
    # packet-tcp.c: only data, SYN or FIN can be retransmitted, and "a simple KeepAlive
    # is not a retransmission".
    if (s.length or s.flags & (SYN | FIN)) and not keep_alive:
        _add(found, _retransmission(state, fwd, rev, s))
    _remember(fwd, s, keep_alive, probe)


def _add(found: list[Finding], finding: Finding | None) -> None:
    if finding is not None:
        found.append(finding)


def _sender_checks(fwd: Flow, rev: Flow, s: Seg, found: list[Finding]) -> bool:
    """Zero window, lost segment, keep-alive, window update/full, duplicate ACK.

    Returns whether the segment is a keep-alive (it is then no retransmission).
    """
    plain = not s.flags & NO_DATA_FLAGS
    if s.window == 0 and plain:
        # packet-tcp.c: a zero window is window 0 on a segment without SYN, FIN or RST.
        found.append(Finding(ZERO_WINDOW, f"window 0 from {fwd.name}"))
    if fwd.nextseq and gt_seq(s.seq, fwd.nextseq) and not s.flags & RST:
        # packet-tcp.c: beyond the next expected number, a segment was not captured.
        gap = (s.seq - fwd.nextseq) % MOD
        found.append(Finding(LOST_SEGMENT, f"seq {fwd.rel(s.seq)} beyond next expected "
                                           f"{fwd.rel(fwd.nextseq)}: {gap} bytes not captured"))
    keep_alive = (s.length <= 1 and s.seq == (fwd.nextseq - 1) % MOD and plain)
    if keep_alive:
        # packet-tcp.c: 0 or 1 byte one before the next expected number is a keep-alive.
        size = "1 byte" if s.length else "no data"
        found.append(Finding(KEEP_ALIVE, f"seq {fwd.rel(s.seq)} is one below next expected "
                                         f"{fwd.rel(fwd.nextseq)}, with {size}"))
    same_numbers = (s.length == 0 and plain and s.seq == fwd.nextseq and s.ack == fwd.lastack)
    if same_numbers and s.window and s.window != fwd.window:
        # packet-tcp.c: no data, same seq and ack as before, a new non-zero window.
        found.append(Finding(WINDOW_UPDATE, f"window {s.window} (was {fwd.window}) "
                                            f"from {fwd.name}, seq and ack unchanged"))
    if s.length and rev.win_scale != WS_UNKNOWN and plain:
        _add(found, _window_full(fwd, rev, s))
    if same_numbers and s.window == fwd.window:
        # packet-tcp.c: the ACK of a keep-alive or of a zero window probe is no duplicate,
        # and is flagged as what it answers.
        if s.window and rev.last_keep_alive:
            found.append(Finding(KEEP_ALIVE_ACK, f"answers the keep-alive of {rev.name}: "
                                                 "seq, ack and window unchanged"))
            return keep_alive
        if not s.window and rev.last_zero_window_probe:
            found.append(Finding(ZERO_WINDOW_PROBE_ACK, f"answers the zero window probe of "
                                                        f"{rev.name}: window still 0"))
            return keep_alive
        if s.window:
            found.append(_duplicate_ack(fwd, s))
    return keep_alive


def _zero_window_probe(fwd: Flow, rev: Flow, s: Seg) -> Finding:
    # packet-tcp.c: one byte at the next expected number while the peer's window is 0.
    return Finding(ZERO_WINDOW_PROBE, f"1 byte at seq {fwd.rel(s.seq)} while "
                                      f"{rev.name} advertises window 0")


def _window_full(fwd: Flow, rev: Flow, s: Seg) -> Finding | None:
    # packet-tcp.c: data that ends exactly at the edge of the window the peer offered
    # (its last ack + its window, scaled), only when the peer's scaling is known.  The
    # window a SYN carries is never scaled, so neither is the peer's until its first ACK.
    # The caller checked the rest: data, no SYN/FIN/RST, the peer's scaling known.
    shift = 0 if rev.is_first_ack or rev.win_scale == WS_NONE else rev.win_scale
    window = (rev.window << shift) % MOD
    edge = (rev.lastack + window) % MOD
    if (s.seq + s.length) % MOD != edge:
        return None
    return Finding(WINDOW_FULL, f"seq {fwd.rel(s.seq)}:{fwd.rel(edge)} fills the window "
                                f"{rev.name} offered (ack {fwd.rel(rev.lastack)} + {window})")


def _duplicate_ack(fwd: Flow, s: Seg) -> Finding:
    # packet-tcp.c: no data, same window, seq and ack as this side's previous segment.
    # A count reset by an "ACKed unseen segment" finding (-1) restarts at 1.
    fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
    return Finding(DUPLICATE_ACK, f"dup ack #{fwd.dupacknum} of frame {fwd.lastnondupack}")


def _ack_lost_segment(rev: Flow, s: Seg) -> Finding | None:
    # packet-tcp.c: an ACK beyond the end of the peer's data seen without a hole (the
    # caller checked that) means the capture missed some of that data.  When the peer
    # has sent more since, the bound moves up to its next expected number, so one hole
    # is reported once.  When it cannot move, the report is kept to one per new ack the
    # peer sends: the peer's duplicate count is set to -1 and a new ack number from the
    # peer resets it to 0.  "Below" is a sequence-number compare, as tshark 4.0 does it
    # after the numbers wrap (zeek ftp/bigtransfer.pcap, frames 57, 60, 64 and 70); later
    # Wireshark versions turned the test around.
    seen = rev.maxseqtobeacked
    if lt_seq(rev.maxseqtobeacked, rev.nextseq):
        rev.maxseqtobeacked = rev.nextseq
    else:
        report = rev.dupacknum == 0
        rev.dupacknum = -1
        if not report:
            return None
    return Finding(ACK_LOST_SEGMENT, f"ack {rev.rel(s.ack)} beyond seq {rev.rel(seen)}, "
                                     f"the end of what was seen from {rev.name}")


def _retransmission(state: ConnectionAnalysis, fwd: Flow, rev: Flow,
                    s: Seg) -> Finding | None:
    """One of spurious, fast, out-of-order or plain retransmission, in packet-tcp.c's order."""
    not_advanced = bool(fwd.nextseq) and lt_seq(s.seq, fwd.nextseq)
    if s.length > 1 and (fwd.nextseq - 1) % MOD == s.seq:
        # packet-tcp.c: new data right after a byte at next-1 (a zero window probe) is
        # not a retransmission.
        not_advanced = False
    if s.length > 0 and rev.lastack and le_seq((s.seq + s.length) % MOD, rev.lastack):
        # packet-tcp.c: data the receiver had already acknowledged.
        return Finding(SPURIOUS_RETRANSMISSION, f"{_span(fwd, s)} already acked by "
                                                f"{rev.name} (ack {fwd.rel(rev.lastack)})")
    if not not_advanced:
        return None
    span = _span(fwd, s)
    since_dup = elapsed_us(s.ts, rev.lastack_ts)
    if rev.dupacknum >= 2 and rev.lastack == s.seq and 0 <= since_dup < FAST_RETRANSMISSION_US:
        # packet-tcp.c: the number two or more duplicate ACKs asked for, within 20 ms of
        # the last (tcp.fastrt_supersedes_ooo, on by default: before out-of-order).
        return Finding(FAST_RETRANSMISSION,
                       f"{span} asked for by {rev.dupacknum} dup acks, "
                       f"{since_dup / 1000:.1f} ms after the last")
    since_high = elapsed_us(s.ts, fwd.nextseq_ts)
    threshold = state.first_rtt_us if state.first_rtt_us > 0 else OUT_OF_ORDER_US
    if 0 <= since_high < threshold and fwd.nextseq != s.end:
        # packet-tcp.c: below the highest number sent, sooner after it than the handshake
        # RTT (3 ms when unknown), and not ending where that left off.
        basis = "RTT" if state.first_rtt_us > 0 else "default"
        return Finding(OUT_OF_ORDER,
                       f"{span} below next expected {fwd.rel(fwd.nextseq)}, "
                       f"{since_high / 1000:.3f} ms after frame {fwd.nextseq_frame} "
                       f"(under the {basis} {threshold / 1000:.3f} ms)")
    return Finding(RETRANSMISSION, f"{span} below next expected {fwd.rel(fwd.nextseq)} "
                                   f"(reached in frame {fwd.nextseq_frame})")


def _span(fwd: Flow, s: Seg) -> str:
    return f"seq {fwd.rel(s.seq)}:{fwd.rel(s.seq + s.length)}"


def _remember(fwd: Flow, s: Seg, keep_alive: bool, probe: bool) -> None:
    """What this segment leaves for the next ones (end of tcp_analyze_sequence_number)."""
    end = s.end
    # A zero window probe's byte does not move the next expected number.
    if (gt_seq(end, fwd.nextseq) or not fwd.nextseq) and not probe:
        fwd.nextseq = end
        fwd.nextseq_frame = s.frame
        fwd.nextseq_ts = s.ts
    if (s.seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked) and not probe:
        fwd.maxseqtobeacked = fwd.nextseq
    fwd.window = s.window
    fwd.lastack = s.ack
    fwd.lastack_ts = s.ts
    fwd.last_keep_alive = keep_alive
    fwd.last_zero_window_probe = probe


def _reused_ports(reopens: bool, fwd: Flow, s: Seg) -> Finding | None:
    # packet-tcp.c (dissect_tcp): a SYN whose number differs from the one this side
    # started with opens a new conversation on the same ports; the tracker has already
    # started a new connection record for it.  A SYN-ACK with a new number is flagged
    # too, and its number becomes the side's base.
    kind = s.flags & _SYN_ACK
    if kind == SYN and reopens:
        return Finding(REUSED_PORTS, f"SYN seq {s.seq} from {fwd.name} opens a new "
                                     f"connection on the ports of an earlier one")
    if kind == _SYN_ACK and fwd.base_seq is not None and s.seq != fwd.base_seq:
        old, fwd.base_seq = fwd.base_seq, s.seq
        return Finding(REUSED_PORTS, f"SYN-ACK seq {s.seq} from {fwd.name} differs from "
                                     f"the {old} it started with")
    return None


def _fast_open(state: ConnectionAnalysis, fwd: Flow, rev: Flow, s: Seg,
               options: Options) -> Finding | None:
    """TCP Fast Open (RFC 7413), as packet-tcp.c flags it on a SYN and its SYN-ACK."""
    if s.flags & ACK:
        # packet-tcp.c: a SYN-ACK that acks more than the SYN took the data the SYN
        # carried; one that acks only the SYN after a SYN with a cookie and data did not.
        acked = rev.rel(s.ack)
        if acked > 1:
            return Finding(TFO_ACK, f"SYN-ACK acks {acked - 1} bytes of the SYN's data "
                                    f"(ack {acked}): {fwd.name} accepted Fast Open")
        if state.tfo_syn_data:
            return Finding(TFO_IGNORED, f"SYN-ACK acks only the SYN (ack {acked}): "
                                        f"{fwd.name} ignored the {state.tfo_syn_data} "
                                        "bytes the SYN carried")
        return None
    cookie = fast_open_cookie(options)
    if not cookie:
        return None
    if s.length:
        state.tfo_syn_data = s.length
    data = f" and {s.length} bytes of data" if s.length else ", no data"
    return Finding(TFO_SYN, f"SYN from {fwd.name} with a {len(cookie)}-byte Fast Open "
                            f"cookie{data}")


def fast_open_cookie(options: Options) -> bytes:
    """The cookie of a Fast Open option (kind 34, or kind 254 with its magic number);
    empty for a cookie request or when there is none."""
    for option in options.items:
        if option.kind in (FASTOPEN, EXPERIMENT2):
            record = decode_option(option)
            if isinstance(record, FastOpen):
                return record.cookie
            if isinstance(record, Experimental) and record.exid == TFO_EXID:
                return record.data
    return b""


def _after_analysis(state: ConnectionAnalysis, fwd: Flow, rev: Flow, s: Seg,
                    options: Options) -> None:
    """What dissect_tcp learns after the analysis: handshake RTT, window scaling."""
    flags = s.flags
    if flags & SYN:
        if not flags & ACK:
            state.last_syn_ts = s.ts
        fwd.is_first_ack = True
    elif flags & ACK:  # a pure ACK (no SYN)
        if state.last_syn_ts is not None and state.first_rtt_us == 0:
            state.first_rtt_us = elapsed_us(s.ts, state.last_syn_ts)
        fwd.is_first_ack = False
    shift = window_shift(options)
    if shift is not None:
        fwd.win_scale = min(shift, MAX_SHIFT)  # packet-tcp.c takes it from any segment
    if flags & SYN:
        _verify_window_scaling(fwd, rev, bool(flags & ACK))


def _verify_window_scaling(fwd: Flow, rev: Flow, synack: bool) -> None:
    # packet-tcp.c verify_tcp_window_scaling: scaling is used only when both SYNs offer
    # it.  A SYN without the option settles "unscaled" for both sides; a SYN-ACK with it
    # after a SYN without it stays unscaled.
    if fwd.win_scale == WS_UNKNOWN:
        fwd.win_scale = rev.win_scale = WS_NONE
    elif synack and rev.win_scale == WS_NONE:
        fwd.win_scale = WS_NONE


def window_shift(options: Options) -> int | None:
    """The shift of a well-formed window scale option (RFC 7323 §2.2), if there is one."""
    for option in options.items:
        if option.kind == WSCALE and option.length == 3:
            record = decode_option(option)
            if isinstance(record, WindowScale):
                return record.shift
    return None
