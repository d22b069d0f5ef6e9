"""Everything a handout shows, gathered from one capture: the ``Lesson`` record.

A handout is for a lesson: tens or hundreds of packets, not millions.  So unlike the
streaming reports, this module holds the decoded packets of one bounded capture (at most
``MAX_PACKETS``) and walks them three times, each with its own Tracker: once as ``read``
annotates them, once for the finished flows and their events (the ladders), once for the
netstat tables.  The three trackers see the same packets in the same order, so they hand
out the same flow ids.  Pure: packets in, a record out; the renderers (html.py,
markdown.py) turn the record into text.

A handout of one connection of a capture of any size gets only that connection's
packets (the IO edge picks them out, streaming) with a ``Numbering``: their frame
numbers in the file, and the connection's id, so the handout numbers them as the file
and ``flows`` do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import TcpHeader
from capdissect.errors import HandoutTooBig, NoSuchFlow
from capdissect.report.annotate import LOOPBACK_NOTE, Annotator, checksum_ok
from capdissect.report.diagrams.flight import all_samples
from capdissect.report.diagrams.graph import Plot, plot
from capdissect.report.handout.explain import Explainer
from capdissect.report.handout.fields import Span, display_filter, field_spans
from capdissect.report.handout.quiz import Question, handout_questions
from capdissect.report.tables.calls import moments as call_moments
from capdissect.report.tables.sockets import EVERY_FULL_MAX, moment_lines
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.report.text import clean
from capdissect.tracking.sockets import SocketTable, facts_stream
from capdissect.tracking.stream import End, Finished, Totals, Truncation, finished, track
from capdissect.tracking.syscalls import Frame, Joined
from capdissect.tracking.tcp import TcpConnection, Update, is_loopback
from capdissect.tracking.tracker import IcmpUpdate, Observation, Tracker, UdpUpdate

MAX_PACKETS: Final = 5_000  # past this a "handout" would be a book: ask for --conn or a cut
# A packet's hex dump shows at most this many bytes, then "... N more bytes": a 64 KiB
# loopback segment would otherwise be 4,000 coloured lines (and its spans, its markup).
DUMP_MAX: Final = 1_024
# netstat's table is printed whole at each change while it has at most this many sockets;
# past it (a scan, a flood) only the rows that changed (sockets --every does the same).
NETSTAT_FULL_MAX: Final = EVERY_FULL_MAX
# Flows drawn (ladder, state path, graphs); the others are in the summary table only.
MAX_DRAWN_FLOWS: Final = 50
# tcpdump -nn -v -X: numbers, not names (the handout must read the same on every machine),
# the IP header fields and checksums of -v, and the hex dump the fields are marked on.
HANDOUT_PRINT: Final = PrintOptions(n=2, v=1, X=1)




class Numbering(NamedTuple):
    """Where a selection of packets sits in its file: each one's frame number, the id of
    the first flow among them, and how many packets the file holds."""

    frames: Sequence[int]
    first_id: int
    total: int


class SocketView(NamedTuple):
    """netstat's table at one moment (just before *frame*, or after it), and why it changed."""

    frame: int
    before: bool
    what: str
    changes: tuple[str, ...]
    table: tuple[str, ...]


class PacketView(NamedTuple):
    frame: int  # 1-based position in the file
    rel: float  # seconds since the capture's first packet
    proto: str  # tcp | udp | icmp | other
    flow: int | None  # the connection or conversation it belongs to
    header: str  # what tcpdump -nn -v prints before the hex dump
    data: bytes  # the captured bytes, the dump's first DUMP_MAX of them at most
    hex_start: int  # where tcpdump's -X dump starts in *data* (after the link header)
    spans: tuple[Span, ...]
    notes: tuple[str, ...]  # the lines `read` prints under the packet
    explanation: tuple[str, ...]  # the handout's plain-language paragraph, one item a point
    sockets: tuple[SocketView, ...]  # netstat tables that changed at this packet
    comment: str | None  # the capture file's own comment on the packet (pcapng)
    calls: tuple[str, ...] = ()  # the socket calls that returned after it (trace), findings
    more_bytes: int = 0  # captured bytes past the end of *data*, left out of the dump
    filter: str = ""  # a Wireshark display filter that selects it

    @property
    def more_bytes_line(self) -> str:
        """The line that ends a shortened dump ("" when nothing was left out)."""
        if not self.more_bytes:
            return ""
        return (f"\t\u2026 {self.more_bytes} more byte{'s' if self.more_bytes != 1 else ''} "
                f"(a handout dumps the first {DUMP_MAX} of a packet)")


class Lesson(NamedTuple):
    title: str
    name: str  # the capture's file name, as given
    start: str  # local time of the first packet
    duration: float
    packets: tuple[PacketView, ...]  # the packets shown (all, or one flow's)
    total_packets: int
    flows: tuple[Finished, ...]  # every flow, or the one asked for
    first_ts: float
    icmp_unreachable: int
    questions: tuple[Question, ...]
    interfaces: tuple[str, ...]  # interface names the file gives (pcapng if_name)
    calls: Joined | None = None  # the traced socket calls, placed (trace, demo)
    calls_before: tuple[str, ...] = ()  # the calls that returned before the first packet
    truncated: Truncation | None = None  # the capture was damaged after these packets
    plots: tuple[tuple[int, tuple[Plot, ...]], ...] = ()  # per TCP connection: its graphs

    @property
    def drawn(self) -> tuple[Finished, ...]:
        """The flows the handout draws: the first ``MAX_DRAWN_FLOWS``."""
        return self.flows[:MAX_DRAWN_FLOWS]

    @property
    def undrawn_note(self) -> str:
        """The line after the drawn flows saying what was left out ("" if nothing)."""
        left = len(self.flows) - MAX_DRAWN_FLOWS
        if left <= 0:
            return ""
        packets = sum(f.flow.packets if isinstance(f.flow, TcpConnection)
                      else f.flow.datagrams + f.flow.icmp_unreachable
                      for f in self.flows[MAX_DRAWN_FLOWS:])
        return (f"{left} more flow{'s' if left != 1 else ''} ({packets} packets, flows "
                f"{self.flows[MAX_DRAWN_FLOWS].flow.id} to {self.flows[-1].flow.id}) are not "
                f"drawn: a handout draws the first {MAX_DRAWN_FLOWS}; the summary table lists "
                "them all, and --conn N draws one")


def _tracker(numbering: Numbering) -> Tracker:
    return Tracker(keep_events=False, first_id=numbering.first_id)


class _Recording(Tracker):
    """A Tracker that remembers what it saw last, for the explanation next to read's notes."""

    last: Observation | None = None

    def feed(self, frame: int, pkt: Packet) -> Observation | None:
        self.last = super().feed(frame, pkt)
        return self.last


def build_lesson(packets: Sequence[Packet], name: str, title: str | None = None,
                 conn: int | None = None, interfaces: Sequence[str] = (),
                 calls: tuple[Joined, list[Frame]] | None = None,
                 truncated: Truncation | None = None,
                 numbering: Numbering | None = None) -> Lesson:
    """The lesson of *packets* (one capture, in file order); *conn* keeps one flow;
    *calls*, the socket calls traced with it, go beside the packets they returned after;
    *truncated* says where a damaged capture stopped (the handout says so); *numbering*
    places *packets* in their file when they are a selection of it."""
    if len(packets) > MAX_PACKETS:
        raise HandoutTooBig(name, MAX_PACKETS)
    numbering = numbering or Numbering(range(1, len(packets) + 1), 1, len(packets))
    totals = Totals()
    flows = lesson_flows(packets, totals, numbering)
    if conn is not None:
        flows = tuple(f for f in flows if f.flow.id == conn)
        if not flows:
            raise NoSuchFlow(name, conn, totals.flows)
    first_ts = packets[0].raw.ts if packets else 0.0
    moments = _socket_views(packets, numbering)
    views = [v for v in _packet_views(packets, numbering, first_ts, moments)
             if conn is None or v.flow == conn]
    after = call_moments(*calls) if calls is not None else {}
    views = [v._replace(calls=tuple(after.get(v.frame, ()))) for v in views]
    last_ts = packets[-1].raw.ts if packets else 0.0
    return Lesson(
        title=clean(title) if title else f"What crossed the wire: {clean(name)}",
        name=clean(name),
        start=_local_time(first_ts) if packets else "-",
        duration=max(last_ts - first_ts, 0.0),
        packets=tuple(views),
        total_packets=numbering.total,
        flows=flows,
        first_ts=first_ts,
        icmp_unreachable=totals.icmp_unreachable,
        questions=tuple(handout_questions(flows)),
        interfaces=tuple(clean(n) for n in interfaces),
        calls=calls[0] if calls is not None else None,
        calls_before=tuple(after.get(0, ())),
        truncated=truncated,
        plots=tuple(_plots(packets, flows)),
    )


def _plots(packets: Sequence[Packet], flows: Sequence[Finished]
           ) -> Iterable[tuple[int, tuple[Plot, ...]]]:
    """Each TCP connection's graphs: its time-sequence graph, and RTT and bytes in flight
    where Wireshark's rules give any."""
    wanted = {item.flow.id for item in flows if isinstance(item.flow, TcpConnection)}
    if not wanted:
        return
    for conn, (found, points) in all_samples(packets).items():
        if conn not in wanted:
            continue
        drawn = [plot(found, points, kind) for kind in ("tsg", "rtt", "inflight")]
        yield conn, tuple(p for p in drawn if p.series and any(s.points for s in p.series))


def lesson_flows(packets: Sequence[Packet], totals: Totals | None = None,
                 numbering: Numbering | None = None) -> tuple[Finished, ...]:
    """Every flow of *packets*, finished, with its events (what ladders and questions
    read); *numbering* places them in their file when they are a selection of it."""
    numbering = numbering or Numbering(range(1, len(packets) + 1), 1, len(packets))
    return tuple(finished(track(packets, _tracker(numbering), numbering.frames),
                          totals or Totals(), events=True))


def _local_time(ts: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))
    except (OverflowError, OSError, ValueError):  # pcapng can hold years no calendar has
        return f"{ts:.6f} (Unix time)"


def _packet_views(packets: Sequence[Packet], numbering: Numbering, first_ts: float,
                  moments: dict[int, list[SocketView]]) -> Iterable[PacketView]:
    printer = TcpdumpPrinter(HANDOUT_PRINT)
    recorder = _Recording(keep_events=False, first_id=numbering.first_id)
    annotator = Annotator(recorder, checksums=HANDOUT_PRINT.v)
    explainer = Explainer()
    for frame, pkt in zip(numbering.frames, packets, strict=True):
        header, dump_from = printer.printed(pkt.raw)
        hex_start = len(pkt.raw.data) if dump_from is None else dump_from
        notes = annotator.annotate(frame, pkt)
        seen = recorder.last
        shown = pkt.raw.data[:hex_start + DUMP_MAX]
        yield PacketView(
            frame=frame, rel=pkt.raw.ts - first_ts, proto=_proto(seen, pkt),
            flow=flow_id(seen), header=_clean_lines(header), data=bytes(shown),
            hex_start=hex_start, more_bytes=len(pkt.raw.data) - len(shown),
            spans=tuple(field_spans(pkt)), notes=tuple(clean(n) for n in notes),
            explanation=tuple(clean(line) for line in
                              explainer.explain(frame, pkt, seen) + _checksum(pkt, notes)),
            sockets=tuple(moments.get(frame, ())),
            comment=_clean_lines(pkt.raw.comment) if pkt.raw.comment else None,
            filter=display_filter(frame, pkt))


def _checksum(pkt: Packet, notes: list[str]) -> list[str]:
    """Each TCP segment whose checksum tcpdump -v calls incorrect says why (read says it
    once, for loopback; a handout is read packet by packet).  Decided from the records,
    as the annotation decides it, not from the printer's text."""
    tcp, ip = pkt.transport, pkt.ip
    if (not isinstance(tcp, TcpHeader) or ip is None or pkt.fragment
            or checksum_ok(pkt, 6, tcp.offset) or LOOPBACK_NOTE in notes):
        return []
    if not (is_loopback(ip.src) or is_loopback(ip.dst)):
        return ["tcpdump finds the checksum incorrect: if this was captured on the sending "
                "host, the network card fills it in later (checksum offload)."]
    return ["The checksum shows as incorrect only because this is loopback: the kernel "
            "leaves checksums to the network card (offload), and loopback has none. The data "
            "is not corrupt."]


def _clean_lines(text: str) -> str:
    """*text* safe for any output, its line breaks and tabs kept (clean would turn them into
    '.'): tcpdump indents the packet quoted in an ICMP error with a tab."""
    return "\n".join("\t".join(clean(part) for part in line.split("\t"))
                     for line in text.split("\n"))


def _proto(seen: Observation | None, pkt: Packet) -> str:
    if isinstance(seen, Update):
        return "tcp"
    if isinstance(seen, UdpUpdate):
        return "udp"
    if isinstance(seen, IcmpUpdate) or type(pkt.transport).__name__.startswith("Icmp"):
        return "icmp"
    return "other"


def flow_id(seen: Observation | None) -> int | None:
    """The connection or conversation a packet belongs to (an ICMP error: the one it
    answers), as the tracker numbers them."""
    if isinstance(seen, Update):
        return seen.connection.id
    if isinstance(seen, UdpUpdate):
        return seen.conversation.id
    if isinstance(seen, IcmpUpdate) and seen.conversation is not None:
        return seen.conversation.id
    return None


def _socket_views(packets: Sequence[Packet], numbering: Numbering
                  ) -> dict[int, list[SocketView]]:
    """netstat's table at each moment it changed, keyed by the frame it belongs to."""
    table = SocketTable()
    views: dict[int, list[SocketView]] = {}
    for facts in facts_stream(track(packets, _tracker(numbering), numbering.frames)):
        if isinstance(facts, End):
            break
        for moment in table.apply(facts):
            if moment.changes:
                views.setdefault(moment.frame, []).append(SocketView(
                    moment.frame, moment.before, clean(moment.what),
                    tuple(clean(c) for c in moment.changes),
                    tuple(clean(line) for line in moment_lines(table, NETSTAT_FULL_MAX))))
    return views
