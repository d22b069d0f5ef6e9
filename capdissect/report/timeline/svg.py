"""``timeline --svg``: every ladder of a capture in one standalone SVG file (SPEC §3.3).

The ladders are the handout's own (report/handout/svg.py), so a connection looks the same
in ``timeline --svg`` and in a handout.  This module stacks them, one per TCP connection
and UDP conversation in id order: above each, what the text timeline says above its
ladder (endpoints, how it opened and closed, counts); below a TCP ladder, the path each
endpoint took.  Times count from the capture's first packet, as in the text timeline.

An SVG root must state its height before its first child, and the height is known only
once every flow is drawn.  So the flows are drawn into a spool (given by the caller, as
for the JSON document: memory, then a temporary file) and the document is yielded after
the last flow: nothing comes out before the capture has been read to its end, so a
capture that fails to read leaves no half-written file behind.

A drawing of a million-packet connection would be a million arrows no one can read and
gigabytes to build: each flow shows its first ``DRAWN_MAX`` items (only those are
logged), then a line saying how many more there were and which frames they were; and a
document draws the first ``DRAWN_FLOWS`` flows, then a line counting the others.

Nothing from a capture becomes markup.  Every text is escaped (``html.escape``, whose
entities are XML's too) where it enters the markup, here and in svg.py; and since XML 1.0
forbids control characters even as character references, every piece also goes through
``report/text.py``'s ``clean``.  Our own markup holds no control or format character, so that only
ever changes text that came from a file.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Iterator
from typing import Final

from capdissect.addresses import endpoint
from capdissect.report.handout.svg import (
    CALL_COLOUR,
    CLIENT_COLOUR,
    SERVER_COLOUR,
    tcp_ladder,
    udp_ladder,
)
from capdissect.report.json.document import Spool
from capdissect.report.text import clean
from capdissect.report.timeline.ladder import path_text
from capdissect.tracking.eventlog import Replay, Segment
from capdissect.tracking.stream import Finished, Totals, end_notes
from capdissect.tracking.syscalls import Joined, Placed
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.udp import UdpConversation

SVG_NS: Final = "http://www.w3.org/2000/svg"
MARGIN: Final = 10
WIDTH: Final = 800 + 2 * MARGIN  # the ladders are 800 wide (svg.py); longer lines widen it
_TOP: Final = 56  # below the document's title lines
_LINE: Final = 16
_EM: Final = 0.62  # a generous average glyph width of a sans-serif font, in em
_GAP: Final = 30  # between flows
_COPY: Final = 1 << 16
_NOTE_COLOUR: Final = "#a16207"
DRAWN_FLOWS: Final = 1_000  # flows one document draws; the rest are counted in a note


def _t(text: object) -> str:
    return html.escape(str(text), quote=True)


def _text(y: int, text: str, size: int = 12, colour: str = "#111",
          weight: str | None = None, cls: str | None = None) -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    klass = f' class="{cls}"' if cls else ""
    return (f'<text{klass} x="0" y="{y}" font-size="{size}" fill="{colour}"{bold}>'
            f'{_t(text)}</text>')


def _fits(lines: Iterable[str], size: int) -> int:
    """The document width that holds *lines* at *size* px (a long IPv6 address, say)."""
    return max((2 * MARGIN + math.ceil(len(line) * size * _EM) for line in lines), default=0)


def svg_document(flows: Iterable[Finished], file: str, version: str, totals: Totals, *,
                 spool: Spool, calls: Joined | None = None) -> Iterator[str]:
    """Yield the SVG document of *flows* (read from *file*), in pieces, after the last flow;
    with *calls* (``trace``), each flow's socket calls marked on its ladder."""
    name = clean(file)
    title = f"Timeline of {name}"
    width = max(WIDTH, _fits([title], 17))
    with spool() as body:
        y = _TOP
        count = 0
        undrawn: list[int] = []  # flows past DRAWN_FLOWS: how many, their packets, ids
        for item in flows:
            count += 1
            if count > DRAWN_FLOWS:
                _count_undrawn(undrawn, item)
                continue
            first_ts = totals.first_ts if totals.first_ts is not None else item.flow.first_ts
            height, wide, markup = _flow(
                item, first_ts, y, calls.of(item.flow.id) if calls else [],
                calls.findings.get(item.flow.id, []) if calls else [])
            body.write(clean(markup) + "\n")
            y += height + _GAP
            width = max(width, wide)
        notes = [] if count else ["no TCP connections or UDP conversations"]
        if undrawn:
            left, packets, first, last = undrawn
            notes.append(f"\u2026 {left} more flows ({packets} packets, ids {first} to "
                         f"{last}) are not drawn: a timeline drawing shows the first "
                         f"{DRAWN_FLOWS} flows (--conn N draws one)")
        notes += end_notes(totals)
        for line in notes:
            body.write(f'<g transform="translate({MARGIN},0)">'
                       f'{_text(y + 12, clean(line), 13, cls="notice")}</g>\n')
            y += _LINE + 4
        width = max(width, _fits(notes, 13))
        height = y + MARGIN
        yield ('<?xml version="1.0" encoding="UTF-8"?>\n'
               f'<svg xmlns="{SVG_NS}" version="1.1" width="{width}" height="{height}" '
               f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">\n'
               f'<title>capdissect timeline of {_t(name)}</title>\n'
               f'<rect width="{width}" height="{height}" fill="#fff"/>\n'
               f'<g transform="translate({MARGIN},0)">'
               f'{_text(24, title, 17, weight="700")}'
               f'{_text(42, _legend(version), 11, "#555")}</g>\n')
        body.seek(0)
        while chunk := body.read(_COPY):
            yield chunk
    yield "</svg>\n"


def _count_undrawn(undrawn: list[int], item: Finished) -> None:
    flow = item.flow
    packets = (flow.packets if isinstance(flow, TcpConnection)
               else flow.datagrams + flow.icmp_unreachable)
    if not undrawn:
        undrawn[:] = [0, 0, flow.id, flow.id]
    undrawn[0] += 1
    undrawn[1] += packets
    undrawn[2] = min(undrawn[2], flow.id)
    undrawn[3] = max(undrawn[3], flow.id)


def _legend(version: str) -> str:
    return (f"capdissect {version}: one ladder per flow; #N is the packet's position in the "
            "file, time counts seconds from its first packet")


def _flow(item: Finished, first_ts: float, y: int, calls: list[Placed],
          findings: list[tuple[int, str]]) -> tuple[int, int, str]:
    """A flow's block placed at *y*: its height, the width its text needs, its markup."""
    flow = item.flow
    items = list(item.events)
    ids = f"f{flow.id}-"
    if isinstance(flow, TcpConnection):
        head = _tcp_head(flow)
        ladder = tcp_ladder(flow, items, first_ts, ids=ids, links=False, calls=calls)
        tail = _tcp_tail(flow, any(isinstance(i, Segment) for i in items))
        proto = "tcp"
    else:
        head = _udp_head(flow)
        ladder = udp_ladder(flow, items, first_ts, ids=ids, links=False, calls=calls)
        tail = []
        proto = "udp"
    tail += [(f"finding: {text}", CALL_COLOUR, "finding") for _, text in findings]
    left = item.events.left_out if isinstance(item.events, Replay) else None
    if left is not None:
        what = "segments" if proto == "tcp" else "datagrams"
        tail.append((f"\u2026 {left.items} more {what} (frames {left.first_frame} to "
                     f"{left.last_frame}) are not drawn: a drawing shows the first {left.kept} "
                     "of a flow (the text and JSON timelines have them all)", _NOTE_COLOUR,
                     "notice"))
    parts = [f'<g class="flow" id="flow{flow.id}" data-flow="{flow.id}" data-proto="{proto}" '
             f'transform="translate({MARGIN},{y})">',
             _text(18, head[0], 15, weight="700", cls="flow-title")]
    parts += [_text(36 + i * _LINE, line, 12, "#333") for i, line in enumerate(head[1:])]
    ladder_y = 36 + (len(head) - 1) * _LINE - 6
    parts.append(f'<g transform="translate(0,{ladder_y})">{ladder.svg}</g>')
    tail_y = ladder_y + ladder.height
    for i, (line, colour, cls) in enumerate(tail):
        parts.append(_text(tail_y + 14 + i * _LINE, line, 12, colour, cls=cls))
    parts.append("</g>")
    wide = max(_fits(head[:1], 15), _fits(head[1:] + [line for line, _, _ in tail], 12))
    return tail_y + len(tail) * _LINE + 4, wide, "".join(parts)


def _tcp_head(conn: TcpConnection) -> list[str]:
    """The lines the text timeline prints above a connection's ladder."""
    c, s = conn.client, conn.server
    closer = {"client": " by the client", "server": " by the server",
              "both": " by both at once"}.get(conn.closer or "", "")
    return [f"TCP connection {conn.id}: client {endpoint((c.addr, c.port))}, "
            f"server {endpoint((s.addr, s.port))}",
            f"open {conn.open}, close {conn.close}{closer}; {conn.packets} packets in "
            f"{max(conn.last_ts - conn.first_ts, 0.0):.6f} s",
            f"payload {c.payload} bytes from the client, {s.payload} from the server",
            f"Zeek conn_state {conn.conn_state}, history {conn.history or '-'}; Wireshark "
            f"completeness {conn.completeness}"]


def _tcp_tail(conn: TcpConnection, logged: bool) -> list[tuple[str, str, str]]:
    """The path each endpoint took (SPEC §4 ``path``) and the anomalies: (text, colour, class)."""
    c, s = conn.client, conn.server
    lines = [] if logged else [("(no segments were logged for this connection)", "#555",
                                "notice")]
    lines += [(f"client {endpoint((c.addr, c.port))}: {path_text(c.path)}", CLIENT_COLOUR, "path"),
              (f"server {endpoint((s.addr, s.port))}: {path_text(s.path)}", SERVER_COLOUR, "path")]
    lines += [(f"hint: {hint}", _NOTE_COLOUR, "hint") for hint in conn.hints]
    lines += [(f"anomaly: {anomaly}", _NOTE_COLOUR, "anomaly") for anomaly in conn.anomalies]
    return lines


def _udp_head(conv: UdpConversation) -> list[str]:
    unreachable = (f"; {conv.icmp_unreachable} ICMP port unreachable"
                   if conv.icmp_unreachable else "")
    return [f"UDP conversation {conv.id}: {endpoint(conv.a)} <-> {endpoint(conv.b)}",
            f"{conv.datagrams} datagrams, {conv.payload} bytes of payload in "
            f"{max(conv.last_ts - conv.first_ts, 0.0):.6f} s; Zeek conn_state "
            f"{conv.conn_state}{unreachable}",
            "UDP has no handshake, no connection and no states: each datagram stands alone."]
