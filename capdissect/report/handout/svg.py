"""The handout's pictures as inline SVG: ladders and the RFC 9293 state diagram (the
graphs are report/diagrams/graph.py's).

Every string that reaches the markup goes through ``_t`` (``html.escape``), numbers are
formatted by us, and nothing links outside the document (arrows link to the packet's
own section, ``#p12``).  The state diagram is drawn from ``track.states.figure_edges()``,
the very table the tracker runs on, so the picture cannot drift from the code (the h11
pattern: docs generated from the state table).

``timeline --svg`` stacks the same ladders in one SVG file (report/timeline/svg.py):
there each ladder gets its own marker ids (*ids*, as ids must be unique in a document)
and its arrows link nowhere (*links*), as that file has no packet sections.
"""

from __future__ import annotations

import html
import itertools
import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from capdissect.addresses import endpoint
from capdissect.report.tables.calls import ladder_mark
from capdissect.report.timeline.ladder import (
    changed_states,
    initial_states,
    phase_note,
    segment_label,
)
from capdissect.tracking.eventlog import Segment, TimelineItem
from capdissect.tracking.states import FigureEdge, TcpState, figure_edges
from capdissect.tracking.syscalls import Placed
from capdissect.tracking.tcp import CLIENT, TcpConnection
from capdissect.tracking.udp import Datagram, UdpConversation, Unreachable

S = TcpState
_REMARK_WIDTH: Final = 90  # characters a remark line between the lifelines holds
CLIENT_COLOUR: Final = "#1d4ed8"
SERVER_COLOUR: Final = "#c2410c"
CALL_COLOUR: Final = "#7c3aed"  # socket calls (trace): a diamond on the caller's lifeline


def _t(text: object) -> str:
    return html.escape(str(text), quote=True)


class Figure(NamedTuple):
    """A drawing and its size, for whoever places it (a document of several stacks them
    by *height*, with no need to read the numbers back out of the SVG)."""

    svg: str
    width: int
    height: int


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> Figure:
    return Figure(f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" role="img" '
            f'aria-label="{_t(label)}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}">' + "".join(body) + "</svg>", width, height)


_DEFS: Final = (
    '<defs>'
    '<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" '
    'markerHeight="{size}" '
    'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
    '</defs>')


def _marker(marker_id: str, colour: str, size: float = 7) -> str:
    """An arrowhead; *size* is in units of the line's width, so thick lines want less."""
    return _DEFS.format(id=marker_id, colour=colour, size=size)


# ----- ladder -----------------------------------------------------------------------------
_LEFT: Final = 210
_RIGHT: Final = 590
_WIDTH: Final = 800
_ROW: Final = 40
_BOX_ROW: Final = 30


def _box(x: int, y: int, text: str, colour: str) -> str:
    return (f'<g class="state"><rect x="{x - 62}" y="{y}" width="124" height="22" rx="5" '
            f'fill="#fff" stroke="{colour}" stroke-width="1.5"/><text x="{x}" y="{y + 15}" '
            f'text-anchor="middle" font-size="11" font-weight="600" fill="{colour}">'
            f'{_t(text)}</text></g>')


def _arrow(frame: int, rel: float, y: int, rightward: bool, label: str, note: str,
           cls: str, dotted: bool = False, *, ids: str = "", links: bool = True) -> str:
    x1, x2 = (_LEFT, _RIGHT) if rightward else (_RIGHT, _LEFT)
    colour = CLIENT_COLOUR if rightward else SERVER_COLOUR
    dash = ' stroke-dasharray="5 4"' if dotted else ""
    marker = f"{ids}ah-c" if rightward else f"{ids}ah-s"
    arrow = (f'<g class="{cls}" data-frame="{frame}">'
             f'<text x="8" y="{y + 12}" font-size="11" fill="#444">#{frame}</text>'
             f'<text x="48" y="{y + 12}" font-size="11" fill="#666">{rel:.6f}</text>'
             f'<line x1="{x1}" y1="{y + 2}" x2="{x2}" y2="{y + 20}" stroke="{colour}" '
             f'stroke-width="1.6"{dash} marker-end="url(#{marker})"/>'
             f'<text x="{(_LEFT + _RIGHT) // 2}" y="{y - 1}" text-anchor="middle" font-size="12" '
             f'font-family="ui-monospace, monospace" fill="#111">{_t(label)}</text>'
             f'<text x="{_RIGHT + 12}" y="{y + 14}" font-size="11" fill="#555">{_t(note)}</text>'
             '</g>')
    return f'<a href="#p{frame}">{arrow}</a>' if links else arrow


def _lifelines(height: int, left: str, right: str, ids: str = "") -> list[str]:
    return [_marker(f"{ids}ah-c", CLIENT_COLOUR), _marker(f"{ids}ah-s", SERVER_COLOUR),
            f'<text x="{_LEFT}" y="16" text-anchor="middle" font-size="12" font-weight="700" '
            f'fill="{CLIENT_COLOUR}">{_t(left)}</text>',
            f'<text x="{_RIGHT}" y="16" text-anchor="middle" font-size="12" font-weight="700" '
            f'fill="{SERVER_COLOUR}">{_t(right)}</text>',
            f'<line x1="{_LEFT}" y1="24" x2="{_LEFT}" y2="{height - 6}" stroke="#999"/>',
            f'<line x1="{_RIGHT}" y1="24" x2="{_RIGHT}" y2="{height - 6}" stroke="#999"/>',
            '<text x="8" y="16" font-size="10" fill="#666">packet</text>',
            '<text x="48" y="16" font-size="10" fill="#666">time (s)</text>']


def _call_marks(calls: list[Placed], before: int | None, y: int, left_side: str,
                body: list[str]) -> int:
    """Draw (and take from *calls*) the socket calls that returned before frame *before*
    (None: all): a diamond on the caller's lifeline, the call in italics beside it."""
    while calls and (before is None or calls[0].after_frame < before):
        placed = calls.pop(0)
        on_left = placed.side in (CLIENT, "a")
        x = _LEFT if on_left else _RIGHT
        tx, anchor = (x + 10, "start") if on_left else (x - 10, "end")
        body.append(f'<g class="call" data-after-frame="{placed.after_frame}">'
                    f'<rect x="{x - 4}" y="{y + 4}" width="8" height="8" '
                    f'transform="rotate(45 {x} {y + 8})" fill="{CALL_COLOUR}"/>'
                    f'<text x="{tx}" y="{y + 12}" text-anchor="{anchor}" font-size="10" '
                    f'font-style="italic" fill="{CALL_COLOUR}">{_t(ladder_mark(placed))}</text>'
                    '</g>')
        y += 16
    return y


def tcp_ladder(conn: TcpConnection, items: Iterable[TimelineItem], first_ts: float, *,
               ids: str = "", links: bool = True, calls: Sequence[Placed] = ()) -> Figure:
    """Two lifelines, an arrow per segment, a state box wherever an endpoint's state changes.

    *ids* prefixes the figure's element ids (several ladders in one document); *links*
    makes each arrow a link to its packet's section (``#p12``), which a handout has;
    *calls* (``trace``) are marked on their callers' lifelines.
    """
    c, s = conn.client, conn.server
    pending = list(calls)
    body: list[str] = []
    y = 32
    first = True
    for item in items:
        if not isinstance(item, Segment):
            continue
        event = item.event
        if first:
            client_state, server_state = initial_states(items)
            body.append(_box(_LEFT, y, client_state, CLIENT_COLOUR))
            body.append(_box(_RIGHT, y, server_state, SERVER_COLOUR))
            y += _BOX_ROW
            first = False
        y = _call_marks(pending, event.frame, y, CLIENT, body)
        y += 10
        body.append(_arrow(event.frame, event.ts - first_ts, y, event.sender == CLIENT,
                           segment_label(event), phase_note(event), "segment", ids=ids,
                           links=links))
        y += _ROW - 10
        for remark in [f"{f.name}: {f.why}" for f in event.analysis] + list(item.notes):
            for line in textwrap.wrap(remark, _REMARK_WIDTH):
                body.append(f'<text x="{(_LEFT + _RIGHT) // 2}" y="{y + 2}" '
                            f'text-anchor="middle" font-size="10" fill="#a16207">{_t(line)}'
                            '</text>')
                y += 14
        if event.changes:
            for role, state in changed_states(event).items():
                x, colour = ((_LEFT, CLIENT_COLOUR) if role == CLIENT
                             else (_RIGHT, SERVER_COLOUR))
                body.append(_box(x, y, state, colour))
            y += _BOX_ROW
    y = _call_marks(pending, None, y, CLIENT, body)
    height = y + 16
    return _svg(_WIDTH, height, f"ladder of TCP connection {conn.id}",
                _lifelines(height, f"client {endpoint((c.addr, c.port))}",
                           f"server {endpoint((s.addr, s.port))}", ids) + body)


def udp_ladder(conv: UdpConversation, items: Iterable[TimelineItem], first_ts: float, *,
               ids: str = "", links: bool = True, calls: Sequence[Placed] = ()) -> Figure:
    """Two "(no state)" lifelines, an arrow per datagram, ICMP errors dotted back (*ids*,
    *links* and *calls* as for ``tcp_ladder``)."""
    pending = list(calls)
    body: list[str] = []
    y = 32
    for x in (_LEFT, _RIGHT):
        body.append(f'<text x="{x}" y="{y + 14}" text-anchor="middle" font-size="11" '
                    'font-style="italic" fill="#666">(no state)</text>')
    y += _BOX_ROW
    last = {"a": 0, "b": 0}
    for item in items:
        y = _call_marks(pending, item.frame, y, "a", body)
        y += 10
        if isinstance(item, Datagram):
            last[item.sender] = item.frame
            body.append(_arrow(item.frame, item.ts - first_ts, y, item.sender == "a",
                               f"{item.length} bytes", "datagram", "datagram", ids=ids,
                               links=links))
        elif isinstance(item, Unreachable):
            to_a = not (item.quoted_frame is not None and item.quoted_frame == last["b"]
                        != last["a"])
            answers = (f"answers #{item.quoted_frame}" if item.quoted_frame is not None
                       else "answers a datagram not captured")
            body.append(_arrow(item.frame, item.ts - first_ts, y, not to_a,
                               "ICMP port unreachable", answers, "icmp", dotted=True,
                               ids=ids, links=links))
        y += _ROW - 10
    y = _call_marks(pending, None, y, "a", body)
    height = y + 16
    return _svg(_WIDTH, height, f"UDP conversation {conv.id}",
                _lifelines(height, endpoint(conv.a), endpoint(conv.b), ids) + body)


# ----- RFC 9293 Figure 5 ------------------------------------------------------------------
# Where each state sits, after the figure's own arrangement.  CLOSED is drawn twice, as in
# the RFC: at the top (where connections start) and at the bottom (where they end), so that
# no arrow has to climb back over the whole figure.
_POS: Final = {
    "CLOSED": (450, 40), "LISTEN": (450, 150), "SYN_RECEIVED": (150, 260),
    "SYN_SENT": (750, 260), "ESTABLISHED": (450, 370), "FIN_WAIT_1": (150, 470),
    "CLOSE_WAIT": (750, 470), "FIN_WAIT_2": (150, 600), "CLOSING": (450, 600),
    "LAST_ACK": (750, 600), "TIME_WAIT": (450, 710), "CLOSED_END": (750, 710),
}
_TOP_ROW_STATES: Final = frozenset({"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED"})
_BOX_W, _BOX_H = 132, 30
_FIG_W, _FIG_H = 900, 800
_LINE: Final = 13  # a label's line height; " / " separates the lines of a merged label

Point = tuple[float, float]
# Each arrow of the table, routed by hand as the RFC draws it: its points from border to
# border, and where its label sits (x, y of the first line, text-anchor).  Arrows the
# table gains later without a route here are drawn straight, labelled at their middle
# (and the DOM overlap test tells whether that is readable).
_ROUTES: Final[dict[tuple[str, str], tuple[tuple[Point, ...], tuple[float, float, str]]]] = {
    ("CLOSED", "LISTEN"): (((450, 55), (450, 135)), (442, 99, "end")),
    ("CLOSED", "SYN_SENT"): (((516, 40), (750, 40), (750, 245)), (633, 34, "middle")),
    ("LISTEN", "SYN_RECEIVED"): (((384, 150), (150, 150), (150, 245)), (267, 144, "middle")),
    ("SYN_SENT", "SYN_RECEIVED"): (((684, 260), (216, 260)), (450, 254, "middle")),
    ("SYN_SENT", "ESTABLISHED"): (((720, 275), (720, 370), (516, 370)), (728, 325, "start")),
    ("SYN_RECEIVED", "ESTABLISHED"): (((180, 275), (180, 370), (384, 370)),
                                      (188, 318, "start")),
    ("SYN_RECEIVED", "FIN_WAIT_1"): (((110, 275), (110, 455)), (102, 330, "end")),
    ("ESTABLISHED", "FIN_WAIT_1"): (((420, 385), (420, 462), (216, 462)), (318, 456, "middle")),
    ("ESTABLISHED", "CLOSE_WAIT"): (((480, 385), (480, 462), (684, 462)), (582, 456, "middle")),
    ("CLOSE_WAIT", "LAST_ACK"): (((750, 485), (750, 585)), (758, 539, "start")),
    ("FIN_WAIT_1", "FIN_WAIT_2"): (((120, 485), (120, 585)), (112, 539, "end")),
    ("FIN_WAIT_1", "CLOSING"): (((216, 476), (420, 585)), (312, 522, "start")),
    ("FIN_WAIT_1", "TIME_WAIT"): (((196, 485), (410, 695)), (356, 652, "end")),
    ("FIN_WAIT_2", "TIME_WAIT"): (((150, 615), (150, 710), (384, 710)), (160, 672, "start")),
    ("CLOSING", "TIME_WAIT"): (((450, 615), (450, 695)), (458, 659, "start")),
    ("LAST_ACK", "CLOSED_END"): (((750, 615), (750, 695)), (758, 659, "start")),
    ("TIME_WAIT", "CLOSED_END"): (((516, 710), (684, 710)), (600, 703, "middle")),
}
_EDGE_STYLE: Final = {  # style -> (colour, dash, label's font-style)
    "event": ("#6b7280", "", "normal"),
    "timer": ("#047857", ' stroke-dasharray="2 3"', "italic"),
    "reset": ("#9ca3af", ' stroke-dasharray="6 4"', "normal"),
}


def _node(before: TcpState, after: TcpState) -> tuple[str, str]:
    """The drawn nodes of an arrow: into CLOSED goes to the bottom copy once synchronized."""
    target = after.value
    if after is S.CLOSED and before.value not in _TOP_ROW_STATES:
        target = "CLOSED_END"
    return before.value, target


def _clip(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float]:
    """Where the line from box centre 1 to box centre 2 leaves box 2's border."""
    dx, dy = x1 - x2, y1 - y2
    if dx == 0 and dy == 0:
        return x2, y2
    scale = min((_BOX_W / 2) / abs(dx) if dx else math.inf,
                (_BOX_H / 2 + 3) / abs(dy) if dy else math.inf)
    return x2 + dx * scale, y2 + dy * scale


def _route(a: str, b: str) -> tuple[tuple[Point, ...], tuple[float, float, str]]:
    """The points of the arrow from node *a* to node *b*, and where its label goes."""
    if (a, b) in _ROUTES:
        return _ROUTES[(a, b)]
    (x1, y1), (x2, y2) = _POS[a], _POS[b]
    start, end = _clip(x2, y2, x1, y1), _clip(x1, y1, x2, y2)
    return (start, end), ((start[0] + end[0]) / 2 + 6, (start[1] + end[1]) / 2 - 4, "start")


def state_diagram(paths: Sequence[tuple[str, Sequence[TcpState], str]]) -> Figure:
    """Figure 5 from the tracker's table, each (name, path, colour) drawn over it.

    The resets of §3.10.7 (any synchronized state to CLOSED) would bury the figure under
    nine more arrows, so, like the RFC, it lists them under the figure and draws one only
    where a path takes it.
    """
    body: list[str] = [_marker("sd-grey", "#6b7280"), _marker("sd-timer", "#047857")]
    for i, (_, _, colour) in enumerate(paths):
        body.append(_marker(f"sd-{i}", colour, 3.5))
    edges = figure_edges()
    for edge in edges:
        if edge.style != "reset":
            a, b = _node(edge.before, edge.after)
            body.append(_edge(a, b, edge.label, edge.style))
    on_path: dict[str, str] = {}
    for i, (_, path, colour) in enumerate(paths):
        offset = (i - (len(paths) - 1) / 2) * 5  # side by side where both take an arrow
        for before, after in itertools.pairwise(path):
            points = [(x + offset, y + offset) for x, y in _route(*_node(before, after))[0]]
            body.append(_polyline(points, colour, f"sd-{i}", "", 3.2))
        for j, state in enumerate(path):
            node = _node(path[j - 1], state)[1] if j else state.value
            on_path.setdefault(node, colour)
    for name, (x, y) in _POS.items():
        label = "CLOSED" if name == "CLOSED_END" else name
        taken = on_path.get(name)
        stroke = taken or "#6b7280"
        fill = "#fff" if taken is None else "#fffbea"
        body.append(f'<g class="state-node" data-state="{_t(label)}"><rect x="{x - _BOX_W // 2}" '
                    f'y="{y - _BOX_H // 2}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
                    f'fill="{fill}" stroke="{stroke}" stroke-width="{2.5 if taken else 1.2}"/>'
                    f'<text x="{x}" y="{y + 4}" text-anchor="middle" font-size="12" '
                    f'font-weight="600" fill="#111">{_t(label)}</text></g>')
    body += _legend(edges, paths)
    return _svg(_FIG_W, _FIG_H, "RFC 9293 TCP state diagram with the paths taken", body)


def _legend(edges: Sequence[FigureEdge], paths: Sequence[tuple[str, Sequence[TcpState], str]]
            ) -> list[str]:
    resets = [e for e in edges if e.style == "reset"]
    y = 752
    out = []
    if resets:
        colour, dash, _ = _EDGE_STYLE["reset"]
        labels = " / ".join(dict.fromkeys(e.label for e in resets))
        out.append(f'<line x1="20" y1="{y}" x2="60" y2="{y}" stroke="{colour}" '
                   f'stroke-width="1.2"{dash}/><text x="66" y="{y + 4}" font-size="11" '
                   f'fill="#444">{_t(labels)}: from {len(resets)} states to CLOSED '
                   '(RFC 9293 §3.10.7), drawn where a path takes it</text>')
        y += 18
    for name, _, colour in paths:
        out.append(f'<line x1="20" y1="{y}" x2="60" y2="{y}" stroke="{colour}" '
                   f'stroke-width="3.2"/><text x="66" y="{y + 4}" font-size="11" '
                   f'fill="{colour}">{_t(name)}</text>')
        y += 16
    return out


def _polyline(points: Sequence[Point], colour: str, marker: str, dash: str,
              width: float) -> str:
    spelled = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (f'<polyline class="edge" points="{spelled}" fill="none" stroke="{colour}" '
            f'stroke-width="{width}"{dash} marker-end="url(#{marker})"/>')


def _edge(a: str, b: str, label: str, style: str) -> str:
    colour, dash, font_style = _EDGE_STYLE[style]
    points, (lx, ly, anchor) = _route(a, b)
    marker = "sd-timer" if style == "timer" else "sd-grey"
    ink = colour if style == "timer" else "#374151"
    lines = "".join(f'<tspan x="{lx:.1f}" dy="{_LINE if i else 0}">{_t(part)}</tspan>'
                    for i, part in enumerate(label.split(" / ")))
    return (_polyline(points, colour, marker, dash, 1.2)
            + f'<text class="edge-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" '
              f'font-size="10" font-style="{font_style}" fill="{ink}" '
              f'stroke="#fff" stroke-width="3" paint-order="stroke">{lines}</text>')
