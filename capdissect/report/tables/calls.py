"""Socket calls beside the packets (``capdissect trace``): the words, the JSON, the marks.

The calls come placed (tracking/syscalls.py ``join``): each with its flow, its side there,
and ``after_frame``, the last frame at or before its return.  Here they become:

- the annotation lines under each packet (``client pid 4711: connect(127.0.0.1:30002)
  returned 0 after the SYN-ACK (frame 2)``); a call that blocked while packets went by
  also gets a line where it started;
- the ``syscalls`` list of each flow in ``timeline --json``;
- marks on the ladders, in a style of their own (``#`` on the caller's lifeline in text,
  a note beside the lifeline in Mermaid).

``frames_and_flows`` collects what the join needs from one pass of the tracker.  The
texts here are made of numbers, addresses and strace's own words only; the renderers
still escape them like any text from a capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from capdissect.dissect.strace import Call
from capdissect.tracking.stream import End, Step
from capdissect.tracking.syscalls import FlowEnds, Frame, Joined, Placed
from capdissect.tracking.tcp import TcpConnection, Update
from capdissect.tracking.tracker import IcmpUpdate, UdpUpdate


def frames_and_flows(steps: Iterable[Step | End]) -> tuple[list[Frame], list[FlowEnds]]:
    """Each packet's flow, sender and label, and each flow's endpoints, from the tracker.

    One small record per packet: for lesson-sized captures, which is what a trace is.
    """
    frames: list[Frame] = []
    flows: list[FlowEnds] = []
    for step in steps:
        if isinstance(step, Step):
            seen = step.seen
            if isinstance(seen, Update):
                event = seen.event
                frames.append(Frame(step.frame, step.ts, seen.connection.id, event.sender,
                                    event.label, event.flags))
            elif isinstance(seen, UdpUpdate):
                frames.append(Frame(step.frame, step.ts, seen.conversation.id,
                                    seen.datagram.sender, "datagram"))
            elif isinstance(seen, IcmpUpdate):
                conv = seen.conversation
                frames.append(Frame(step.frame, step.ts, None if conv is None else conv.id,
                                    None, f"ICMP {seen.kind}"))
            else:
                frames.append(Frame(step.frame, step.ts, None, None, "packet"))
        for flow in step.retired:
            if isinstance(flow, TcpConnection):
                ends = ((flow.client.addr, flow.client.port),
                        (flow.server.addr, flow.server.port))
                flows.append(FlowEnds(flow.id, "tcp", ("client", "server"), ends))
            else:
                flows.append(FlowEnds(flow.id, "udp", ("a", "b"), (flow.a, flow.b)))
    return frames, flows


# ----- words ------------------------------------------------------------------------------
def _who(placed: Placed) -> str:
    side = f"{placed.side} " if placed.side in ("client", "server") else (
        f"{placed.side} side " if placed.side else "")
    return f"{side}pid {placed.call.pid}"


def _after(placed: Placed, frames: list[Frame]) -> str:
    number = placed.after_frame
    if number == 0:
        return "before any packet"
    frame = frames[number - 1]
    if placed.flow is not None and frame.flow == placed.flow:
        return f"after the {frame.label} (frame {number})"
    return f"after frame {number}"


def return_line(placed: Placed, frames: list[Frame]) -> str:
    """``client pid 4711: connect(127.0.0.1:30002) returned 0 after the SYN-ACK (frame 2)``."""
    call = placed.call
    if not call.returned:
        return f"{_who(placed)}: {call.summary()} never returned while traced"
    size = f" ({call.detail})" if call.detail.endswith(("byte", "bytes")) else ""
    text = f"{_who(placed)}: {call.summary()} returned {call.ret}{size} {_after(placed, frames)}"
    if placed.start_frame != placed.after_frame:
        text += f", {call.ts - call.start_ts:.6f} s after it was called"
    return text


def start_line(placed: Placed) -> str:
    return f"{_who(placed)}: {placed.call.summary()} called"


def blocked(placed: Placed) -> bool:
    """The call started before a packet it returned after: both moments are shown."""
    return placed.start_frame != placed.after_frame


def moments(joined: Joined, frames: list[Frame]) -> dict[int, list[str]]:
    """The lines to print after each frame (0: before the first), in time order:
    the calls' starts (those that waited), their returns, and the findings; at one
    moment a return comes before a start (strace saw one call end, then the next begin)."""
    timed: dict[int, list[tuple[float, int, str]]] = {}
    for placed in joined.calls:
        call = placed.call
        if blocked(placed):
            timed.setdefault(placed.start_frame, []).append(
                (call.start_ts, 1, start_line(placed)))
        timed.setdefault(placed.after_frame, []).append(
            (call.ts, 0, return_line(placed, frames)))
    for notes in joined.findings.values():
        for frame, text in notes:
            ts = frames[frame - 1].ts if 0 < frame <= len(frames) else 0.0
            timed.setdefault(frame, []).append((ts, 2, f"finding: {text}"))
    return {frame: [text for _, _, text in sorted(lines)] for frame, lines in timed.items()}


def finding_lines(joined: Joined) -> Iterator[str]:
    for flow in sorted(joined.findings):
        for _, text in joined.findings[flow]:
            yield f"flow {flow}: {text}"


# ----- JSON -------------------------------------------------------------------------------
def call_json(placed: Placed) -> dict[str, Any]:
    """SPEC §3.10: ``{"ts", "pid", "side", "call", "args", "ret", "start_ts", "after_frame"}``."""
    call = placed.call
    return {
        "ts": call.ts,
        "pid": call.pid,
        "side": placed.side,
        "call": call.name,
        "args": _args(call),
        "ret": call.ret if call.returned else None,
        "start_ts": call.start_ts,
        "after_frame": placed.after_frame,
        "start_frame": placed.start_frame,
    }


def _args(call: Call) -> str:
    return call.summary()[len(call.name) + 1 : -1]


# ----- ladder marks -----------------------------------------------------------------------
def ladder_mark(placed: Placed) -> str:
    """The text of a call's mark on a ladder: ``pid 4711 connect(...) = 0``."""
    call = placed.call
    ret = call.ret if call.returned else "? (never returned)"
    return f"pid {call.pid} {call.summary()} = {ret}"


def marks_after(placed_calls: Iterable[Placed]) -> dict[int, list[Placed]]:
    """A flow's calls by the frame they returned after (0: before its first packet)."""
    out: dict[int, list[Placed]] = {}
    for placed in placed_calls:
        out.setdefault(placed.after_frame, []).append(placed)
    return out
