"""``capdissect graph``: one connection over time, as SVG or as a text plot.

Kinds (after tcptrace and Wireshark's Statistics > TCP Stream Graphs):

- ``tsg``: Stevens' time-sequence graph of one direction's data: a bar per segment from
  its first to its last sequence number (retransmissions in red), the peer's acks as a
  step line (an ack holds until the next one), the receive window's right edge (ack +
  window) as a step line, and the SACK blocks the peer reported;
- ``rtt``: ``tcp.analysis.ack_rtt`` samples of the data the direction sent;
- ``throughput``: its data bytes per second over a sliding interval;
- ``inflight``: ``tcp.analysis.bytes_in_flight`` after each of its data segments;
- ``window``: the window each side advertised.

The direction is the side that sent more data unless asked.  Pure: samples in, text
out; every label is ours or a number, and goes through ``html.escape`` anyway.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

from capdissect.report.diagrams.flight import Sample
from capdissect.tracking.tcp import CLIENT, SERVER, TcpConnection

KINDS: Final = ("tsg", "rtt", "throughput", "inflight", "window")
DATA_COLOUR: Final = "#1d4ed8"
RETRANS_COLOUR: Final = "#dc2626"
ACK_COLOUR: Final = "#059669"
WINDOW_COLOUR: Final = "#a16207"
SACK_COLOUR: Final = "#7c3aed"
PEER_COLOUR: Final = "#c2410c"
_W, _H = 760, 300  # the plot's box
_ML, _MR, _MT, _MB = 78, 24, 30, 46  # margins: tick labels left, axis title below
_LEGEND_ROW: Final = 16


class Series(NamedTuple):
    name: str
    colour: str
    style: str  # dots | steps | bars (points are (x, y0, y1) for bars)
    points: tuple[tuple[float, ...], ...]
    frames: tuple[int, ...] = ()  # the packet of each point


class Plot(NamedTuple):
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    note: str = ""


def _other(role: str) -> str:
    return SERVER if role == CLIENT else CLIENT


def busiest(samples: Sequence[Sample]) -> str:
    """The side that sent more data (the client on a tie)."""
    sent = {CLIENT: 0, SERVER: 0}
    for s in samples:
        sent[s.sender] += s.length
    return SERVER if sent[SERVER] > sent[CLIENT] else CLIENT


def plot(conn: TcpConnection, samples: Sequence[Sample], kind: str,
         direction: str | None = None) -> Plot:
    """The *kind* plot of *direction*'s data (default: the busier side)."""
    role = direction or busiest(samples)
    peer = _other(role)
    mine = [s for s in samples if s.sender == role]
    theirs = [s for s in samples if s.sender == peer]
    where = f"connection {conn.id}, {role} -> {peer}"
    if kind == "tsg":
        return _tsg(where, mine, theirs)
    if kind == "rtt":
        points = [s for s in theirs if s.ack_rtt is not None]
        return Plot(f"Round-trip time, {where}", "time (s)", "ack RTT (ms)", (Series(
            "RTT: from a segment to the ack of exactly its end (tcp.analysis.ack_rtt)",
            DATA_COLOUR, "dots", tuple((s.ts, (s.ack_rtt or 0) * 1000) for s in points),
            tuple(s.frame for s in points)),))
    if kind == "inflight":
        points = [s for s in mine if s.in_flight is not None]
        return Plot(f"Bytes in flight, {where}", "time (s)", "bytes", (Series(
            "sent, not yet acknowledged (tcp.analysis.bytes_in_flight)", DATA_COLOUR, "dots",
            tuple((s.ts, float(s.in_flight or 0)) for s in points),
            tuple(s.frame for s in points)),))
    if kind == "throughput":
        return _throughput(where, mine)
    if kind == "window":
        return Plot(f"Advertised window, connection {conn.id}", "time (s)", "bytes", tuple(
            Series(f"window the {who} advertised", colour, "steps",
                   tuple((s.ts, float(s.window)) for s in samples if s.sender == who),
                   tuple(s.frame for s in samples if s.sender == who))
            for who, colour in ((role, DATA_COLOUR), (peer, PEER_COLOUR))))
    raise ValueError(f"unknown graph kind {kind!r}; one of {', '.join(KINDS)}")


def _tsg(where: str, mine: Sequence[Sample], theirs: Sequence[Sample]) -> Plot:
    """While data flows: from the first data segment to the ack of the last byte, so a
    short lesson's few bytes are not lost in the seconds a close takes."""
    data = [s for s in mine if s.length]
    fresh = [s for s in data if not s.retransmission]
    again = [s for s in data if s.retransmission]
    acks = [s for s in theirs if s.ack is not None]
    if data:
        end = max(s.seq + s.length for s in data)
        start = data[0].ts
        stop = next((s.ts for s in acks if s.ts >= data[-1].ts and (s.ack or 0) >= end),
                    data[-1].ts)
        before = [s for s in acks if s.ts < start][-1:]
        acks = before + [s for s in acks if start <= s.ts <= stop]
        theirs = [s for s in theirs if start <= s.ts <= stop]
    series = [
        Series("data segments (first to last sequence number)", DATA_COLOUR, "bars",
               tuple((s.ts, s.seq, s.seq + s.length) for s in fresh),
               tuple(s.frame for s in fresh)),
        Series("retransmissions", RETRANS_COLOUR, "bars",
               tuple((s.ts, s.seq, s.seq + s.length) for s in again),
               tuple(s.frame for s in again)),
        Series("acks from the peer (held until the next)", ACK_COLOUR, "steps",
               tuple((s.ts, float(s.ack or 0)) for s in acks), tuple(s.frame for s in acks)),
        Series("receive window's right edge (ack + window)", WINDOW_COLOUR, "steps",
               tuple((s.ts, float((s.ack or 0) + s.window)) for s in acks),
               tuple(s.frame for s in acks)),
        Series("SACK blocks the peer reported", SACK_COLOUR, "bars",
               tuple((s.ts, left, right) for s in theirs for left, right in s.sacks),
               tuple(s.frame for s in theirs for _ in s.sacks)),
    ]
    return Plot(f"Time-sequence graph, {where}", "time (s)", "relative sequence number",
                tuple(x for x in series if x.points))


def _throughput(where: str, mine: Sequence[Sample]) -> Plot:
    data = [s for s in mine if s.length]
    span = (data[-1].ts - data[0].ts) if len(data) > 1 else 0.0
    interval = max(span / 20, 1e-3)
    points = []
    for i, s in enumerate(data):
        inside = sum(x.length for x in data[: i + 1] if x.ts > s.ts - interval)
        points.append((s.ts, inside / interval))
    return Plot(f"Throughput, {where}", "time (s)", "bytes/s", (Series(
        f"data bytes per second over the last {interval * 1000:.3g} ms", DATA_COLOUR, "steps",
        tuple(points), tuple(s.frame for s in data)),))


# ----- scales ------------------------------------------------------------------------------
def _bounds(p: Plot) -> tuple[float, float, float, float]:
    xs = [pt[0] for s in p.series for pt in s.points]
    ys = [v for s in p.series if "window" not in s.name or len(p.series) == 2
          for pt in s.points for v in pt[1:]]
    if not xs:
        return 0.0, 1.0, 0.0, 1.0
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys, default=0.0), max(ys, default=1.0)
    if p.title.startswith(("Round-trip", "Bytes in flight", "Throughput", "Advertised")):
        y0 = 0.0
    x1, y1 = _above(x0, x1, 1e-3), _above(y0, y1, 1)
    return x0, x1, y0, y1 + (y1 - y0) * 0.05


def _above(lo: float, hi: float, least: float) -> float:
    """*hi*, or a value above *lo* by *least* where *hi* is not above it.  Far from zero
    (a clock that jumped by years) *least* may vanish in *lo*'s last digit; the step is
    then a billionth of *lo*, so the plot still has a width to divide by."""
    return hi if hi > lo else lo + max(least, abs(lo) * 1e-9)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def _num(value: float, span: float = 0.0) -> str:
    """*value* with as many decimals as a tick step of *span* / 4 needs (none from 4 up)."""
    step = span / 4 if span > 0 else abs(value)
    decimals = 0 if step >= 4 or (value == int(value) and not span) else \
        max(0, 1 - math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 9)}f}"


# ----- SVG ---------------------------------------------------------------------------------
def _t(text: object) -> str:
    return html.escape(str(text), quote=True)


def svg(p: Plot, *, links: bool = False) -> str:
    """The plot as one SVG figure; *links*: each point links to its packet (handouts)."""
    x0, x1, y0, y1 = _bounds(p)
    left, right, top, bottom = _ML, _W - _MR, _MT, _H - _MB

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (min(max(y, y0), y1) - y0) / (y1 - y0) * (bottom - top)

    body = [f'<text x="{left}" y="18" font-size="13" font-weight="700">{_t(p.title)}</text>',
            f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>']
    for x in _ticks(x0, x1):
        body.append(f'<line x1="{px(x):.1f}" y1="{bottom}" x2="{px(x):.1f}" y2="{bottom + 4}" '
                    f'stroke="#333"/><text x="{px(x):.1f}" y="{bottom + 16}" font-size="10" '
                    f'text-anchor="middle">{_t(_num(x, x1 - x0))}</text>')
    for y in _ticks(y0, y1):
        body.append(f'<line x1="{left - 4}" y1="{py(y):.1f}" x2="{left}" y2="{py(y):.1f}" '
                    f'stroke="#333"/><text x="{left - 6}" y="{py(y) + 3:.1f}" font-size="10" '
                    f'text-anchor="end">{_t(_num(y, y1 - y0))}</text>')
    body.append(f'<text x="{(left + right) / 2:.0f}" y="{bottom + 34}" font-size="11" '
                f'text-anchor="middle">{_t(p.xlabel)}</text>'
                f'<text x="14" y="{(top + bottom) / 2:.0f}" font-size="11" text-anchor="middle" '
                f'transform="rotate(-90 14 {(top + bottom) / 2:.0f})">{_t(p.ylabel)}</text>')
    for s in p.series:
        body.extend(_marks(s, px, py, links))
    height = _H + 8 + _LEGEND_ROW * len(p.series)
    for i, s in enumerate(p.series):  # below the plot, a row each: nothing crosses them
        y = _H + 8 + i * _LEGEND_ROW
        body.append(f'<line x1="{left}" y1="{y}" x2="{left + 26}" y2="{y}" stroke="{s.colour}" '
                    f'stroke-width="3"/><text x="{left + 32}" y="{y + 4}" font-size="11" '
                    f'fill="#222">{_t(s.name)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram graph" role="img" '
            f'aria-label="{_t(p.title)}" viewBox="0 0 {_W} {height}" width="{_W}" '
            f'height="{height}">' + "".join(body) + "</svg>")


def _marks(s: Series, px: object, py: object, links: bool) -> Iterator[str]:
    assert callable(px) and callable(py)
    if s.style == "steps" and s.points:
        coords = []
        for i, (x, y) in enumerate(s.points):
            if i:
                coords.append(f"{px(x):.1f},{py(s.points[i - 1][1]):.1f}")
            coords.append(f"{px(x):.1f},{py(y):.1f}")
        yield (f'<polyline points="{" ".join(coords)}" fill="none" stroke="{s.colour}" '
               'stroke-width="1.5"/>')
        return
    for point, frame in zip(s.points, s.frames or (0,) * len(s.points), strict=True):
        if s.style == "bars":
            x, a, b = point
            mark = (f'<line x1="{px(x):.1f}" y1="{py(a):.1f}" x2="{px(x):.1f}" '
                    f'y2="{min(py(b), py(a) - 2):.1f}" stroke="{s.colour}" stroke-width="3"/>')
        else:
            mark = (f'<circle cx="{px(point[0]):.1f}" cy="{py(point[1]):.1f}" r="2.5" '
                    f'fill="{s.colour}"/>')
        yield f'<a href="#p{frame}">{mark}</a>' if links and frame else mark


# ----- text --------------------------------------------------------------------------------
def text_plot(p: Plot, width: int = 64, height: int = 14) -> str:
    """The plot in characters for a terminal: a mark per series, the range on the axes."""
    x0, x1, y0, y1 = _bounds(p)
    grid = [[" "] * width for _ in range(height)]
    marks = "*o+#x"

    def cell(x: float, y: float) -> tuple[int, int]:
        col = round((x - x0) / (x1 - x0) * (width - 1))
        row = round((min(max(y, y0), y1) - y0) / (y1 - y0) * (height - 1))
        return height - 1 - row, col

    for mark, s in zip(marks, p.series, strict=False):
        for point in s.points:
            for y in point[1:]:
                r, c = cell(point[0], y)
                grid[r][c] = mark
    label = max(len(_num(y0, y1 - y0)), len(_num(y1, y1 - y0)))
    lines = [p.title, f"{p.ylabel}"]
    for i, row in enumerate(grid):
        edge = _num(y1, y1 - y0) if i == 0 else _num(y0, y1 - y0) if i == height - 1 else ""
        lines.append(f"{edge:>{label}} |" + "".join(row))
    lines.append(" " * label + " +" + "-" * width)
    lines.append(" " * label + f"  {_num(x0, x1 - x0)}"
                 + f"{_num(x1, x1 - x0)} {p.xlabel}".rjust(width - 6))
    lines += [f"  {mark} {s.name}" for mark, s in zip(marks, p.series, strict=False)]
    return "\n".join(lines) + "\n"


def tsv(p: Plot) -> str:
    """Every plotted point: series, packet, time and value(s), tab-separated."""
    out = ["series\tframe\ttime\tvalue"]
    for s in p.series:
        for point, frame in zip(s.points, s.frames, strict=True):
            out.append("\t".join([s.name, str(frame), f"{point[0]:.6f}",
                                  *(f"{v:.9g}" for v in point[1:])]))
    return "\n".join(out) + "\n"
