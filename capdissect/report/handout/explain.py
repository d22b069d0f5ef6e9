"""The handout's words: what each packet means and the seq/ack ledger.

Everything here is computed from the tracker's records of the real capture, so the
words cannot disagree with the ladder or with ``read``'s annotations.  The sequence and
acknowledgement reasoning follows RFC 9293 §3.4: every data byte takes one sequence
number, and so do SYN and FIN (which is why the handshake's ack is ISN + 1 and a FIN is
acknowledged with its number + 1); an ACK names the next number its sender expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

from capdissect.addresses import endpoint
from capdissect.dissect.icmp import IcmpHeader
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, URG, TcpHeader
from capdissect.dissect.tcp_options import (
    SACK,
    EndOfList,
    Mss,
    NoOperation,
    SackPermitted,
    TcpOption,
    Timestamps,
    WindowScale,
    decode_option,
)
from capdissect.dissect.udp import UdpHeader
from capdissect.tracking.eventlog import Segment
from capdissect.tracking.tcp import CLIENT, SERVER, Event, Update
from capdissect.tracking.tracker import IcmpUpdate, Observation, UdpUpdate

if TYPE_CHECKING:
    pass

PSH: Final = 0x08
ECE: Final = 0x40
CWR: Final = 0x80
MOD: Final = 1 << 32
LOOPBACK_MSS: Final = 65495  # loopback MTU 65536 minus 20 (IPv4) and 20 (TCP) header bytes

FLAG_MEANINGS: Final = (
    (SYN, "SYN", "synchronize: this segment carries the sender's initial sequence number "
     "(ISN) and itself takes one sequence number"),
    (ACK, "ACK", "the acknowledgement field is valid: it names the next sequence number the "
     "sender expects from its peer"),
    (PSH, "PSH", "push: the receiver should hand the data to the application now"),
    (FIN, "FIN", "finish: the sender has no more data to send; a FIN takes one sequence "
     "number, like a byte"),
    (RST, "RST", "reset: abort the connection at once; nothing answers a reset"),
    (URG, "URG", "urgent: the urgent pointer field is valid"),
    (ECE, "ECE", "ECN echo: the network signalled congestion (RFC 3168)"),
    (CWR, "CWR", "congestion window reduced: the sender slowed down (RFC 3168)"),
)


@dataclass(slots=True)
class _Side:
    """What the explainer remembers of one endpoint of one connection."""

    next_seq: int | None = None  # the next new relative sequence number it will send
    ends: dict[int, str] = field(default_factory=dict)  # relative end -> why it ends there
    wscale: int | None = None


@dataclass(slots=True)
class Explainer:
    """Words each packet, remembering per connection what earlier segments consumed."""

    _sides: dict[tuple[int, str], _Side] = field(default_factory=dict)
    _last_udp: dict[tuple[int, str], int] = field(default_factory=dict)

    def explain(self, frame: int, pkt: Packet, seen: Observation | None) -> list[str]:
        seg = pkt.transport
        if isinstance(seen, Update) and isinstance(seg, TcpHeader):
            return self._tcp(frame, seen, seg)
        if isinstance(seen, UdpUpdate) and isinstance(seg, UdpHeader):
            return _udp(seen, seg)
        if isinstance(seen, IcmpUpdate):
            return _icmp(seen, seg)
        if pkt.fragment:
            return ["A later fragment of an IP datagram: only the first fragment carries the "
                    "TCP or UDP header, so this piece cannot be followed on its own."]
        if pkt.error is not None:
            return [f"The packet is damaged or cut short: {pkt.error}."]
        return ["Not TCP, UDP or ICMP: outside this lesson."]

    # ----- TCP ---------------------------------------------------------------------------
    def _tcp(self, frame: int, update: Update, tcp: TcpHeader) -> list[str]:
        conn, event = update.connection, update.event
        me = self._sides.setdefault((conn.id, event.sender), _Side())
        peer_role = SERVER if event.sender == CLIENT else CLIENT
        peer = self._sides.setdefault((conn.id, peer_role), _Side())
        sender = conn.endpoint(event.sender)
        receiver = conn.endpoint(peer_role)
        lines = [f"{_phase(event)} The {event.sender} {endpoint((sender.addr, sender.port))} "
                 f"sends to the {peer_role} {endpoint((receiver.addr, receiver.port))}."]
        lines += [f"Flag {name}: {meaning}." for bit, name, meaning in FLAG_MEANINGS
                  if tcp.flags & bit]
        options = _options(tcp.options.items)
        if options:
            lines.append("Options: " + "; ".join(options) + ".")
        lines.append(self._seq_line(frame, event, tcp, me))
        if event.ack is not None and tcp.flags & ACK:
            lines.append(_ack_line(event, peer_role, peer))
        lines.append(self._window_line(event, tcp, me, peer))
        return lines

    def _seq_line(self, frame: int, event: Event, tcp: TcpHeader, me: _Side) -> str:
        who = event.sender
        seq = event.seq if event.seq is not None else 0
        used = event.length + bool(tcp.flags & SYN) + bool(tcp.flags & FIN)
        end = (seq + used) % MOD
        if tcp.flags & SYN:
            me.wscale = _wscale(tcp.options.items)
            text = (f"seq {tcp.seq} is the {who}'s initial sequence number (ISN), chosen at "
                    "random; tcpdump counts later numbers from it, so this SYN is number 0 and "
                    f"the {who}'s first data byte will be number 1.")
            me.ends[end] = f"the {who}'s SYN in packet {frame} took number {seq}"
        elif used == 0:
            text = ("A segment without data, SYN or FIN takes no sequence number: its seq only "
                    f"says where the {who}'s next byte will be ({seq}), so tcpdump leaves it out.")
        else:
            what = []
            if event.length:
                what.append(f"bytes {seq} to {(seq + event.length - 1) % MOD} "
                            f"({event.length} byte{'s' if event.length != 1 else ''})")
            if tcp.flags & FIN:
                what.append(f"the FIN as number {(seq + event.length) % MOD}")
            text = f"seq {seq}: this segment carries {' and '.join(what)}."
            if me.next_seq is not None and seq != me.next_seq:
                if (me.next_seq - seq) % MOD < (1 << 31):
                    text += (f" The {who} had already sent up to {me.next_seq - 1}: this repeats "
                             "bytes sent before (a retransmission).")
                else:
                    text += (f" The {who}'s next new number was {me.next_seq}: the bytes before "
                             "this one are missing from the capture.")
            elif me.next_seq is not None:
                text += f" It starts where the {who}'s previous bytes ended."
            because = "its FIN took" if tcp.flags & FIN else "its last byte was"
            me.ends[end] = (f"packet {frame} carried {' and '.join(what)}, so {because} "
                            f"{(end - 1) % MOD}")
        if me.next_seq is None or (end - me.next_seq) % MOD < (1 << 31):
            me.next_seq = end
        return text

    def _window_line(self, event: Event, tcp: TcpHeader, me: _Side, peer: _Side) -> str:
        scaled = (not tcp.flags & SYN and me.wscale is not None and peer.wscale is not None)
        if scaled and me.wscale is not None:
            size = tcp.window << me.wscale
            return (f"win {tcp.window}: the {event.sender} can take {size} more bytes "
                    f"({tcp.window} x 2^{me.wscale}, the window scale it announced in its SYN).")
        return (f"win {tcp.window}: the {event.sender} can take {tcp.window} more bytes "
                "(the window in a SYN is never scaled).")


def _phase(event: Event) -> str:
    steps = {"SYN": "step 1 of 3", "SYN-ACK": "step 2 of 3", "ACK": "step 3 of 3"}
    if event.phase == "handshake":
        return f"Phase: handshake, {steps.get(event.label, event.label)} ({event.label})."
    if event.phase == "data":
        return ("Phase: data transfer." if event.length else
                "Phase: data transfer (an acknowledgement).")
    if event.phase == "teardown":
        return f"Phase: teardown ({event.label})."
    return "Phase: reset."


def _ack_line(event: Event, peer_role: str, peer: _Side) -> str:
    ack = event.ack if event.ack is not None else 0
    why = peer.ends.get(ack)
    text = (f"ack {ack}: the {event.sender} has received everything the {peer_role} sent "
            f"before number {ack}, and {ack} is the next number it expects")
    if why is not None:
        return f"{text}: {why}, so the next is {ack}."
    return text + "."


def _options(items: Iterable[TcpOption]) -> list[str]:
    words = []
    nops = 0
    for option in items:
        match decode_option(option):
            case NoOperation():
                nops += 1
            case EndOfList():
                pass
            case Mss(value) if len(option.data) == 2:
                note = (" (the loopback MTU, 65536, minus 40 bytes of IPv4 and TCP headers)"
                        if value == LOOPBACK_MSS else "")
                words.append(f"mss {value}: the largest segment the sender wants to receive"
                             f"{note}")
            case WindowScale(shift):
                words.append(f"wscale {shift}: from now on its window counts in units of "
                             f"2^{shift} = {1 << shift} bytes")
            case SackPermitted():
                words.append("sackOK: the sender understands selective acknowledgements "
                             "(RFC 2018)")
            case Timestamps(tsval, tsecr) if len(option.data) == 8:
                words.append(f"TS val {tsval} ecr {tsecr}: the sender's clock and an echo "
                             "of the peer's last value, to time round trips (RFC 7323)")
            case _ if option.kind == SACK:  # its blocks or not, even too short for one
                words.append("sack: blocks of data received beyond a gap")
            case _:
                words.append(f"option kind {option.kind}")
    if nops:
        words.append(f"nop x{nops}: padding, so the next option starts on a 4-byte boundary")
    return words


def _wscale(items: Iterable[TcpOption]) -> int | None:
    for option in items:
        record = decode_option(option)
        if isinstance(record, WindowScale):
            return min(record.shift, 14)  # RFC 7323 §2.3: larger shifts count as 14
    return None


# ----- UDP and ICMP ----------------------------------------------------------------------
def _udp(update: UdpUpdate, udp: UdpHeader) -> list[str]:
    conv, datagram = update.conversation, update.datagram
    src, dst = (conv.a, conv.b) if datagram.sender == "a" else (conv.b, conv.a)
    lines = [f"A UDP datagram from {endpoint(src)} to {endpoint(dst)}: {datagram.length} bytes "
             f"of data; the UDP length field says {udp.length} = 8 bytes of header + "
             f"{max(udp.length - 8, 0)}."]
    if update.new:
        lines.append("No handshake came before it: UDP does not open connections. Compare "
                     "with TCP's SYN, SYN-ACK, ACK.")
    lines.append("No sequence number, no acknowledgement, no window, no state: if this "
                 "datagram is lost, UDP itself never notices or sends it again.")
    return lines


def _icmp(update: IcmpUpdate, seg: object) -> list[str]:
    kind = update.kind
    if update.quoted is None:
        return [f"ICMP {kind}: an error report from the network or a host."]
    src, dst = update.quoted
    answered = None
    if update.conversation is not None and update.conversation.unreachable:
        answered = update.conversation.unreachable[-1].quoted_frame
    which = f"packet {answered}" if answered is not None else "a datagram not in the capture"
    lines = [f"ICMP {kind}: it answers {which}, the UDP datagram {endpoint(src)} -> "
             f"{endpoint(dst)}, and quotes that datagram's IP header and first 8 bytes (its UDP "
             "header), so the sender's kernel can find the socket it came from."]
    if kind == "port unreachable" and update.connected_to is not None:
        lines.append(f"The socket on port {dst[1]} is connect()ed to "
                     f"{endpoint(update.connected_to)}: it sent datagrams to that peer only, "
                     "and a connected UDP socket takes datagrams from its peer alone, so the "
                     f"kernel refuses this one from {endpoint(src)} (or the socket was closed "
                     "in between; the wire cannot tell). The sender's next recv() on a "
                     "connected socket fails with ECONNREFUSED; an unconnected one hears "
                     "nothing.")
    elif kind == "port unreachable":
        lines.append(f"Nothing listens on port {dst[1]} (or the socket there is connected to "
                     "someone else and ignores this sender). The sender's next recv() on a "
                     "connected socket fails with ECONNREFUSED; an unconnected socket hears "
                     "nothing.")
    if isinstance(seg, IcmpHeader):
        lines.append(f"Type {seg.type}, code {seg.code}: destination unreachable, "
                     f"{'port' if seg.code == 3 else 'code ' + str(seg.code)}.")
    return lines


# ----- the seq/ack ledger ----------------------------------------------------------------
class LedgerRow(NamedTuple):
    frame: int
    flags: str
    seq: int
    length: int
    extra: str  # "SYN +1", "FIN +1" or ""
    next_seq: int
    acked_in: int | None  # the first packet of the peer whose ack covers it


def ledger(segments: Sequence[Segment]) -> dict[str, list[LedgerRow]]:
    """Per direction, each segment that takes sequence numbers and where it was acknowledged."""
    rows: dict[str, list[LedgerRow]] = {CLIENT: [], SERVER: []}
    for i, seg in enumerate(segments):
        event = seg.event
        syn, fin = "S" in event.flags, "F" in event.flags
        used = event.length + syn + fin
        if not used or event.seq is None:
            continue
        end = (event.seq + used) % MOD
        acked = next((later.event.frame for later in segments[i + 1 :]
                      if later.event.sender != event.sender and later.event.ack is not None
                      and (later.event.ack - end) % MOD < (1 << 31)), None)
        extra = " ".join(x for x, on in (("SYN +1", syn), ("FIN +1", fin)) if on)
        rows[event.sender].append(LedgerRow(event.frame, event.flags, event.seq, event.length,
                                            extra, end, acked))
    return rows
