"""UDP conversations, and the ICMP errors that answer them.

UDP has no handshake and no state: a conversation is just the datagrams exchanged
between two endpoints.  An ICMP or ICMPv6 "port unreachable" quotes the datagram it
answers; linking the two is what tells a learner why a UDP client got nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.tracking.table import FlowTable

Endpoint = tuple[bytes, int]


class Datagram(NamedTuple):
    frame: int
    ts: float
    sender: str  # "a" (the first sender) or "b"
    length: int


class Unreachable(NamedTuple):
    """An ICMP error quoting a datagram of the conversation."""

    frame: int
    ts: float
    reporter: bytes  # the address that sent the ICMP error
    quoted_frame: int | None  # the datagram it answers, when it was captured
    # The peer the refusing socket is connect()ed to, when the wire shows it.
    connected_to: Endpoint | None = None


@dataclass(slots=True)
class UdpConversation:
    id: int
    a: Endpoint  # the first sender
    b: Endpoint
    first_ts: float
    last_ts: float = 0.0
    datagrams: int = 0
    payload: int = 0
    sent: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    unreachable: list[Unreachable] = field(default_factory=list)  # the first MAX_KEPT
    unreachable_count: int = 0
    events: list[Datagram] = field(default_factory=list)
    # The last datagram sent a -> b, per destination, for linking ICMP errors.
    last_frame: dict[str, int] = field(default_factory=dict)

    @property
    def conn_state(self) -> str:
        """Zeek's conn_state for UDP: SF when both sides sent, S0 when only one did."""
        return "SF" if self.sent["a"] and self.sent["b"] else "S0"

    @property
    def icmp_unreachable(self) -> int:
        return self.unreachable_count


MAX_KEPT: Final = 10_000  # ICMP errors kept per conversation for its timeline; all are counted


def _key(x: Endpoint, y: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (x, y) if x <= y else (y, x)


class UdpTracker:
    """Consumes UDP datagrams and ICMP errors in capture order."""

    def __init__(self, ids: Iterator[int] | None = None, keep_events: bool = True,
                 linger: float = 120.0, max_open: int = 50_000) -> None:
        self.ids = ids if ids is not None else itertools.count(1)
        self.keep_events = keep_events
        self.unmatched_unreachable = 0
        # Whom each endpoint sent datagrams to: one peer, or None for several.  A socket
        # that talks to one peer only and refuses another's datagram is connect()ed.
        self.peers: dict[Endpoint, Endpoint | None] = {}
        self.table: FlowTable[tuple[Endpoint, Endpoint], UdpConversation] = FlowTable(
            linger, max_open)


    def feed(self, frame: int, ts: float, src: Endpoint, dst: Endpoint,
             length: int) -> tuple[UdpConversation, Datagram, bool]:
        key = _key(src, dst)
        self.table.advance(ts)
        conv = self.table.get(key)
        new = conv is None
        if conv is None:
            conv = UdpConversation(next(self.ids), src, dst, ts)
            self.table.add(key, conv)
        else:
            self.table.touch(key)
        known = self.peers.get(src, dst)
        self.peers[src] = dst if known == dst else None
        sender = "a" if conv.a == src else "b"
        conv.datagrams += 1
        conv.payload += length
        conv.sent[sender] += 1
        conv.last_ts = ts
        conv.last_frame[sender] = frame
        datagram = Datagram(frame, ts, sender, length)
        if self.keep_events:
            conv.events.append(datagram)
        self.table.expire(ts)
        return conv, datagram, new

    def unreachable(self, frame: int, ts: float, reporter: bytes, quoted_src: Endpoint,
                    quoted_dst: Endpoint) -> tuple[UdpConversation | None, Endpoint | None]:
        """Link an ICMP port unreachable to the conversation of the datagram it quotes.

        Also returns the peer the refusing socket is connect()ed to, when the wire shows
        one: its port sent datagrams to that one peer only, and this datagram came from
        someone else.  (Or the socket was closed in between: the wire cannot tell.)
        """
        peer = self.peers.get(quoted_dst)
        connected = peer if peer is not None and peer != quoted_src else None
        conv = self.table.get(_key(quoted_src, quoted_dst))
        if conv is None:
            self.unmatched_unreachable += 1
            return None, connected
        sender = "a" if conv.a == quoted_src else "b"
        conv.unreachable_count += 1
        if len(conv.unreachable) < MAX_KEPT:
            conv.unreachable.append(Unreachable(frame, ts, reporter,
                                                conv.last_frame.get(sender), connected))
        conv.last_ts = ts
        return conv, connected

    def _forget(self, done: list[UdpConversation]) -> list[UdpConversation]:
        peers = self.peers
        for conv in done:
            for ep, other in ((conv.a, conv.b), (conv.b, conv.a)):
                if ep in peers and peers[ep] in (other, None):
                    del peers[ep]
        return done

    def drain(self) -> list[UdpConversation]:
        """The flows retired since the last call (see FlowTable)."""
        return self._forget(self.table.drain())

    def close(self) -> list[UdpConversation]:
        """Retire everything at the end of the capture."""
        return self._forget(self.table.close())
