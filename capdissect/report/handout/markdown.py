"""The handout as GitHub-flavoured Markdown, with Mermaid diagrams (SPEC §3.6).

Text from the capture is made inert two ways.  Prose goes through ``md``: ``<``, ``>`` and
``&`` become entities (so no tag opens) and Markdown's punctuation is backslash-escaped
(so no link, image or emphasis forms).  Packet text goes into fenced code blocks whose
fence is longer than any run of backticks inside (CommonMark §4.5: a fence closes only
on a run at least as long), so a payload full of backticks cannot close the block early.
Mermaid labels go through ``timeline.mermaid_text``, which keeps only a safe set of
characters.  GitHub draws no inline SVG, so the pictures are Mermaid: the ladder as a
``sequenceDiagram``, Figure 5 as a ``stateDiagram-v2`` and the sequence growth as an
``xychart-beta`` line chart.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from typing import Final

from capdissect._version import __version__
from capdissect.addresses import endpoint
from capdissect.report.handout.explain import ledger
from capdissect.report.handout.fields import KINDS, Span
from capdissect.report.handout.lesson import Lesson, PacketView, SocketView
from capdissect.report.tcpdump.hexdump import hex_ascii
from capdissect.report.timeline.ladder import mermaid_lines, mermaid_text
from capdissect.tracking.eventlog import Segment
from capdissect.tracking.states import TcpState, figure_edges
from capdissect.tracking.stream import Finished
from capdissect.tracking.syscalls import Joined
from capdissect.tracking.tcp import CLIENT, SERVER, TcpConnection
from capdissect.tracking.udp import UdpConversation

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]{}()#+!|~])")
_BACKTICKS: Final = re.compile(r"`+")


def md(text: object) -> str:
    """*text* as inert Markdown prose: no tags, links, images or emphasis can form."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def fence(body: str, info: str = "") -> str:
    """*body* in a code block whose backtick fence is longer than any run inside it."""
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{info}\n{body}\n{bar}\n"


def render_markdown(lesson: Lesson) -> str:
    return "".join(markdown_parts(lesson))


def markdown_parts(lesson: Lesson) -> Iterator[str]:
    """The document in pieces (lines), to write it without holding it whole."""
    for line in _document(lesson):
        yield line + "\n"


def _document(lesson: Lesson) -> Iterator[str]:
    yield f"# {md(lesson.title)}\n"
    yield f"A lesson handout made by capdissect {md(__version__)} from the capture " \
          f"{md(lesson.name)}.\n"
    yield "## The capture\n"
    yield "| | |\n|---|---|"
    yield f"| file | {md(lesson.name)} |"
    yield f"| first packet | {md(lesson.start)} |"
    yield f"| duration | {lesson.duration:.6f} s |"
    yield f"| packets | {lesson.total_packets} |"
    yield f"| ICMP port unreachable | {lesson.icmp_unreachable} |"
    if lesson.interfaces:
        yield f"| interfaces | {md(', '.join(lesson.interfaces))} |"
    yield ""
    if lesson.truncated is not None:
        yield f"**{md(lesson.truncated.note())}**\n"
    for item in lesson.drawn:
        if isinstance(item.flow, TcpConnection):
            yield from _tcp_flow(item.flow, item, lesson.calls)
        elif isinstance(item.flow, UdpConversation):
            yield from _udp_flow(item.flow, item, lesson.calls)
    if lesson.undrawn_note:
        yield f"*{md(lesson.undrawn_note)}*\n"
    if lesson.calls_before:
        yield "## Socket calls before the first packet\n"
        yield fence("\n".join("call: " + call for call in lesson.calls_before))
    yield "## Packet by packet\n"
    yield ("Each packet as `tcpdump -nn -v -X` prints it, where its header fields sit in the "
           "dump, the lines `capdissect read` prints under it, and what it means. Field "
           "colours: " + "; ".join(md(text) for text in KINDS.values()) + ".\n")
    for view in lesson.packets:
        yield from _packet(view)
    if lesson.questions:
        yield "## Questions\n"
        yield from (f"{i}. {md(q.text)}" for i, q in enumerate(lesson.questions, 1))
        yield "\n## Answers\n"
        yield from (f"{i}. {md(q.answer)}" for i, q in enumerate(lesson.questions, 1))
        yield ""


def _tcp_flow(conn: TcpConnection, item: Finished, calls: Joined | None) -> Iterator[str]:
    c, s = conn.client, conn.server
    yield (f"## TCP connection {conn.id}: {md(endpoint((c.addr, c.port)))} → "
           f"{md(endpoint((s.addr, s.port)))}\n")
    yield (f"Opened: **{md(conn.open)}**; closed: **{md(conn.close)}**"
           f"{md(' by the ' + conn.closer) if conn.closer in (CLIENT, SERVER) else ''}. "
           f"{conn.packets} packets; {c.payload} bytes of data from the client, "
           f"{s.payload} from the server.\n")
    yield "### Ladder diagram\n"
    yield fence("\n".join(mermaid_lines([item], calls)), "mermaid")
    yield "### The RFC 9293 state diagram, and the path each endpoint took\n"
    yield (f"Client: {md(' → '.join(x.value for x in c.path))}  \n"
           f"Server: {md(' → '.join(x.value for x in s.path))}\n")
    yield fence(state_diagram_mermaid(c.path, s.path), "mermaid")
    for hint in conn.hints:
        yield f"**Hint:** {md(hint)}\n"
    segments = [x for x in item.events if isinstance(x, Segment)]
    yield "### Sequence and acknowledgement ledger\n"
    yield ("Every data byte takes one sequence number, and so do SYN and FIN; the next "
           "sequence number is what the other side must acknowledge.\n")
    rows = ledger(segments)
    for role in (CLIENT, SERVER):
        yield f"**{role} → {SERVER if role == CLIENT else CLIENT}**\n"
        yield ("| packet | flags | seq | data bytes | SYN/FIN | next seq | acknowledged in |\n"
               "|---:|---|---:|---:|---|---:|---|")
        for row in rows[role]:
            acked = f"packet {row.acked_in}" if row.acked_in is not None else "not captured"
            yield (f"| {row.frame} | {md(row.flags)} | {row.seq} | {row.length} | "
                   f"{md(row.extra)} | {row.next_seq} | {acked} |")
        yield ""
    chart = _sequence_chart(segments)
    if chart:
        yield "### Sequence numbers as the data flows\n"
        yield fence(chart, "mermaid")


def state_diagram_mermaid(client: Sequence[TcpState], server: Sequence[TcpState]) -> str:
    """Figure 5 from the tracker's table as a Mermaid state diagram, the paths in colour."""
    lines = ["stateDiagram-v2", "    direction TB"]
    for edge in figure_edges():
        lines.append(f"    {edge.before.value} --> {edge.after.value}: {mermaid_text(edge.label)}")
    lines += ["    classDef client fill:#dbeafe,stroke:#1d4ed8,stroke-width:3px",
              "    classDef server fill:#ffedd5,stroke:#c2410c,stroke-width:3px",
              "    classDef both fill:#fef9c3,stroke:#854d0e,stroke-width:3px"]
    on_client, on_server = set(client), set(server)
    for cls, states in (("both", on_client & on_server), ("client", on_client - on_server),
                        ("server", on_server - on_client)):
        if states:
            names = ",".join(sorted(s.value for s in states))
            lines.append(f"    class {names} {cls}")
    return "\n".join(lines)


def _sequence_chart(segments: Sequence[Segment]) -> str | None:
    """Each side's highest sequence number sent, packet by packet (xychart-beta)."""
    data = [s.event for s in segments if s.event.length and s.event.seq is not None]
    if not data:
        return None
    high = {CLIENT: 0, SERVER: 0}
    frames: list[str] = []
    series: dict[str, list[str]] = {CLIENT: [], SERVER: []}
    for event in (s.event for s in segments):
        if event.seq is not None:
            high[event.sender] = max(high[event.sender], event.seq + event.length)
        frames.append(str(event.frame))
        for role in (CLIENT, SERVER):
            series[role].append(str(high[role]))
    top = max(high.values()) or 1
    return "\n".join([
        "xychart-beta",
        '    title "Highest sequence number sent (client, then server)"',
        f'    x-axis "packet" [{", ".join(frames)}]',
        f'    y-axis "relative seq" 0 --> {top}',
        f"    line [{', '.join(series[CLIENT])}]",
        f"    line [{', '.join(series[SERVER])}]",
    ])


def _udp_flow(conv: UdpConversation, item: Finished, calls: Joined | None) -> Iterator[str]:
    yield f"## UDP conversation {conv.id}: {md(endpoint(conv.a))} ↔ {md(endpoint(conv.b))}\n"
    yield ("> **UDP compared with TCP.** No handshake before the first datagram, no FIN after "
           "the last; no sequence numbers, acknowledgements or window; no state on either "
           "side. Each datagram stands alone: if it is lost, nobody resends it.\n")
    if conv.icmp_unreachable:
        yield ("> An **ICMP port unreachable** answers a datagram that reached a host where no "
               "socket takes it; the dotted arrow points back at the sender.\n")
    yield fence("\n".join(mermaid_lines([item], calls)), "mermaid")


def _packet(view: PacketView) -> Iterator[str]:
    tag = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}.get(view.proto, "other")
    yield f"### Packet {view.frame} ({tag}, +{view.rel:.6f} s)\n"
    for moment in view.sockets:
        if moment.before:
            yield from _netstat(moment)
    if view.comment:
        # A code block: the file's text keeps its lines, and no line of it can become
        # Markdown (a heading underline, a table, a list, a link).
        yield "Comment in the capture file:\n"
        yield fence(view.comment)
    dump = hex_ascii(view.data[view.hex_start :]) if view.hex_start < len(view.data) else ""
    more = "\n" + view.more_bytes_line if view.more_bytes else ""
    yield fence(view.header + dump + more)
    yield f"Wireshark filter for this packet: `{view.filter}`\n"
    where = _field_list(view.spans, view.hex_start, len(view.data))
    if where:
        yield f"Where the fields are in the dump: {where}.\n"
    if view.notes:
        yield fence("\n".join("| " + note for note in view.notes))
    if view.calls:
        yield fence("\n".join("call: " + call for call in view.calls))
    yield from (f"- {md(line)}" for line in view.explanation)
    yield ""
    for moment in view.sockets:
        if not moment.before:
            yield from _netstat(moment)


def _field_list(spans: Sequence[Span], start: int, end: int) -> str:
    """``0x0004..0x0007 sequence number; ...`` for the fields inside the dump
    (``data[start:end]``)."""
    parts = []
    for span in spans:
        if span.end <= start or span.end <= span.start or span.start >= end:
            continue
        a, b = max(span.start, start) - start, min(span.end, end) - 1 - start
        where = f"0x{a:04x}" if a == b else f"0x{a:04x}..0x{b:04x}"
        named = f" `{span.wireshark}`" if span.wireshark else ""
        parts.append(f"{where} {md(span.name)}{named}")
    return "; ".join(parts)


def _netstat(moment: SocketView) -> Iterator[str]:
    when = "just before" if moment.before else "after"
    yield (f"**netstat -tanu {when} packet {moment.frame}**: {md(moment.what)} "
           f"({md('; '.join(moment.changes))})\n")
    yield fence("\n".join(moment.table))
