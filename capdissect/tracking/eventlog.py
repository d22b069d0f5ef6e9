"""The events of each open flow, packed small, for timelines of any length.

``timeline`` draws every segment of a connection, so it must remember them until the
connection is over.  The tracker's own ``keep_events`` holds one ``Event`` tuple per
segment (about 350 bytes with its floats, ints and strings); a long-lived connection of
the benchmark capture has 100,000 segments, and several run at once.  Here each segment
is one 42-byte struct record in a per-flow ``bytearray``, state changes included (a
short connection changes state on most of its segments); the rare segments with an
analysis finding or a note are kept whole beside it, keyed by position.
Replaying a finished flow decodes the records lazily, so a report streams even a huge
diagram.

The tracker swaps client and server when it recognises a simultaneous open; records
logged before the swap keep a bit saying which endpoint was the client then, and are
swapped back on replay.

A log may keep only each flow's first *limit* items (``timeline --svg`` draws at most
``DRAWN_MAX`` a flow): the rest are counted, with their first and last frames, and
cost nothing, so a drawing of a million-packet connection holds a thousand.
"""

from __future__ import annotations

import functools
import heapq
import struct
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

from capdissect.tracking.states import TcpState
from capdissect.tracking.tcp import (
    CLIENT,
    SERVER,
    Event,
    StateChange,
    TcpConnection,
    Update,
    swap_roles,
)
from capdissect.tracking.tracker import UdpUpdate
from capdissect.tracking.udp import Datagram, Endpoint, UdpConversation, Unreachable

# frame, ts, seq, ack, length, flags, phase, label, sender, client state, server state, bits,
# then the client's and the server's state change (before, after; _NO_CHANGE after: none)
_TCP: Final = struct.Struct("<QdIIIHHHBBBBBBBB")
# frame, ts, length, sender
_UDP: Final = struct.Struct("<QdIB")
_FRAME: Final = struct.Struct("<Q")  # a record's first field

_STATES: Final = tuple(TcpState)
_STATE_INDEX: Final = {state: i for i, state in enumerate(_STATES)}
_NO_STATE: Final = 255
_NO_CHANGE: Final = 254
_NO_SEQ, _NO_ACK, _WAS_FIRST_CLIENT, _HAS_EXTRA, _SERVER_FIRST = 1, 2, 4, 8, 16
_MAX_STRINGS: Final = 65535  # flag strings (at most 257), phases, labels
DRAWN_MAX: Final = 1_000  # items of one flow a drawing shows (timeline --svg), then a note


class Segment(NamedTuple):
    """One TCP segment of a timeline: the tracker's event and its plain-language notes."""

    event: Event
    notes: tuple[str, ...]

    @property
    def frame(self) -> int:
        return self.event.frame

    @property
    def ts(self) -> float:
        return self.event.ts


TimelineItem = Segment | Datagram | Unreachable
Numbers = tuple[int, float, int, int, int]  # a segment's frame, ts, seq, ack, length
T = TypeVar("T")
ShapeValues = dict[Hashable, dict[tuple[Any, ...], Any]]  # Replay.shapes: maker -> key -> value


@dataclass(slots=True)
class _FlowLog:
    data: bytearray = field(default_factory=bytearray)
    count: int = 0
    first_client: Endpoint | None = None  # the client when the first segment was logged
    extra: dict[int, Segment] = field(default_factory=dict)  # segments kept whole
    left: int = 0  # items past the log's limit: counted, not kept
    left_first: int = 0  # the frames of the first and last of them
    left_last: int = 0

    def full(self, limit: int | None, frame: int) -> bool:
        """Whether the log has its *limit* of items; if so, count the one of *frame*."""
        if limit is None or self.count < limit:
            return False
        if not self.left:
            self.left_first = frame
        self.left += 1
        self.left_last = frame
        return True


class LeftOut(NamedTuple):
    """The items of a flow a log counted but did not keep (past its limit)."""

    items: int
    first_frame: int
    last_frame: int
    kept: int  # the items kept before them


class Replay:
    """The logged items of one finished flow; iterable any number of times."""

    def __init__(self, log: _FlowLog, strings: list[str], swap: bool,
                 unreachable: tuple[Unreachable, ...] = (), udp: bool = False,
                 shaped: ShapeValues | None = None) -> None:
        self._log = log
        self._strings = strings
        # The values of shapes already made, per maker: the log's own, shared by its
        # flows (the codes in a key are the log's strings).
        self._shaped: ShapeValues = {} if shaped is None else shaped
        self._swap = swap  # the flow's client is not the one first logged
        self._unreachable = unreachable
        self._udp = udp

    def __reduce__(self) -> tuple[type[Replay], tuple[Any, ...]]:
        # Sent whole between processes (tracking/shards.py), without the shapes' cache:
        # the receiver shares one of its own among a log's replays (share_shapes).
        return (Replay, (self._log, self._strings, self._swap, self._unreachable, self._udp))

    def share_shapes(self, shaped: ShapeValues) -> None:
        """Keep the values of shapes in *shaped*, shared with other replays of this log."""
        self._shaped = shaped

    def __len__(self) -> int:
        return self._log.count + len(self._unreachable)

    @property
    def left_out(self) -> LeftOut | None:
        """The items past the log's limit, if there were any."""
        log = self._log
        if not log.left:
            return None
        return LeftOut(log.left, log.left_first, log.left_last, log.count)

    def __iter__(self) -> Iterator[TimelineItem]:
        if self._udp:
            # Datagrams and the ICMP errors that answer them, in capture order.
            return heapq.merge(self._datagrams(), self._unreachable, key=lambda x: x.frame)
        return iter(self._segments())

    def _datagrams(self) -> Iterator[Datagram]:
        for frame, ts, length, sender in _UDP.iter_unpack(self._log.data):
            yield Datagram(frame, ts, "b" if sender else "a", length)

    def _segments(self) -> Iterator[Segment]:
        for i, record in enumerate(_TCP.iter_unpack(self._log.data)):
            yield self._segment(i, record)

    def _segment(self, i: int, record: tuple[Any, ...]) -> Segment:
        (frame, ts, seq, ack, length, flags, phase, label, sender, state_c, state_s,
         bits, c_before, c_after, s_before, s_after) = record
        if bits & _HAS_EXTRA:
            event, notes = self._log.extra[i]
        else:
            strings = self._strings
            changes = _changes(c_before, c_after, s_before, s_after)
            if bits & _SERVER_FIRST:
                changes = changes[::-1]
            event = Event(frame, ts, SERVER if sender else CLIENT, strings[flags],
                          None if bits & _NO_SEQ else seq, None if bits & _NO_ACK else ack,
                          length, strings[phase], strings[label],
                          (_state(state_c), _state(state_s)), changes, ())
            notes = ()
        if self._swap == bool(bits & _WAS_FIRST_CLIENT):
            event = swap_roles(event)
        return Segment(event, notes)

    def json_texts(self, general: Callable[[TimelineItem], str]) -> Iterator[str]:
        """Each item as JSON text, in order: what ``general(item)`` gives, only faster.

        A timeline of the benchmark capture has a million events.  Almost all are data
        segments and ACKs whose only differences are five numbers, so their text comes
        from a %-template per shape (``shapes``), built once with *general* itself.
        tests/unit/test_timeline.py checks that both give the same text.
        """
        if self._udp:
            yield from self._udp_json_texts(general)
            return
        for value, numbers in self.shapes(functools.partial(_template, general), general,
                                          maker=(_template, general)):
            yield value if numbers is None else value % numbers

    def shapes(self, shape: Callable[[Segment], T], general: Callable[[TimelineItem], T],
               maker: Hashable | None = None) -> Iterator[tuple[T, Numbers | None]]:
        """The TCP items in order, each made once per shape instead of once per item.

        A segment's shape is sender, flags, phase, label and states: all of it but its
        five numbers (frame, ts, seq, ack, length) and its state changes, so *shape*'s
        value must not depend on those (the JSON's ``through`` does, and only a segment
        kept whole can have it).  For each segment of the packed kind this gives
        ``shape(first segment of its shape)`` and the segment's numbers; for the others
        (kept whole for a finding or a note, or without seq or ack) ``general(item)``
        and None.  The caller puts the numbers into the shape's value.

        A shape's value is made once for all the flows of the log: *maker* (by default
        *shape* itself) says which values are *shape*'s.  The short flows of the bench
        capture have a few packets of each shape.
        """
        values: dict[tuple[int, ...], T] = self._shaped.setdefault(
            shape if maker is None else maker, {})
        swap = self._swap
        for i, record in enumerate(_TCP.iter_unpack(self._log.data)):
            bits = record[11]
            if bits & (_HAS_EXTRA | _NO_SEQ | _NO_ACK):
                yield general(self._segment(i, record)), None
                continue
            # flags, phase, label, sender, client state, server state; the roles' swap
            key = (*record[5:11], swap == bool(bits & _WAS_FIRST_CLIENT))
            value = values.get(key)
            if value is None:
                value = values[key] = shape(self._segment(i, record))
            yield value, record[:5]  # frame, ts, seq, ack, length

    def _udp_json_texts(self, general: Callable[[TimelineItem], str]) -> Iterator[str]:
        templates = {sender: _template(general, Datagram(0, 0.0, sender, 0))
                     for sender in ("a", "b")}

        def datagrams() -> Iterator[tuple[int, str]]:
            for frame, ts, length, sender in _UDP.iter_unpack(self._log.data):
                yield frame, templates["b" if sender else "a"] % (frame, ts, length)

        unreachable = ((u.frame, general(u)) for u in self._unreachable)
        for _, text in heapq.merge(datagrams(), unreachable, key=lambda x: x[0]):
            yield text


# Distinct placeholder numbers, so each can be told from the others in the rendered text.
_MARKS: Final = (1_234_567_891, 2_345_678_912, 3_456_789_123, 987_654_321)
_TS_MARK: Final = 1_111_111_111.25


def _template(general: Callable[[TimelineItem], str], item: Segment | Datagram) -> str:
    """A %-template of *general*'s text for *item*: the numbers become %d / %r."""
    order: tuple[str, ...]
    if isinstance(item, Segment):
        frame, seq, ack, length = _MARKS
        probe: TimelineItem = Segment(item.event._replace(
            frame=frame, ts=_TS_MARK, seq=seq, ack=ack, length=length), item.notes)
        order = (str(frame), repr(_TS_MARK), str(seq), str(ack), str(length))
    else:
        frame, length = _MARKS[0], _MARKS[3]
        probe = item._replace(frame=frame, ts=_TS_MARK, length=length)
        order = (str(frame), repr(_TS_MARK), str(length))
    rest = general(probe).replace("%", "%%")
    # The marks must come once each and in argument order (% takes them by position).
    pieces = []
    for mark in order:
        head, found, rest = rest.partition(mark)
        if not found or mark in rest or any(m in head for m in order):
            raise ValueError(f"cannot make a template of {general(probe)!r}")
        pieces.append(head + ("%r" if mark == repr(_TS_MARK) else "%d"))
    return "".join(pieces) + rest


class EventLog:
    """Logs each flow's items as the tracker reports them; ``take`` hands them out once.

    *only* limits logging to one flow id (``timeline --conn N``): the others cost nothing.
    *limit* keeps each flow's first *limit* items and counts the rest (``Replay.left_out``).
    """

    def __init__(self, only: int | None = None, limit: int | None = None) -> None:
        self.only = only
        self.limit = limit
        self._logs: dict[int, _FlowLog] = {}
        self._strings: list[str] = []
        self._string_index: dict[str, int] = {}
        self._shaped: ShapeValues = {}  # Replay.shapes's, for all the flows

    def tcp(self, update: Update) -> None:
        conn, event = update.connection, update.event
        if self.only is not None and conn.id != self.only:
            return
        log = self._logs.get(conn.id)
        if log is None:
            log = self._logs[conn.id] = _FlowLog()
        client = (conn.client.addr, conn.client.port)
        if log.first_client is None:
            log.first_client = client
        if update.revised:
            self._revise(log, update.revised, client)
        if log.full(self.limit, event.frame):
            return
        log.data += self._pack(log, log.count, event, update.notes, client)
        log.count += 1

    def _revise(self, log: _FlowLog, events: tuple[Event, ...],
                client: tuple[bytes, int]) -> None:
        """Rewrite logged records with the tracker's corrected events (by frame; they are
        among the last few logged)."""
        wanted = {e.frame: e for e in events}
        size = _TCP.size
        index = log.count - 1
        oldest = min(wanted)
        while wanted and index >= 0:
            frame = _FRAME.unpack_from(log.data, index * size)[0]
            if frame < oldest:  # logged in frame order: the rest were not logged
                break
            event = wanted.pop(frame, None)
            if event is not None:
                kept = log.extra.pop(index, None)
                notes = kept.notes if kept is not None else ()
                log.data[index * size:(index + 1) * size] = self._pack(log, index, event,
                                                                       notes, client)
            index -= 1

    def _pack(self, log: _FlowLog, index: int, event: Event, notes: tuple[str, ...],
              client: tuple[bytes, int]) -> bytes:
        bits = _WAS_FIRST_CLIENT if client == log.first_client else 0
        if event.seq is None:
            bits |= _NO_SEQ
        if event.ack is None:
            bits |= _NO_ACK
        twice = False  # more than one change of one endpoint
        c_before = s_before = _NO_STATE
        c_after = s_after = _NO_CHANGE
        if event.changes:  # most segments (data, ACKs) change no state
            roles = [c.role for c in event.changes]
            if roles[0] == SERVER and len(roles) > 1:
                bits |= _SERVER_FIRST  # the changes in the order they happened
            twice = len(roles) != len(set(roles))
            change = {c.role: (_index(c.before), _index(c.after)) for c in event.changes}
            c_before, c_after = change.get(CLIENT, (_NO_STATE, _NO_CHANGE))
            s_before, s_after = change.get(SERVER, (_NO_STATE, _NO_CHANGE))
        if event.analysis or notes or twice:
            # Kept whole: findings, notes, or more than one change of one endpoint.
            bits |= _HAS_EXTRA
            log.extra[index] = Segment(event, notes)
        return _TCP.pack(
            event.frame, event.ts, event.seq or 0, event.ack or 0, event.length,
            self._intern(event.flags), self._intern(event.phase), self._intern(event.label),
            event.sender == SERVER, _index(event.states[0]), _index(event.states[1]), bits,
            c_before, c_after, s_before, s_after)

    def udp(self, update: UdpUpdate) -> None:
        conv, datagram = update.conversation, update.datagram
        if self.only is not None and conv.id != self.only:
            return
        log = self._logs.get(conv.id)
        if log is None:
            log = self._logs[conv.id] = _FlowLog()
        if log.full(self.limit, datagram.frame):
            return
        log.data += _UDP.pack(datagram.frame, datagram.ts, datagram.length,
                              datagram.sender == "b")
        log.count += 1

    def take(self, flow: TcpConnection | UdpConversation) -> Replay:
        """The items of *flow*, now finished; the log forgets them."""
        log = self._logs.pop(flow.id, None) or _FlowLog()
        if isinstance(flow, UdpConversation):
            return Replay(log, self._strings, False, tuple(flow.unreachable), udp=True)
        client = (flow.client.addr, flow.client.port)
        swap = log.first_client is not None and client != log.first_client
        return Replay(log, self._strings, swap, shaped=self._shaped)

    def _intern(self, text: str) -> int:
        index = self._string_index.get(text)
        if index is None:
            if len(self._strings) >= _MAX_STRINGS:
                raise ValueError(f"too many distinct labels to pack: {text!r}")
            index = self._string_index[text] = len(self._strings)
            self._strings.append(text)
        return index


def _index(state: TcpState | None) -> int:
    return _NO_STATE if state is None else _STATE_INDEX[state]


def _state(index: int) -> TcpState | None:
    return None if index == _NO_STATE else _STATES[index]


@functools.cache
def _changes(c_before: int, c_after: int, s_before: int,
             s_after: int) -> tuple[StateChange, ...]:
    """The changes tuple, client first; one object per kind."""
    changes = []
    if c_after != _NO_CHANGE:
        changes.append(StateChange(CLIENT, _state(c_before), _STATES[c_after]))
    if s_after != _NO_CHANGE:
        changes.append(StateChange(SERVER, _state(s_before), _STATES[s_after]))
    return tuple(changes)
