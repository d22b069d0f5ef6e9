"""``timeline``: a ladder diagram per TCP connection and UDP conversation (SPEC §3.3).

Text: two lifelines, the client on the left and the server on the right.  Each segment
is an arrow in its direction, labelled the way tcpdump words it (flags, relative
seq/ack, length) with its phase beside the server's lifeline; where an endpoint's state
changes, its new state is boxed on its lifeline (``[SYN_SENT]``).  Frame numbers are
the packet's position in the file and times count from the capture's first packet, so
they match ``read -ttttt``.  Findings and the tracker's remarks go under their arrow.
UDP has "no state" lifelines, and an ICMP port unreachable is drawn as a dotted arrow
back to the sender of the datagram it answers.

Mermaid: one ``sequenceDiagram`` per flow.  Every text taken from a flow goes through
``mermaid_text``, which turns any character outside a small safe set into Mermaid's
``#NN;`` entity, so nothing can end a statement or open markup.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Iterator
from typing import Final

from capdissect.addresses import endpoint
from capdissect.report.tables.calls import ladder_mark
from capdissect.report.text import clean
from capdissect.tracking.eventlog import Segment, TimelineItem
from capdissect.tracking.states import TcpState
from capdissect.tracking.stream import Finished, Totals, end_notes
from capdissect.tracking.syscalls import Joined, Placed
from capdissect.tracking.tcp import CLIENT, SERVER, Event, TcpConnection
from capdissect.tracking.udp import Datagram, UdpConversation, Unreachable

MIN_INNER: Final = 44  # columns between the lifelines
_BOX_MAX: Final = max(len(s.value) for s in TcpState) + 2


# ----- labels ---------------------------------------------------------------------------
def segment_label(event: Event) -> str:
    """``S seq 0``, ``S. seq 0 ack 1``, ``P. 1:12 ack 1 (11 bytes)``, ``. ack 12``."""
    label, seq, length = event.flags, event.seq, event.length
    if seq is not None:
        if length:
            label += f" {seq}:{(seq + length) % (1 << 32)}"
        elif label != ".":  # a bare ACK: tcpdump too shows only its ack
            label += f" seq {seq}"
    if event.ack is not None:
        label += f" ack {event.ack}"
    if length:
        label += f" ({length} byte{'s' if length != 1 else ''})"
    return label


def phase_note(event: Event) -> str:
    """``handshake SYN``, ``data``, ``teardown ACK``: the phase and, if it adds, the label."""
    if event.label.lower() == event.phase:
        return event.phase
    return f"{event.phase} {event.label}"


def _datagram_label(length: int) -> str:
    return f"{length} byte{'s' if length != 1 else ''}"


# ----- text ladder ----------------------------------------------------------------------
class _Layout:
    """A ladder's columns: the frame and time gutter, then *inner* columns between the
    lifelines."""

    __slots__ = ("_stamp", "blank", "frame_w", "inner", "left", "time_w")

    def __init__(self, frame_w: int, time_w: int, inner: int) -> None:
        self.frame_w, self.time_w, self.inner = frame_w, time_w, inner
        self.left = frame_w + 2 + time_w + 3  # the column of the left lifeline
        self.blank = " " * self.left
        # printf-style, widths built in: twice as fast as an f-string's nested widths,
        # and a ladder has a gutter per segment
        self._stamp = f"%{frame_w}d  %{time_w}.6f   "

    def gutter(self, frame: int | None = None, rel: float | None = None) -> str:
        if frame is None or rel is None:
            return self.blank
        return self._stamp % (frame, rel)

    def arrow(self, label: str, rightward: bool, dotted: bool = False) -> str:
        text = f" {label} "
        line = "." if dotted else "-"
        dashes = max(self.inner - len(text) - 1, 4)
        left = dashes // 2
        body = line * left + text + line * (dashes - left)
        return "|" + (body + ">" if rightward else "<" + body) + "|"

    def boxes(self, client: str | None, server: str | None) -> str:
        """A row of the two lifelines with a state box on either (or both)."""
        cells = [" "] * (self.inner + 2)
        cells[0] = cells[-1] = "|"
        if client is not None:
            box = f"[{client}]"
            cells[0 : len(box)] = box
        if server is not None:
            box = f"[{server}]"
            cells[len(cells) - len(box) :] = box
        return "".join(cells).rstrip()

    def inside(self, text: str) -> str:
        """A remark between the lifelines (the right one dropped if it does not fit)."""
        body = f"  {text}"
        if len(body) <= self.inner:
            return "|" + body.ljust(self.inner) + "|"
        return "|" + body

    def mark(self, text: str, on_left: bool) -> str:
        """A socket call on one lifeline: ``|# text`` or ``text #|`` (segments are arrows);
        the far lifeline is dropped if the text does not fit."""
        body = f"# {text}" if on_left else f"{text} #"
        if len(body) > self.inner:
            return "|" + body
        return "|" + (body.ljust(self.inner) if on_left else body.rjust(self.inner)) + "|"

    def header(self, left: str, right: str) -> str:
        pad = max(self.inner + 2 - len(left) - len(right), 1)
        head = "frame".rjust(self.frame_w) + "  " + "time".rjust(self.time_w) + "   "
        return head + left + " " * pad + right


def _layout(items: Iterable[TimelineItem], first_ts: float, labels: tuple[str, str]
            ) -> _Layout:
    """Column widths from one pass over the flow's items (a flow's log makes its records
    as it is read, so a connection of millions of segments is never held as records).
    A number's width grows with its size (times are finite: seconds and a fraction), so
    only the largest frame and the earliest and latest times are spelt out, and a
    negative zero (``-0.000000``), which compares equal to zero."""
    top = 0
    early = late = 0.0
    negative_zero = False
    label_w = 0
    count = 0
    for item in items:
        count += 1
        rel = item.ts - first_ts
        if count == 1:
            early = late = rel
        elif rel < early:
            early = rel
        elif rel > late:
            late = rel
        if rel == 0.0 and math.copysign(1.0, rel) < 0:
            negative_zero = True
        if item.frame > top:
            top = item.frame
        if isinstance(item, Segment):
            label_w = max(label_w, len(segment_label(item.event)))
    frame_w, time_w = 5, 8
    if count:
        frame_w = max(frame_w, len(str(top)))
        time_w = max(time_w, len(f"{late:.6f}"), len(f"{early:.6f}"),
                     len(f"{-0.0:.6f}") if negative_zero else 0)
    inner = max(MIN_INNER, label_w + 10, len(labels[0]) + len(labels[1]) + 6,
                2 * _BOX_MAX + 2)
    return _Layout(frame_w, time_w, inner)


class _Marks:
    """A flow's socket calls, handed out by the frame they returned after."""

    def __init__(self, calls: Joined | None, flow: int) -> None:
        self._pending = list(calls.of(flow)) if calls is not None else []
        self.findings = [text for _, text in calls.findings.get(flow, [])] if calls else []

    @property
    def waiting(self) -> bool:
        """Whether calls are left to hand out (with none, a ladder does not ask)."""
        return bool(self._pending)

    def before(self, frame: int | None) -> list[Placed]:
        """The calls that returned before *frame* (None: all that are left)."""
        out = [p for p in self._pending if frame is None or p.after_frame < frame]
        self._pending = self._pending[len(out):]
        return out


def text_lines(flows: Iterable[Finished], totals: Totals,
               calls: Joined | None = None) -> Iterator[str]:
    """The ladder diagrams of *flows*, one line at a time, safe for a terminal; with
    *calls* (``trace``), each flow's socket calls marked on the caller's lifeline."""
    count = 0
    for item in flows:
        if count:
            yield ""
        count += 1
        yield clean(ladder_title(item.flow))
        if item.text is not None:  # the rest, made by a -j worker (ladder_text)
            yield from _split(item.text)
            continue
        first_ts = totals.first_ts if totals.first_ts is not None else item.flow.first_ts
        for line in _ladder(item, first_ts, _Marks(calls, item.flow.id)):
            yield clean(line)
    if not count:
        yield "no TCP connections or UDP conversations"
    for note in end_notes(totals):
        yield ""
        yield clean(note)


def ladder_title(flow: TcpConnection | UdpConversation) -> str:
    """A ladder's first line, which names the flow by its number (in a -j run, only the
    parent knows it)."""
    if isinstance(flow, TcpConnection):
        c, s = flow.client, flow.server
        return (f"TCP connection {flow.id}: client {endpoint((c.addr, c.port))}, "
                f"server {endpoint((s.addr, s.port))}")
    return f"UDP conversation {flow.id}: {endpoint(flow.a)} <-> {endpoint(flow.b)}"


_BATCH: Final = 4096  # lines of a worker's text joined into one piece


def ladder_text(item: Finished, first_ts: float) -> Iterator[str]:
    """A flow's ladder after its title, as a ``timeline -j`` worker makes it
    (``Finished.text``): the lines, safe for a terminal, in pieces (``_joined``);
    *first_ts* is the capture's first packet's time."""
    return _joined(clean(line) for line in _ladder(item, first_ts, _Marks(None, item.flow.id)))


def _joined(lines: Iterable[str]) -> Iterator[str]:
    """*lines*, each ending in a newline, joined ``_BATCH`` at a time."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _BATCH:
            batch.append("")
            yield "\n".join(batch)
            batch = []
    if batch:
        batch.append("")
        yield "\n".join(batch)


def _split(pieces: Iterable[str]) -> Iterator[str]:
    """The lines of *pieces* (``_joined``), which may end anywhere."""
    rest = ""
    for piece in pieces:
        lines = (rest + piece).split("\n")
        rest = lines.pop()
        yield from lines


def _ladder(item: Finished, first_ts: float, marks: _Marks) -> Iterator[str]:
    if isinstance(item.flow, TcpConnection):
        return _tcp_ladder(item.flow, item.events, first_ts, marks)
    return _udp_ladder(item.flow, item.events, first_ts, marks)


def _mark_lines(layout: _Layout, placed: list[Placed], left_side: str) -> Iterator[str]:
    for call in placed:
        yield layout.gutter() + layout.mark(ladder_mark(call), call.side == left_side)


def _tcp_ladder(conn: TcpConnection, items: Iterable[TimelineItem],
                first_ts: float, marks: _Marks) -> Iterator[str]:
    c, s = conn.client, conn.server
    client, server = endpoint((c.addr, c.port)), endpoint((s.addr, s.port))
    closer = f" by the {conn.closer}" if conn.closer in ("client", "server") else (
        " by both at once" if conn.closer == "both" else "")
    yield (f"open {conn.open}, close {conn.close}{closer}; {conn.packets} packets in "
           f"{max(conn.last_ts - conn.first_ts, 0.0):.6f} s; payload {c.payload} bytes from "
           f"the client, {s.payload} from the server")
    yield (f"Zeek conn_state {conn.conn_state}, history {conn.history or '-'}; Wireshark "
           f"completeness {conn.completeness}")
    yield ""
    labels = (f"client {client}", f"server {server}")
    layout = _layout(items, first_ts, labels)
    yield layout.header(*labels)
    blank = layout.gutter()
    first = True
    waiting = marks.waiting
    for item in items:
        if not isinstance(item, Segment):
            continue
        event = item.event
        if first:
            yield blank + layout.boxes(*initial_states(items))
            first = False
        if waiting:
            yield from _mark_lines(layout, marks.before(event.frame), CLIENT)
            waiting = marks.waiting
        yield (layout.gutter(event.frame, event.ts - first_ts)
               + layout.arrow(segment_label(event), event.sender == CLIENT) + "  "
               + phase_note(event))
        for finding in event.analysis:
            yield blank + layout.inside(f"! {finding.name}: {finding.why}")
        for remark in item.notes:
            yield blank + layout.inside(f"* {remark}")
        if event.changes:
            changed = changed_states(event)
            yield blank + layout.boxes(changed.get(CLIENT), changed.get(SERVER))
    if first:
        yield "(no segments were logged for this connection)"
    yield from _mark_lines(layout, marks.before(None), CLIENT)
    yield from (f"finding: {text}" for text in marks.findings)
    yield ""
    yield f"client {client}: {path_text(c.path)}"
    yield f"server {server}: {path_text(s.path)}"
    for hint in conn.hints:
        yield f"hint: {hint}"
    for anomaly in conn.anomalies:
        yield f"anomaly: {anomaly}"


NO_SOCKET: Final = "no socket"  # an endpoint the wire never shows a state for (refused)


def initial_states(items: Iterable[TimelineItem]) -> tuple[str, str]:
    """Each endpoint's state before its first change, as the top boxes of a ladder show it:
    the first change's "before", else the first state shown, else ``no socket``."""
    found: dict[str, str] = {}
    for item in items:
        if not isinstance(item, Segment):
            continue
        event = item.event
        for change in event.changes:
            if change.role not in found and change.before is not None:
                found[change.role] = change.before.value
        for role, state in zip((CLIENT, SERVER), event.states, strict=True):
            if role not in found and state is not None:
                found[role] = state.value
        if len(found) == 2:
            break
    return found.get(CLIENT, NO_SOCKET), found.get(SERVER, NO_SOCKET)


def changed_states(event: Event) -> dict[str, str]:
    """role -> the state it ends the segment in, for each endpoint that changed."""
    return {change.role: change.after.value for change in event.changes}


def path_text(path: Iterable[TcpState]) -> str:
    """An endpoint's SPEC §4 path as the ladders write it under themselves."""
    return " -> ".join(state.value for state in path) or f"- ({NO_SOCKET})"


def _udp_ladder(conv: UdpConversation, items: Iterable[TimelineItem],
                first_ts: float, marks: _Marks) -> Iterator[str]:
    a, b = endpoint(conv.a), endpoint(conv.b)
    unreachable = (f"; {conv.icmp_unreachable} ICMP port unreachable"
                   if conv.icmp_unreachable else "")
    yield (f"{conv.datagrams} datagrams, {conv.payload} bytes of payload in "
           f"{max(conv.last_ts - conv.first_ts, 0.0):.6f} s; Zeek conn_state "
           f"{conv.conn_state}{unreachable}")
    yield "UDP has no handshake, no connection and no states: each datagram stands alone."
    yield ""
    layout = _layout(items, first_ts, (a, b))
    yield layout.header(a, b)
    yield layout.gutter() + _no_state(layout)
    last = {"a": 0, "b": 0}  # the last datagram each side sent, to aim ICMP errors
    waiting = marks.waiting
    for item in items:
        rel = item.ts - first_ts
        if waiting:
            yield from _mark_lines(layout, marks.before(item.frame), "a")
            waiting = marks.waiting
        if isinstance(item, Datagram):
            last[item.sender] = item.frame
            yield (layout.gutter(item.frame, rel)
                   + layout.arrow(_datagram_label(item.length), item.sender == "a")
                   + "  datagram")
        elif isinstance(item, Unreachable):
            to_a = _icmp_goes_to_a(conv, item, last)
            answers = (f"answers frame {item.quoted_frame}" if item.quoted_frame is not None
                       else "answers a datagram not captured")
            port = conv.b[1] if to_a else conv.a[1]
            yield (layout.gutter(item.frame, rel)
                   + layout.arrow("ICMP port unreachable", not to_a, dotted=True)
                   + f"  {answers}: nothing listens on port {port}")
    yield from _mark_lines(layout, marks.before(None), "a")
    yield from (f"finding: {text}" for text in marks.findings)


def _no_state(layout: _Layout) -> str:
    cells = list("|" + " " * layout.inner + "|")
    cells[0 : len("(no state)")] = "(no state)"
    cells[len(cells) - len("(no state)") :] = "(no state)"
    return "".join(cells)


def _icmp_goes_to_a(conv: UdpConversation, item: Unreachable, last: dict[str, int]) -> bool:
    """An ICMP error goes back to the sender of the datagram it quotes."""
    if item.quoted_frame is not None and item.quoted_frame == last["b"] != last["a"]:
        return False
    if item.quoted_frame is not None and item.quoted_frame == last["a"]:
        return True
    # Not matched by frame: the reporter is the host the datagram went to.
    return not (item.reporter == conv.a[0] and item.reporter != conv.b[0])


# ----- Mermaid --------------------------------------------------------------------------
_MERMAID_SAFE: Final = frozenset(string.ascii_letters + string.digits + " .,:_()/-+='")


def mermaid_text(text: str) -> str:
    """*text* with every character outside a small safe set as a Mermaid entity (#59;)."""
    return "".join(ch if ch in _MERMAID_SAFE else f"#{ord(ch)};" for ch in text)


def mermaid_lines(flows: Iterable[Finished], calls: Joined | None = None, *,
                  totals: Totals | None = None) -> Iterator[str]:
    """One ``sequenceDiagram`` per flow, separated by a blank line; with *calls*, each
    socket call as a note beside its caller's lifeline (states are notes over it); with
    *totals*, the notes under a report as Mermaid comments after the last."""
    count = 0
    for item in flows:
        if count:
            yield ""
        count += 1
        yield "sequenceDiagram"
        flow = item.flow
        what = "TCP connection" if isinstance(flow, TcpConnection) else "UDP conversation"
        yield f"    %% {what} {flow.id}"
        if item.text is not None:  # the rest, made by a -j worker (mermaid_text_after)
            yield from _split(item.text)
        else:
            yield from _mermaid(item, _Marks(calls, flow.id))
    if not count:
        yield "%% no TCP connections or UDP conversations"
    for note in end_notes(totals) if totals is not None else ():
        yield ""
        yield f"%% {clean(note)}"


def mermaid_text_after(item: Finished, _first_ts: float) -> Iterator[str]:
    """A flow's Mermaid diagram after its first two lines (the second numbers the flow),
    as a ``timeline --mermaid -j`` worker makes it (``Finished.text``), in pieces."""
    return _joined(_mermaid(item, _Marks(None, item.flow.id)))


def _mermaid(item: Finished, marks: _Marks) -> Iterator[str]:
    if isinstance(item.flow, TcpConnection):
        return _tcp_mermaid(item.flow, item.events, marks)
    return _udp_mermaid(item.flow, item.events, marks)


def _mermaid_marks(placed: list[Placed], left: str, right: str, left_side: str
                   ) -> Iterator[str]:
    for call in placed:
        where = f"left of {left}" if call.side == left_side else f"right of {right}"
        yield f"    Note {where}: {mermaid_text('call ' + ladder_mark(call))}"


def _tcp_mermaid(conn: TcpConnection, items: Iterable[TimelineItem],
                 marks: _Marks) -> Iterator[str]:
    c, s = conn.client, conn.server
    m = mermaid_text
    yield f"    participant C as {m('client ' + endpoint((c.addr, c.port)))}"
    yield f"    participant S as {m('server ' + endpoint((s.addr, s.port)))}"
    first = True
    for item in items:
        if not isinstance(item, Segment):
            continue
        event = item.event
        if first:
            client, server = initial_states(items)
            yield f"    Note over C: {m(client)}"
            yield f"    Note over S: {m(server)}"
            first = False
        yield from _mermaid_marks(marks.before(event.frame), "C", "S", CLIENT)
        arrow = "C->>S" if event.sender == CLIENT else "S->>C"
        label = f"{event.frame} {segment_label(event)} ({phase_note(event)})"
        yield f"    {arrow}: {m(label)}"
        for finding in event.analysis:
            yield f"    Note over C,S: {m(f'{finding.name}: {finding.why}')}"
        for remark in item.notes:
            yield f"    Note over C,S: {m(remark)}"
        for role, state in changed_states(event).items():
            who = "C" if role == CLIENT else "S"
            yield f"    Note over {who}: {m(state)}"
    yield from _mermaid_marks(marks.before(None), "C", "S", CLIENT)
    yield from (f"    Note over C,S: {m('finding: ' + text)}" for text in marks.findings)


def _udp_mermaid(conv: UdpConversation, items: Iterable[TimelineItem],
                 marks: _Marks) -> Iterator[str]:
    m = mermaid_text
    yield f"    participant A as {m(endpoint(conv.a))}"
    yield f"    participant B as {m(endpoint(conv.b))}"
    yield "    Note over A,B: UDP: no handshake, no connection state"
    last = {"a": 0, "b": 0}
    for item in items:
        yield from _mermaid_marks(marks.before(item.frame), "A", "B", "a")
        if isinstance(item, Datagram):
            last[item.sender] = item.frame
            arrow = "A->>B" if item.sender == "a" else "B->>A"
            yield f"    {arrow}: {m(f'{item.frame} {_datagram_label(item.length)}')}"
        elif isinstance(item, Unreachable):
            arrow = "B-->>A" if _icmp_goes_to_a(conv, item, last) else "A-->>B"
            answers = (f" (answers frame {item.quoted_frame})"
                       if item.quoted_frame is not None else "")
            yield f"    {arrow}: {m(f'{item.frame} ICMP port unreachable{answers}')}"
    yield from _mermaid_marks(marks.before(None), "A", "B", "a")
    yield from (f"    Note over A,B: {m('finding: ' + text)}" for text in marks.findings)
