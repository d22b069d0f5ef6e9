"""One tracker for a whole capture: TCP connections, UDP conversations, ICMP errors.

``Tracker.feed`` takes decoded packets in capture order and says what each did;
``drain`` hands out the connections and conversations that are over, so a caller can
report them and forget them (memory follows what is open at once, not the capture).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

from mypy_extensions import mypyc_attr

from capdissect.dissect import icmp, icmp6
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import DissectError
from capdissect.tracking.tcp import TcpConnection, TcpTracker, Update
from capdissect.tracking.udp import Datagram, Endpoint, UdpConversation, UdpTracker


class UdpUpdate(NamedTuple):
    conversation: UdpConversation
    datagram: Datagram
    new: bool


class IcmpUpdate(NamedTuple):
    """An ICMP error, and the UDP conversation whose datagram it quotes (if known)."""

    kind: str  # "port unreachable", "unreachable", "time exceeded", ...
    quoted: tuple[Endpoint, Endpoint] | None  # the quoted UDP datagram's (src, dst)
    conversation: UdpConversation | None
    # The peer the refusing socket (the quoted destination) is connect()ed to, when the
    # wire shows it (tracking/udp.py UdpTracker.unreachable).
    connected_to: Endpoint | None = None


Observation = Update | UdpUpdate | IcmpUpdate
# Flows open at once, TCP and UDP each, before the oldest is retired early ("evicted"):
# memory stays bounded whatever the capture (a SYN flood is a million half-open flows).
MAX_OPEN = 50_000
Flow = TcpConnection | UdpConversation


# live.FlowRecorder and the handout's recorder extend it, and they are not compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class Tracker:
    def __init__(self, keep_events: bool = True, linger: float = 120.0,
                 max_open: int = MAX_OPEN, first_id: int = 1) -> None:
        # first_id: a selection of a capture's packets (one connection's) keeps its
        # flows' numbers from the whole capture.
        ids = itertools.count(first_id)
        self.tcp = TcpTracker(ids, keep_events, linger, max_open)
        self.udp = UdpTracker(ids, keep_events, linger, max_open)
        self.packets = 0
        self.icmp_unreachable = 0

    @property
    def evicted(self) -> int:
        """Flows retired early because too many were open at once."""
        return self.tcp.table.evicted + self.udp.table.evicted

    def feed(self, frame: int, pkt: Packet) -> Observation | None:
        self.packets += 1
        seg = pkt.transport
        ip = pkt.ip
        if ip is None or seg is None:
            return None
        ts = pkt.raw.ts
        if isinstance(seg, TcpHeader):
            return self.tcp.feed(frame, ts, ip, seg, pkt.payload_len, whole=not pkt.partial)
        if isinstance(seg, UdpHeader):
            conv, datagram, new = self.udp.feed(
                frame, ts, (ip.src, seg.src_port), (ip.dst, seg.dst_port), pkt.payload_len
            )
            return UdpUpdate(conv, datagram, new)
        if isinstance(seg, icmp.IcmpHeader):
            return self._icmp(frame, ts, pkt, seg)
        return self._icmp6(frame, ts, pkt, seg)

    def _icmp(self, frame: int, ts: float, pkt: Packet, msg: icmp.IcmpHeader) -> IcmpUpdate | None:
        if msg.type not in icmp.ERROR_TYPES:
            return None
        kind = ("port unreachable" if (msg.type, msg.code) == (icmp.UNREACHABLE, icmp.UNREACH_PORT)
                else _ICMP_KINDS.get(msg.type, "error"))
        try:
            quote: icmp.QuotedDatagram | icmp6.QuotedPacket | None = icmp.parse_quoted(
                pkt.raw.data, msg)
        except DissectError:  # a damaged quote: the error still counts, unlinked
            quote = None
        return self._link(frame, ts, pkt, kind, quote)

    def _icmp6(self, frame: int, ts: float, pkt: Packet,
               msg: icmp6.Icmp6Header) -> IcmpUpdate | None:
        if not msg.is_error:
            return None
        kind = "port unreachable" if (msg.type, msg.code) == (1, 4) else _ICMP6_KINDS.get(
            msg.type, "error")
        try:
            quote: icmp.QuotedDatagram | icmp6.QuotedPacket | None = icmp6.parse_quoted(
                pkt.raw.data, msg)
        except DissectError:
            quote = None
        return self._link(frame, ts, pkt, kind, quote)

    def _link(self, frame: int, ts: float, pkt: Packet, kind: str,
              quote: icmp.QuotedDatagram | icmp6.QuotedPacket | None) -> IcmpUpdate:
        if kind == "port unreachable":
            self.icmp_unreachable += 1
        if (quote is None or quote.proto != 17 or quote.src_port is None
                or quote.dst_port is None or pkt.ip is None):
            return IcmpUpdate(kind, None, None)
        src = (quote.src, quote.src_port)
        dst = (quote.dst, quote.dst_port)
        conv = connected = None
        if kind == "port unreachable":
            conv, connected = self.udp.unreachable(frame, ts, pkt.ip.src, src, dst)
        return IcmpUpdate(kind, (src, dst), conv, connected)

    def drain(self) -> list[Flow]:
        return [*self.tcp.drain(), *self.udp.drain()]

    def close(self) -> list[Flow]:
        return [*self.tcp.close(), *self.udp.close()]


_ICMP_KINDS = {3: "unreachable", 4: "source quench", 5: "redirect", 11: "time exceeded",
               12: "parameter problem"}
_ICMP6_KINDS = {1: "unreachable", 2: "packet too big", 3: "time exceeded",
                4: "parameter problem"}

