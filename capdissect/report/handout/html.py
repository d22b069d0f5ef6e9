"""The handout as one self-contained HTML page (SPEC §3.6).

No external resources, no script: inline CSS and inline SVG only, so it opens offline,
prints cleanly and renders the same everywhere.  Everything that came from the capture
(payload bytes in the hex dump's ASCII column, pcapng comments, addresses, tcpdump's
text) is escaped with ``html.escape`` at the point it is written into markup, so no byte
of a capture can open a tag, end the ``<style>`` element or start a script.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import Final

from capdissect._version import __version__
from capdissect.addresses import endpoint
from capdissect.report.diagrams.graph import Plot
from capdissect.report.diagrams.graph import svg as graph_svg
from capdissect.report.handout.explain import LedgerRow, ledger
from capdissect.report.handout.fields import KINDS, Span
from capdissect.report.handout.lesson import Lesson, PacketView, SocketView
from capdissect.report.handout.svg import (
    CLIENT_COLOUR,
    SERVER_COLOUR,
    state_diagram,
    tcp_ladder,
    udp_ladder,
)
from capdissect.tracking.eventlog import Segment
from capdissect.tracking.stream import Finished
from capdissect.tracking.syscalls import Placed
from capdissect.tracking.tcp import CLIENT, SERVER, TcpConnection
from capdissect.tracking.udp import UdpConversation

# Printable ASCII (0x21-0x7e) stays in the -X column, everything else is '.', as tcpdump.
_ASCII: Final = bytes(b if 0x21 <= b <= 0x7E else 0x2E for b in range(256))

CSS: Final = """
:root { --ink: #111827; --muted: #4b5563; --line: #e5e7eb; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 1000px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.8em; margin: 0 0 .2em; } h2 { border-bottom: 2px solid var(--line);
     padding-bottom: .2em; margin-top: 2em; } h3 { margin: 1.4em 0 .4em; }
.sub { color: var(--muted); margin: 0 0 1em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
pre, code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: #f9fafb; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow-x: auto; font-size: 12.5px; line-height: 1.45; white-space: pre; }
pre.hex span { border-radius: 2px; }
.diagram { max-width: 100%; height: auto; display: block; margin: .6em 0; }
.figure { border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin: 1em 0; }
.packet { border-top: 1px solid var(--line); padding-top: .4em; margin-top: 1.4em; }
.packet h3 { margin-top: .4em; } .packet h3 .tag { font-size: .75em; font-weight: 600;
  padding: 1px 7px; border-radius: 9px; background: #eef2ff; color: #3730a3; margin-left: .4em; }
.notes { margin: .3em 0; padding-left: 1.2em; color: #1f2937; }
.notes li::marker { color: var(--accent); }
.read { font-family: ui-monospace, monospace; font-size: 12.5px; color: #374151; margin: .3em 0;
        padding-left: 1em; border-left: 3px solid #c7d2fe; white-space: pre-wrap; }
.calls { font-family: ui-monospace, monospace; font-size: 12.5px; color: #6d28d9; margin: .3em 0;
         padding-left: 1em; border-left: 3px solid #c4b5fd; white-space: pre-wrap; }
.netstat { border-left: 3px solid #86efac; padding-left: .6em; margin: .6em 0; }
.netstat p { margin: .2em 0; font-size: .9em; color: var(--muted); }
.contrast { background: #fefce8; border: 1px solid #fde68a; border-radius: 8px; padding: 8px 14px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .85em; margin: .6em 0; }
.legend span.sw { display: inline-block; width: 1.6em; height: 1em; vertical-align: -2px;
                  border-radius: 2px; margin-right: 4px; border: 1px solid #d1d5db; }
.k-ip { background: #dbeafe; } .k-addr { background: #bfdbfe; } .k-port { background: #fde68a; }
.k-seq { background: #bbf7d0; } .k-ack { background: #fbcfe8; } .k-flags { background: #fecaca; }
.k-win { background: #e9d5ff; } .k-sum { background: #fed7aa; } .k-opt { background: #d9f99d; }
.k-misc { background: #e7e5e4; } .k-pay { background: #cffafe; font-weight: 700; }
.qa li { margin-top: .3em; }
.answers li { color: #065f46; }
footer { margin-top: 3em; color: var(--muted); font-size: .85em; }
@media print {
  body { max-width: none; padding: 0; font-size: 8.5pt; line-height: 1.3; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
  h2 { font-size: 1.35em; margin-top: 1em; } h3 { font-size: 1.05em; margin: .6em 0 .2em; }
  h2, h3 { break-after: avoid; } .figure, .netstat, table, pre, .notes li { break-inside: avoid; }
  .packet { margin-top: .6em; padding-top: .2em; }
  .packet h3 { margin-top: .2em; }
  pre { white-space: pre-wrap; font-size: 6.5pt; line-height: 1.25; overflow: visible;
        padding: 4px 6px; margin: .3em 0; }
  .read, .calls, .filter { font-size: 7pt; } .notes { margin: .2em 0; font-size: 8pt; }
  .filter { margin: .1em 0; }
  .figure { padding: 4px; margin: .5em 0; }
  .figure.ladder .diagram, .figure.state-diagram .diagram { max-height: 12.5cm; width: auto;
                                                            margin: 0 auto; }
  .figure.graph .diagram { max-height: 4.6cm; width: auto; margin: 0 auto; }
  .qa { font-size: 8pt; margin: .2em 0; }
}
"""


def _t(text: object) -> str:
    return html.escape(str(text), quote=True)


PAPERS: Final = {"a4": "A4", "letter": "letter"}  # --paper -> CSS @page size


def render_html(lesson: Lesson, paper: str = "letter") -> str:
    """The whole page as one string; printed (and so as a PDF) on *paper* (a4, letter)."""
    return "".join(_page(lesson, paper))


def html_parts(lesson: Lesson, paper: str = "letter") -> Iterator[str]:
    """The page in pieces, to write it without holding it whole."""
    return _page(lesson, paper)


def _page(lesson: Lesson, paper: str) -> Iterator[str]:
    page = f"@page {{ size: {PAPERS[paper]}; margin: 12mm 11mm; }}"
    yield ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<meta name="generator" content="capdissect {_t(__version__)}">'
           f'<title>{_t(lesson.title)}</title><style>{CSS}{page}</style></head><body>\n')
    yield f'<header><h1>{_t(lesson.title)}</h1>'
    yield (f'<p class="sub">A lesson handout made by capdissect from the capture '
           f'<code>{_t(lesson.name)}</code>.</p></header>\n')
    yield from _summary(lesson)
    for item in lesson.drawn:
        if isinstance(item.flow, TcpConnection):
            yield from _tcp_flow(item.flow, item, lesson.first_ts, _calls_of(lesson, item),
                                 dict(lesson.plots).get(item.flow.id, ()))
        elif isinstance(item.flow, UdpConversation):
            yield from _udp_flow(item.flow, item, lesson.first_ts, _calls_of(lesson, item))
    if lesson.undrawn_note:
        yield f'<p class="notice" id="undrawn">{_t(lesson.undrawn_note)}</p>\n'
    if lesson.calls_before:
        yield ('<section id="calls-before"><h2>Socket calls before the first packet</h2>'
               '<div class="calls">' + "\n".join(_t(c) for c in lesson.calls_before)
               + '</div></section>\n')
    yield from _packets(lesson.packets)
    yield from _questions(lesson)
    yield (f'<footer>Made with capdissect {_t(__version__)}. Packet text as '
           '<code>tcpdump -nn -v -X</code> prints it; states after RFC 9293.</footer>'
           '\n</body></html>\n')


def _summary(lesson: Lesson) -> Iterator[str]:
    yield '<section id="summary"><h2>The capture</h2><table>'
    rows = [("file", lesson.name), ("first packet", lesson.start),
            ("duration", f"{lesson.duration:.6f} s"), ("packets", str(lesson.total_packets)),
            ("ICMP port unreachable", str(lesson.icmp_unreachable))]
    if lesson.interfaces:
        rows.append(("interfaces", ", ".join(lesson.interfaces)))
    if len(lesson.packets) != lesson.total_packets:
        rows.append(("packets in this handout", str(len(lesson.packets))))
    if lesson.truncated is not None:
        rows.append(("cut short", lesson.truncated.note()))
    for key, value in rows:
        yield f'<tr><th>{_t(key)}</th><td>{_t(value)}</td></tr>'
    yield '</table><table><tr><th>id</th><th>protocol</th><th>from</th><th>to</th>' \
          '<th>packets</th><th>how it opened / closed</th><th>final states</th></tr>'
    for item in lesson.flows:
        flow = item.flow
        if isinstance(flow, TcpConnection):
            c, s = flow.client, flow.server
            finals = (f"client {c.state.value if c.state else '?'}, "
                      f"server {s.state.value if s.state else '?'}")
            yield (f'<tr><td><a href="#flow{flow.id}">{flow.id}</a></td><td>TCP</td>'
                   f'<td>client {_t(endpoint((c.addr, c.port)))}</td>'
                   f'<td>server {_t(endpoint((s.addr, s.port)))}</td><td>{flow.packets}</td>'
                   f'<td>open {_t(flow.open)}, close {_t(flow.close)}</td>'
                   f'<td>{_t(finals)}</td></tr>')
        else:
            yield (f'<tr><td><a href="#flow{flow.id}">{flow.id}</a></td><td>UDP</td>'
                   f'<td>{_t(endpoint(flow.a))}</td><td>{_t(endpoint(flow.b))}</td>'
                   f'<td>{flow.datagrams + flow.icmp_unreachable}</td>'
                   '<td>no handshake, no close</td><td>no state</td></tr>')
    yield '</table></section>\n'


def _calls_of(lesson: Lesson, item: Finished) -> list[Placed]:
    return lesson.calls.of(item.flow.id) if lesson.calls is not None else []


def _tcp_flow(conn: TcpConnection, item: Finished, first_ts: float,
              calls: list[Placed], plots: Sequence[Plot]) -> Iterator[str]:
    segments = [s for s in item.events if isinstance(s, Segment)]
    c, s = conn.client, conn.server
    closer = f" by the {conn.closer}" if conn.closer in (CLIENT, SERVER) else ""
    yield (f'<section class="flow" id="flow{conn.id}"><h2>TCP connection {conn.id}: '
           f'{_t(endpoint((c.addr, c.port)))} &#8594; {_t(endpoint((s.addr, s.port)))}</h2>')
    yield (f'<p>Opened: <b>{_t(conn.open)}</b>; closed: <b>{_t(conn.close)}</b>{_t(closer)}. '
           f'{conn.packets} packets; {c.payload} bytes of data from the client, {s.payload} '
           f'from the server. Click an arrow to jump to its packet.</p>')
    yield '<h3>Ladder diagram</h3><div class="figure ladder">'
    yield tcp_ladder(conn, segments, first_ts, calls=calls).svg
    yield '</div><h3>The RFC 9293 state diagram, and the path each endpoint took</h3>'
    yield ('<p>Drawn from the same transition table the tracker runs on '
           '(<code>capdissect/tracking/states.py</code>). A passive open (CLOSED to LISTEN) '
           'happens inside the server and never shows on the wire.</p>')
    paths = [(f"client: {' -> '.join(x.value for x in c.path)}", c.path, CLIENT_COLOUR),
             (f"server: {' -> '.join(x.value for x in s.path)}", s.path, SERVER_COLOUR)]
    yield f'<div class="figure state-diagram">{state_diagram(paths).svg}</div>'
    yield from _ledger(segments)
    for drawn in plots:  # each graph has its title inside
        if drawn.title.startswith("Time-sequence"):
            yield ('<h3>Graphs</h3><p>Each bar is a segment\'s data, from its first to its '
                   'last sequence '
                   'number; the green steps are what the other side has acknowledged, the '
                   'brown ones the right edge of the window it offered. RTT and bytes in '
                   'flight follow Wireshark\'s rules (<code>tcp.analysis.ack_rtt</code>, '
                   '<code>tcp.analysis.bytes_in_flight</code>); '
                   '<code>capdissect graph</code> draws these and more.</p>')
        yield f'<div class="figure graph">{graph_svg(drawn, links=True)}</div>'
    for hint in conn.hints:
        yield f'<p class="hint">Hint: {_t(hint)}</p>'
    for anomaly in conn.anomalies:
        yield f'<p class="anomaly">Anomaly: {_t(anomaly)}</p>'
    yield '</section>\n'


def _ledger(segments: Sequence[Segment]) -> Iterator[str]:
    rows = ledger(segments)
    yield ('<h3>Sequence and acknowledgement ledger</h3><p>Every data byte takes one sequence '
           'number, and so do SYN and FIN. The next sequence number is what the other side '
           'must acknowledge.</p>')
    for role in (CLIENT, SERVER):
        other = SERVER if role == CLIENT else CLIENT
        yield f'<table class="ledger"><caption>{role} &#8594; {other}</caption>'
        yield ('<tr><th>packet</th><th>flags</th><th>seq</th><th>data bytes</th>'
               '<th>SYN/FIN</th><th>next seq</th><th>acknowledged in</th></tr>')
        for row in rows[role]:
            yield _ledger_row(row)
        yield '</table>'


def _ledger_row(row: LedgerRow) -> str:
    acked = (f'<a href="#p{row.acked_in}">packet {row.acked_in}</a> (ack {row.next_seq})'
             if row.acked_in is not None else "not in the capture")
    return (f'<tr><td><a href="#p{row.frame}">{row.frame}</a></td><td><code>{_t(row.flags)}'
            f'</code></td><td>{row.seq}</td><td>{row.length}</td><td>{_t(row.extra)}</td>'
            f'<td>{row.next_seq}</td><td>{acked}</td></tr>')


def _udp_flow(conv: UdpConversation, item: Finished, first_ts: float,
              calls: list[Placed]) -> Iterator[str]:
    yield (f'<section class="flow" id="flow{conv.id}"><h2>UDP conversation {conv.id}: '
           f'{_t(endpoint(conv.a))} &#8596; {_t(endpoint(conv.b))}</h2>')
    yield ('<div class="contrast"><p><b>UDP compared with TCP.</b> No handshake before the '
           'first datagram, no FIN after the last; no sequence numbers, acknowledgements or '
           'window; no state on either side (netstat shows a UDP socket with an empty State '
           'column). Each datagram stands alone: if it is lost, nobody resends it.</p>')
    if conv.icmp_unreachable:
        yield ('<p>An <b>ICMP port unreachable</b> answers a datagram that reached a host '
               'where no socket takes it (nothing listens, or a connected socket ignores '
               'strangers). The dotted arrow points back at the sender.</p>')
    yield '</div><div class="figure ladder">'
    yield udp_ladder(conv, list(item.events), first_ts, calls=calls).svg
    yield '</div></section>\n'


# ----- packet by packet ---------------------------------------------------------------
def _packets(packets: Sequence[PacketView]) -> Iterator[str]:
    yield ('<section id="packets"><h2>Packet by packet</h2><p>Each packet as '
           '<code>tcpdump -nn -v -X</code> prints it, its bytes coloured by header field '
           '(hover a byte for its field), the lines <code>capdissect read</code> prints under '
           'it, and what it means.</p><div class="legend">')
    for kind, text in KINDS.items():
        yield f'<span><span class="sw k-{kind}"></span>{_t(text)}</span>'
    yield '</div>\n'
    for view in packets:
        yield from _packet(view)
    yield '</section>\n'


def _packet(view: PacketView) -> Iterator[str]:
    tag = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}.get(view.proto, "other")
    flow = f" &#183; flow {view.flow}" if view.flow is not None else ""
    yield (f'<section class="packet" id="p{view.frame}" data-frame="{view.frame}">'
           f'<h3>Packet {view.frame}<span class="tag">{tag}{flow}</span> '
           f'<small>+{view.rel:.6f} s</small></h3>')
    for moment in view.sockets:
        if moment.before:
            yield _netstat(moment)
    if view.comment:
        yield f'<p class="comment"><b>Comment in the capture file:</b> {_t(view.comment)}</p>'
    more = f'\n{_t(view.more_bytes_line)}' if view.more_bytes else ""
    yield (f'<pre class="tcpdump">{_t(view.header)}'
           f'{hex_html(view.data, view.hex_start, view.spans)}{more}</pre>')
    yield (f'<p class="filter">Wireshark filter for this packet: '
           f'<code>{_t(view.filter)}</code></p>')
    if view.notes:
        yield '<div class="read">' + "\n".join(_t("| " + n) for n in view.notes) + '</div>'
    if view.calls:
        yield '<div class="calls">' + "\n".join(_t(c) for c in view.calls) + '</div>'
    yield '<ul class="notes">' + "".join(f'<li>{_t(x)}</li>' for x in view.explanation) + '</ul>'
    for moment in view.sockets:
        if not moment.before:
            yield _netstat(moment)
    yield '</section>\n'


def _netstat(moment: SocketView) -> str:
    when = "just before" if moment.before else "after"
    changes = "; ".join(moment.changes)
    return (f'<div class="netstat"><p><b>netstat -tanu {when} packet {moment.frame}</b>: '
            f'{_t(moment.what)} ({_t(changes)})</p><pre>{_t(chr(10).join(moment.table))}</pre>'
            '</div>')


def hex_html(data: bytes, start: int, spans: Sequence[Span]) -> str:
    """tcpdump's -X lines for ``data[start:]``, each byte in a span of its field's colour."""
    kinds: list[Span | None] = [None] * len(data)
    for span in spans:
        for i in range(max(span.start, 0), min(span.end, len(data))):
            kinds[i] = span
    out = []
    for line_start in range(start, len(data), 16):
        chunk = range(line_start, min(line_start + 16, len(data)))
        hexes, chars, width = [], [], 0
        for n, i in enumerate(chunk):
            if n and n % 2 == 0:
                hexes.append(" ")
                width += 1
            hexes.append(_mark(kinds[i], f"{data[i]:02x}"))
            chars.append(_mark(kinds[i], chr(_ASCII[data[i]])))
            width += 2
        out.append(f"\n\t0x{line_start - start:04x}:  " + "".join(hexes) + " " * (39 - width)
                   + "  " + "".join(chars))
    return f'<span class="hex">{"".join(out)}</span>'


def _mark(span: Span | None, text: str) -> str:
    if span is None:
        return _t(text)
    name = f"{span.name} ({span.wireshark})" if span.wireshark else span.name
    return f'<span class="k-{span.kind}" title="{_t(name)}">{_t(text)}</span>'


def _questions(lesson: Lesson) -> Iterator[str]:
    if not lesson.questions:
        return
    yield '<section id="questions"><h2>Questions</h2><ol class="qa">'
    for q in lesson.questions:
        yield f'<li>{_t(q.text)}</li>'
    yield '</ol></section><section id="answers" class="answers"><h2>Answers</h2><ol class="qa">'
    for q in lesson.questions:  # numbered as the questions, so not repeated
        yield f'<li>{_t(q.answer)}</li>'
    yield '</ol></section>\n'
