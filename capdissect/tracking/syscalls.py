"""Socket calls joined to the flows of a capture and placed among its packets (pure).

``dissect/strace.py`` turns strace's lines into ``Call`` records; here each call is
joined to the TCP connection or UDP conversation it touched, placed among the packets by
time (``after_frame``: the last frame at or before its return), and the findings only
calls can give are made (a close that left the peer in CLOSE_WAIT, a linger reset, a
refused connect seen by other flows).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from capdissect.dissect.strace import Call, Endpoint, spell, with_sockets


class Frame(NamedTuple):
    """What a report needs of one packet to place calls beside it."""

    frame: int
    ts: float
    flow: int | None  # the connection or conversation it belongs to
    sender: str | None  # "client"/"server" (TCP), "a"/"b" (UDP), None (ICMP)
    label: str  # SYN, SYN-ACK, ACK, data, FIN, RST, datagram, ICMP port unreachable
    flags: str = ""  # TCP's letters


class FlowEnds(NamedTuple):
    """A flow's two endpoints by role: TCP (client, server), UDP (a, b)."""

    id: int
    proto: str
    roles: tuple[str, str]
    ends: tuple[Endpoint, Endpoint]


@dataclass(frozen=True, slots=True)
class Placed:
    """A call with its flow, its side there, and the frames around its two moments."""

    call: Call
    flow: int | None
    side: str | None
    after_frame: int  # the last frame at or before the return (0: before any)
    start_frame: int  # the last frame at or before the start


@dataclass(slots=True)
class Joined:
    """Every call placed; per flow, in return order; and the findings only calls can give."""

    calls: list[Placed] = field(default_factory=list)
    by_flow: dict[int, list[Placed]] = field(default_factory=dict)
    # flow id -> (frame, text) of each finding
    findings: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    def of(self, flow: int) -> list[Placed]:
        return self.by_flow.get(flow, [])

    def unjoined(self) -> list[Placed]:
        return [p for p in self.calls if p.flow is None]


def _matches(ep: Endpoint, want: Endpoint) -> bool:
    """*ep* is *want*, or *want* is a wildcard address (0.0.0.0, ::) on the same port."""
    return ep[1] == want[1] and (ep[0] == want[0] or not any(want[0]))


def _flow_of(call: Call, flows: Sequence[FlowEnds],
             first_ts: dict[int, float]) -> tuple[int | None, str | None]:
    if call.proto is None or call.name in ("socket", "bind", "listen"):
        return None, None
    local, remote = call.local, call.remote
    best: tuple[int | None, str | None] = (None, None)
    for flow in flows:
        if flow.proto != call.proto:
            continue
        for mine, other in ((0, 1), (1, 0)):
            if (local is not None and remote is not None and _matches(flow.ends[mine], local)
                    and flow.ends[other] == remote):
                best = flow.id, flow.roles[mine]
            elif (local is None and remote is not None and call.name == "connect"
                  and flow.ends[other] == remote and best[0] is None
                  and call.start_ts <= first_ts[flow.id] <= call.ts + 0.001):
                best = flow.id, flow.roles[mine]  # a refused connect: never bound to show
        if best[0] == flow.id and local is not None:
            return best  # ports are reused: the first match in time order is not enough
    return best


def join(calls: Iterable[Call], flows: Sequence[FlowEnds], frames: Sequence[Frame]) -> Joined:
    """Place *calls* among *frames* (capture order) and on *flows*; then find what only
    calls can show.  Flows are tried newest first, so a reused port pair joins the
    connection that was open at the time."""
    stamps = [f.ts for f in frames]
    per_flow: dict[int, list[Frame]] = {}
    for frame in frames:
        if frame.flow is not None:
            per_flow.setdefault(frame.flow, []).append(frame)
    first_ts = {f.id: per_flow[f.id][0].ts if f.id in per_flow else float("inf")
                for f in flows}
    joined = Joined()
    ordered = sorted(flows, key=lambda f: -f.id)
    for call in with_sockets(calls):
        # Flows that began by then (a second of slack for clocks read a little apart).
        candidates = [f for f in ordered if first_ts[f.id] <= call.ts + 1.0]
        flow, side = _flow_of(call, candidates or ordered, first_ts)
        placed = Placed(call, flow, side, bisect.bisect_right(stamps, call.ts),
                        bisect.bisect_right(stamps, call.start_ts))
        joined.calls.append(placed)
        if flow is not None:
            joined.by_flow.setdefault(flow, []).append(placed)
    _find(joined, flows, per_flow)
    return joined


# ----- findings ---------------------------------------------------------------------------
def _find(joined: Joined, flows: Sequence[FlowEnds], per_flow: dict[int, list[Frame]]) -> None:
    by_id = {f.id: f for f in flows}
    for flow_id, on_flow in joined.by_flow.items():
        flow = by_id[flow_id]
        notes = joined.findings.setdefault(flow_id, [])
        mine = per_flow.get(flow_id, [])
        if flow.proto == "tcp":
            notes += _close_wait(on_flow, mine) + _linger_reset(on_flow, mine)
    for placed in joined.calls:
        call = placed.call
        if call.proto == "udp" and call.name == "connect" and not call.failed:
            for flow_id, frame, text in _refused_others(placed, flows, per_flow):
                joined.findings.setdefault(flow_id, []).append((frame, text))
    for flow_id in [k for k, v in joined.findings.items() if not v]:
        del joined.findings[flow_id]


def _close_wait(placed: list[Placed], frames: list[Frame]) -> list[tuple[int, str]]:
    """A side got the peer's FIN, and its process never called close() on that socket."""
    notes = []
    for side in ("client", "server"):
        calls = [p.call for p in placed if p.side == side]
        fin = next((f for f in frames if "F" in f.flags and f.sender not in (side, None)), None)
        if not calls or fin is None or any(c.name == "close" for c in calls):
            continue
        pids = sorted({c.pid for c in calls})
        who = " and ".join(f"pid {pid}" for pid in pids)
        notes.append((fin.frame, f"the {side} got the FIN at frame {fin.frame}, but {who} "
                      "never called close(): CLOSE_WAIT lingers until it does"))
    return notes


def _linger_reset(placed: list[Placed], frames: list[Frame]) -> list[tuple[int, str]]:
    """setsockopt(SO_LINGER, 0) then close(): the kernel aborts with RST instead of FIN."""
    notes = []
    for side in ("client", "server"):
        calls = [p.call for p in placed if p.side == side]
        linger = next((c for c in calls if c.linger_zero), None)
        close = next((c for c in calls if c.name == "close" and linger is not None
                      and c.start_ts >= linger.ts), None)
        if linger is None or close is None:
            continue
        rst = next((f for f in frames if "R" in f.flags and f.sender == side
                    and f.ts >= close.start_ts), None)
        if rst is not None:
            notes.append((rst.frame, f"SO_LINGER 0 then close(): the RST at frame {rst.frame}"))
    return notes


def _refused_others(placed: Placed, flows: Sequence[FlowEnds],
                    per_flow: dict[int, list[Frame]]) -> Iterator[tuple[int, int, str]]:
    """A connected UDP socket: datagrams from anyone but its peer meet ICMP unreachable."""
    call = placed.call
    if call.local is None or call.target is None:
        return
    for flow in flows:
        if flow.proto != "udp" or call.target in flow.ends:
            continue
        if not any(_matches(end, call.local) for end in flow.ends):
            continue
        icmp = next((f for f in per_flow.get(flow.id, []) if f.sender is None
                     and f.ts >= call.ts), None)
        if icmp is not None:
            yield (flow.id, icmp.frame,
                   f"this UDP socket called connect({spell(call.target)}): datagrams from "
                   f"others are refused (frame {icmp.frame}'s ICMP)")
