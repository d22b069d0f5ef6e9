"""The stream the flow reports consume: decoded packets in, finished flows out.

``track`` feeds a Tracker packet by packet and says, for each packet, what the tracker
saw and which flows it retired (``Step``), then what was still open at the end (``End``).
``finished`` turns that into ``Finished`` flows, each with its logged events when asked,
in id order as far as a bounded window allows.  Nothing here holds the whole capture:
memory follows the flows open at once (SPEC §5).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.dissect.stack import Packet
from capdissect.errors import CaptureError
from capdissect.tracking.eventlog import EventLog, Replay, TimelineItem
from capdissect.tracking.tcp import TcpConnection, Update
from capdissect.tracking.tracker import Flow, Observation, Tracker, UdpUpdate
from capdissect.tracking.udp import UdpConversation

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

# Finished flows are reordered by id within this many; past it they go out as retired.
# (The tracker retires a flow when it has been quiet a while, so a long connection can
# finish after thousands of later short ones.)
ORDER_WINDOW: Final = 10_000


class Step(NamedTuple):
    """One packet: its 1-based frame number, what the tracker saw, what it retired."""

    frame: int
    ts: float
    seen: Observation | None
    retired: list[Flow]


class Truncation(NamedTuple):
    """Where a damaged capture stopped: the last frame read whole and the reader's error."""

    after_frame: int
    error: CaptureError

    @property
    def message(self) -> str:
        return str(self.error)

    def note(self) -> str:
        """The line a report carries when the capture was cut short."""
        return (f"cut short: the capture is damaged after frame {self.after_frame}; this "
                f"report covers the frames before it ({self.message})")


class End(NamedTuple):
    """The end of the capture: the totals, and the flows still open (retired now)."""

    packets: int
    icmp_unreachable: int
    evicted: int  # flows retired early because too many were open at once
    retired: list[Flow]
    truncated: Truncation | None = None  # the capture ended in damage, not at its end


def track(packets: Iterable[Packet], tracker: Tracker | None = None,
          frames: Iterable[int] | None = None) -> Iterator[Step | End]:
    """Feed *packets* (capture order) to *tracker*; one Step per packet, then End.
    *frames* numbers them when they are a selection of a file (else 1, 2, 3...).

    A reader error part-way (a truncated or damaged file) ends the packets early: End
    then carries it, so every report still covers the frames before the damage and the
    flows open at it, and the IO edge raises it after the report is out (as tcpdump
    prints every packet before the damage, then the error).
    """
    tracker = tracker or Tracker(keep_events=False)
    feed, drain = tracker.feed, tracker.drain
    frame = 0
    truncated = None
    try:
        numbered = enumerate(packets, 1) if frames is None else zip(frames, packets, strict=True)
        for frame, pkt in numbered:
            seen = feed(frame, pkt)
            yield _new_tuple(Step, (frame, pkt.raw.ts, seen, drain()))
    except CaptureError as exc:  # frame is the last one read whole
        truncated = Truncation(frame, exc)
    yield End(tracker.packets, tracker.icmp_unreachable, tracker.evicted, tracker.close(),
              truncated)


@dataclass(slots=True)
class Totals:
    """What is known of the whole capture; complete once ``done`` is set."""

    first_ts: float | None = None
    packets: int = 0
    icmp_unreachable: int = 0
    evicted: int = 0
    flows: int = 0
    truncated: Truncation | None = None
    done: bool = False

    def restart(self) -> None:
        """Forget everything: the capture is read again from its start."""
        self.first_ts = None
        self.packets = self.icmp_unreachable = self.evicted = self.flows = 0
        self.truncated = None
        self.done = False


class Finished(NamedTuple):
    """A flow that is over, with its events when they were logged."""

    flow: TcpConnection | UdpConversation
    events: Replay | tuple[TimelineItem, ...]
    udp_payload: tuple[int, int]  # UDP payload bytes a -> b and b -> a; (0, 0) for TCP
    # The events already made into their JSON text, or a text or Mermaid diagram but its
    # head, in pieces, by a -j worker (commands/rounds.py): the report writes them as
    # they are.
    text: Iterable[str] | None = None


@dataclass(slots=True)
class IdOrder:
    """Releases items in id order, holding at most *window* out-of-order ones."""

    window: int
    next_id: int = 1
    heap: list[tuple[int, Finished]] = field(default_factory=list)

    def push(self, item: Finished) -> Iterator[Finished]:
        heapq.heappush(self.heap, (item.flow.id, item))
        if len(self.heap) > self.window:  # a gap that may never fill soon: move past it
            self.next_id = self.heap[0][0]
        return self._release()

    def _release(self) -> Iterator[Finished]:
        heap = self.heap
        while heap and heap[0][0] <= self.next_id:
            flow_id, item = heapq.heappop(heap)
            self.next_id = flow_id + 1
            yield item

    def flush(self) -> Iterator[Finished]:
        while self.heap:
            yield heapq.heappop(self.heap)[1]


class Finishing:
    """What a finished flow carries beside the tracker's record: its UDP bytes each way,
    and its logged events when *events* is set (see ``finished``)."""

    def __init__(self, events: bool, only: int | None, limit: int | None) -> None:
        self.log = EventLog(only, limit) if events else None
        self.udp_sent: dict[int, list[int]] = {}  # conversation id -> [a -> b, b -> a]

    def saw(self, seen: Observation | None) -> None:
        """One packet's observation, in capture order."""
        log = self.log
        if isinstance(seen, UdpUpdate):
            sent = self.udp_sent.setdefault(seen.conversation.id, [0, 0])
            sent[seen.datagram.sender == "b"] += seen.datagram.length
            if log is not None:
                log.udp(seen)
        elif log is not None and isinstance(seen, Update):
            log.tcp(seen)

    def done(self, flow: Flow) -> Finished:
        """*flow*, retired now, with what was kept for it (then forgotten)."""
        a_to_b, b_to_a = self.udp_sent.pop(flow.id, (0, 0))
        replay: Replay | tuple[TimelineItem, ...] = () if self.log is None else self.log.take(flow)
        return Finished(flow, replay, (a_to_b, b_to_a))


def finished(steps: Iterable[Step | End], totals: Totals, *, events: bool = False,
             only: int | None = None, window: int = ORDER_WINDOW,
             limit: int | None = None) -> Iterator[Finished]:
    """The flows of *steps* as they finish; *totals* is filled in on the way.

    With *events*, each flow comes with its segments (TCP) or datagrams and ICMP errors
    (UDP); *only* limits that (and the output) to one flow id; *limit* keeps the first
    *limit* of each flow and counts the rest (``Replay.left_out``).
    """
    finishing = Finishing(events, only, limit)
    order = IdOrder(window)
    for step in steps:
        if isinstance(step, Step):
            if totals.first_ts is None:
                totals.first_ts = step.ts
            finishing.saw(step.seen)
        else:
            totals.packets = step.packets
            totals.icmp_unreachable = step.icmp_unreachable
            totals.evicted = step.evicted
            totals.truncated = step.truncated
        for flow in step.retired:
            totals.flows += 1
            item = finishing.done(flow)
            if only is not None and flow.id != only:
                continue
            yield from order.push(item)
    totals.done = True
    yield from order.flush()


def end_notes(totals: Totals) -> list[str]:
    """The lines under a report: flows retired early, a capture cut short."""
    notes = [_evicted_note(totals)]
    if totals.truncated is not None:
        notes.append(totals.truncated.note())
    return [note for note in notes if note]


def _evicted_note(totals: Totals) -> str | None:
    """The line under a report when flows were retired early (a SYN flood, a scan)."""
    if not totals.evicted:
        return None
    return (f"{totals.evicted:,} flows were retired early because too many were open at "
            "once; each is reported with what was seen until then")
