"""Per-flow state is bounded (issue 21, D4): what a connection or conversation keeps does
not grow with its packets.  Generated equivalents of the D04 reproducers: one connection
whose client sends FIN after FIN with ever new sequence numbers, and one UDP conversation
answered by ICMP port unreachable after ICMP port unreachable.  Each is tracked at two
lengths; every list, dict and string the flow holds must be no longer at the long one
(except the ICMP errors, kept up to MAX_KEPT and counted past it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from capdissect.dissect.tcp import ACK, FIN, SYN
from capdissect.tracking.stream import track
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.tracker import Tracker
from capdissect.tracking.udp import MAX_KEPT, UdpConversation
from tests.support.reportwire import Wire

CLIENT, SERVER = ("127.0.0.1", 1000), ("127.0.0.2", 80)


def sizes(obj: Any, prefix: str = "") -> dict[str, int]:
    """The length of every container a flow (and its endpoints) holds, by field name."""
    out: dict[str, int] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out |= sizes(value, f"{prefix}{f.name}.")
        elif isinstance(value, (list, dict, str, tuple, set, bytes)):
            out[prefix + f.name] = len(value)
    return out


def only_flow(w: Wire, tracker: Tracker | None = None) -> TcpConnection | UdpConversation:
    """The one flow of *w*, as the reports' tracker leaves it when it retires it."""
    flows = [flow for step in track(w.packets, tracker or Tracker(keep_events=False))
             for flow in step.retired]
    assert len(flows) == 1
    return flows[0]


def fin_storm(fins: int) -> Wire:
    w = Wire()
    w.tcp(CLIENT, SERVER, SYN, 0)
    w.tcp(SERVER, CLIENT, SYN | ACK, 0, 1)
    w.tcp(CLIENT, SERVER, ACK, 1, 1)
    for i in range(fins):
        w.tcp(CLIENT, SERVER, FIN | ACK, 1 + i, 1, dt=1e-6)
    return w


def test_a_connection_of_odd_fins_keeps_no_per_packet_list() -> None:
    short, long = only_flow(fin_storm(200)), only_flow(fin_storm(4_000))
    assert isinstance(long, TcpConnection) and long.packets == 4_003
    grown = {k: (v, sizes(long)[k]) for k, v in sizes(short).items() if sizes(long)[k] > v}
    assert grown == {}


def unreachable_storm(errors: int) -> Wire:
    w = Wire()
    datagram = w.udp(CLIENT, SERVER, b"ping")
    for _ in range(errors):
        w.unreachable(SERVER[0], CLIENT[0], datagram, dt=1e-6)
    return w


def test_icmp_errors_of_one_conversation_are_kept_up_to_max_kept_and_counted() -> None:
    short = only_flow(unreachable_storm(300))
    long = only_flow(unreachable_storm(MAX_KEPT + 2_000))
    assert isinstance(short, UdpConversation) and isinstance(long, UdpConversation)
    assert long.icmp_unreachable == MAX_KEPT + 2_000
    assert len(long.unreachable) == MAX_KEPT
    grown = {k: (v, sizes(long)[k]) for k, v in sizes(short).items()
             if sizes(long)[k] > v and k != "unreachable"}
    assert grown == {}
