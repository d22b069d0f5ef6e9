"""Each scenario's capture read back and its promised shape checked from the raw
headers (never through the tracker, which these captures are here to test)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

from capdissect.demo.scenarios.drive import MAX_PACKETS, MOD, Endpoint, Ports
from capdissect.demo.traffic import (
    LESSON_CLIENT_DATA,
    LESSON_SERVER_DATA,
)
from capdissect.dissect import icmp, icmp6
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import ScenarioError
from capdissect.sources import open_capture


# ----- reading a capture back ----------------------------------------------------------
class Wire(NamedTuple):
    """One captured packet as the shape checks see it."""

    frame: int
    proto: str  # "tcp", "udp", "unreachable" (ICMP/ICMPv6 port unreachable) or "other"
    src: Endpoint
    dst: Endpoint
    flags: int = 0
    seq: int = 0
    ack: int = 0
    payload: bytes = b""
    quoted: tuple[Endpoint, Endpoint] | None = None  # the datagram an ICMP error quotes
    ts: float = 0.0  # the capture's timestamp (Unix time)


def read_wire(path: Path) -> list[Wire]:
    """The packets of a scenario capture (at most MAX_PACKETS: these files are small)."""
    wire: list[Wire] = []
    with open_capture(path) as cap:
        for frame, raw in enumerate(cap, 1):
            if frame > MAX_PACKETS:
                raise ScenarioError(path.name, f"more than {MAX_PACKETS} packets")
            wire.append(_wire(frame, decode(raw))._replace(ts=raw.ts))
    return wire


def _wire(frame: int, pkt: Packet) -> Wire:
    ip, seg, data = pkt.ip, pkt.transport, pkt.raw.data
    if ip is None or seg is None:
        return Wire(frame, "other", (b"", 0), (b"", 0))
    payload = pkt.payload
    if isinstance(seg, TcpHeader):
        return Wire(frame, "tcp", (ip.src, seg.src_port), (ip.dst, seg.dst_port),
                    seg.flags, seg.seq, seg.ack, payload)
    if isinstance(seg, UdpHeader):
        return Wire(frame, "udp", (ip.src, seg.src_port), (ip.dst, seg.dst_port),
                    payload=payload)
    quote: icmp.QuotedDatagram | icmp6.QuotedPacket | None = None
    if isinstance(seg, icmp.IcmpHeader) and (seg.type, seg.code) == (icmp.UNREACHABLE,
                                                                     icmp.UNREACH_PORT):
        quote = icmp.parse_quoted(data, seg)
    elif isinstance(seg, icmp6.Icmp6Header) and (seg.type, seg.code) == (
            icmp6.DST_UNREACH, icmp6.UNREACH_PORT):
        quote = icmp6.parse_quoted(data, seg)
    if quote is None or quote.src_port is None or quote.dst_port is None:
        return Wire(frame, "other", (ip.src, 0), (ip.dst, 0))
    quoted = ((quote.src, quote.src_port), (quote.dst, quote.dst_port))
    return Wire(frame, "unreachable", (ip.src, 0), (ip.dst, 0), quoted=quoted)


# ----- the shape checks ----------------------------------------------------------------
def _covers(seg: Wire, fin: Wire) -> bool:
    """*seg* acknowledges *fin* (its ack reaches past the FIN's sequence number)."""
    if not seg.flags & ACK:
        return False
    fin_end = (fin.seq + len(fin.payload) + 1) % MOD
    return (seg.ack - fin_end) % MOD < (1 << 31)


def _port(ep: Endpoint) -> str:
    return f"port {ep[1]}"


class _Tcp:
    """The one TCP connection of a capture, with its client (first SYN) and server."""

    def __init__(self, name: str, wire: Sequence[Wire]) -> None:
        self.name = name
        self.segs = [w for w in wire if w.proto == "tcp"]
        if not self.segs:
            self.fail("no TCP segment captured")
        pairs = {frozenset((w.src, w.dst)) for w in self.segs}
        if len(pairs) != 1:
            self.fail(f"{len(pairs)} connections captured, the scenario makes one")
        first = self.segs[0]
        if first.flags & (SYN | ACK) != SYN:
            self.fail(f"frame {first.frame} is not a SYN: the capture missed the opening")
        self.client, self.server = first.src, first.dst

    def fail(self, reason: str) -> NoReturn:
        raise ScenarioError(self.name, reason)

    def role(self, ep: Endpoint) -> str:
        return "client" if ep == self.client else "server"

    def by(self, ep: Endpoint) -> list[Wire]:
        return [s for s in self.segs if s.src == ep]

    def fins(self, ep: Endpoint) -> list[Wire]:
        return [s for s in self.by(ep) if s.flags & FIN]

    def data(self, ep: Endpoint) -> bytes:
        """What *ep* sent, each sequence number once (a retransmission counts once)."""
        chunks = {s.seq: s.payload for s in self.by(ep) if s.payload}  # first-seen order
        return b"".join(chunks.values())

    def no_reset(self) -> None:
        rsts = [s.frame for s in self.segs if s.flags & RST]
        if rsts:
            self.fail(f"unexpected RST at frame {rsts[0]}")

    def handshake(self) -> None:
        """S, S., . between client and server, the SYN-ACK acknowledging the SYN."""
        if len(self.segs) < 3:
            self.fail(f"{len(self.segs)} segments: no complete handshake")
        syn, synack, ack = self.segs[:3]
        if not (synack.src == self.server and synack.flags & (SYN | ACK) == SYN | ACK
                and synack.ack == (syn.seq + 1) % MOD):
            self.fail(f"frame {synack.frame} is not the SYN-ACK answering frame {syn.frame}")
        if not (ack.src == self.client and ack.flags & (SYN | ACK | RST) == ACK):
            self.fail(f"frame {ack.frame} is not the ACK that completes the handshake")

    def lesson_data(self, client_data: bytes = LESSON_CLIENT_DATA,
                    server_data: bytes = LESSON_SERVER_DATA) -> None:
        got = (self.data(self.client), self.data(self.server))
        if got != (client_data, server_data):
            self.fail(f"data {got!r}, expected {(client_data, server_data)!r}")

    def one_fin(self, ep: Endpoint) -> Wire:
        fins = self.fins(ep)
        if len(fins) != 1:
            self.fail(f"the {self.role(ep)} sent {len(fins)} FINs, expected one")
        return fins[0]

    def last_ack_by(self, ep: Endpoint, fin: Wire) -> Wire:
        """The capture ends with *ep*'s ACK of *fin*."""
        last = self.segs[-1]
        if not (last.src == ep and last.flags & (SYN | FIN | RST) == 0 and _covers(last, fin)):
            self.fail(f"the last segment (frame {last.frame}) is not the {self.role(ep)}'s "
                      f"ACK of the FIN at frame {fin.frame}")
        return last


def _orderly_close(tcp: _Tcp, closer: Endpoint, other: Endpoint) -> str:
    """FIN from *closer*, a lone ACK from *other*, *other*'s FIN, the last ACK."""
    first, second = tcp.one_fin(closer), tcp.one_fin(other)
    if second.frame < first.frame:
        tcp.fail(f"the {tcp.role(other)} sent the first FIN (frame {second.frame})")
    reply = next(s for s in tcp.segs if s.frame > first.frame and s.src == other)
    if reply.flags & (FIN | SYN | RST) or reply.payload or not _covers(reply, first):
        tcp.fail(f"the {tcp.role(other)}'s ACK of the FIN at frame {first.frame} did not "
                 f"travel alone (frame {reply.frame})")
    last = tcp.last_ack_by(closer, second)
    return (f"{tcp.role(closer)} FIN at frame {first.frame}, lone ACK at {reply.frame}, "
            f"{tcp.role(other)} FIN at {second.frame}, last ACK at {last.frame}")


def verify_tcp_basic(wire: Sequence[Wire], ports: Ports) -> str:
    tcp = _Tcp("tcp-basic", wire)
    tcp.handshake()
    tcp.no_reset()
    tcp.lesson_data()
    return _orderly_close(tcp, tcp.client, tcp.server)


def verify_tcp_server_closes_first(wire: Sequence[Wire], ports: Ports) -> str:
    tcp = _Tcp("tcp-server-closes-first", wire)
    tcp.handshake()
    tcp.no_reset()
    tcp.lesson_data()
    return _orderly_close(tcp, tcp.server, tcp.client)


def verify_tcp_half_close(wire: Sequence[Wire], ports: Ports) -> str:
    tcp = _Tcp("tcp-half-close", wire)
    tcp.handshake()
    tcp.no_reset()
    tcp.lesson_data(LESSON_CLIENT_DATA, LESSON_CLIENT_DATA)
    client_fin, server_fin = tcp.one_fin(tcp.client), tcp.one_fin(tcp.server)
    after = [s for s in tcp.by(tcp.server) if s.payload and s.frame > client_fin.frame]
    if not after:
        tcp.fail(f"the server sent no data after the client's FIN (frame {client_fin.frame})")
    if server_fin.frame < after[0].frame:
        tcp.fail("the server's FIN came before its answer")
    last = tcp.last_ack_by(tcp.client, server_fin)
    return (f"client FIN at frame {client_fin.frame}, server data after it at "
            f"{after[0].frame}, server FIN at {server_fin.frame}, last ACK at {last.frame}")


def verify_tcp_reset(wire: Sequence[Wire], ports: Ports) -> str:
    tcp = _Tcp("tcp-reset", wire)
    tcp.handshake()
    tcp.lesson_data()
    if any(s.flags & FIN for s in tcp.segs):
        tcp.fail("a FIN was sent: the close was not abortive")
    rsts = [s for s in tcp.segs if s.flags & RST]
    if len(rsts) != 1 or rsts[0].src != tcp.client or rsts[0] is not tcp.segs[-1]:
        tcp.fail(f"expected one RST from the client, last; got frames {[s.frame for s in rsts]}")
    return f"client RST at frame {rsts[0].frame}, no FIN"


def verify_tcp_refused(wire: Sequence[Wire], ports: Ports) -> str:
    tcp = _Tcp("tcp-refused", wire)
    if len(tcp.segs) != 2:
        tcp.fail(f"{len(tcp.segs)} segments, expected a SYN and its RST")
    syn, rst = tcp.segs
    if not (rst.src == tcp.server and rst.flags & (RST | ACK) == RST | ACK
            and rst.ack == (syn.seq + 1) % MOD):
        tcp.fail(f"frame {rst.frame} is not an RST acknowledging the SYN")
    return f"SYN at frame {syn.frame} answered by RST at frame {rst.frame}"


def verify_tcp_simultaneous_close(wire: Sequence[Wire], ports: Ports) -> str:
    """Each side sent every FIN before it had the other's: no FIN acknowledges the other
    side's FIN (Linux fills in the ack of a retransmission afresh, so a FIN sent after
    the peer's FIN arrived would cover it).  Then each side acknowledges the other's."""
    tcp = _Tcp("tcp-simultaneous-close", wire)
    tcp.handshake()
    tcp.no_reset()
    tcp.lesson_data()
    fins = {ep: tcp.fins(ep) for ep in (tcp.client, tcp.server)}
    for ep, sent in fins.items():
        if not sent:
            tcp.fail(f"the {tcp.role(ep)} sent no FIN")
    for ep, other in ((tcp.client, tcp.server), (tcp.server, tcp.client)):
        for fin in fins[ep]:
            if _covers(fin, fins[other][0]):
                tcp.fail(f"the {tcp.role(ep)}'s FIN at frame {fin.frame} acknowledges the "
                         f"{tcp.role(other)}'s FIN: it had arrived, the FINs did not cross")
        last_fin = fins[other][-1]
        if not any(s.frame > last_fin.frame and _covers(s, last_fin) for s in tcp.by(ep)):
            tcp.fail(f"the {tcp.role(ep)} never acknowledged the FIN at frame {last_fin.frame}")
    frames = ", ".join(f"{tcp.role(ep)} {[f.frame for f in fins[ep]]}" for ep in fins)
    return f"the FINs crossed (FIN frames: {frames})"


def verify_tcp_simultaneous_open(wire: Sequence[Wire], ports: Ports) -> str:
    """Both sides sent a bare SYN and both answered the other's SYN with a SYN-ACK: only
    an endpoint in SYN_SENT answers a SYN that way (a listener's SYN-ACK would follow no
    SYN of its own, an endpoint that got a SYN-ACK first answers with a plain ACK)."""
    name = "tcp-simultaneous-open"
    segs = [w for w in wire if w.proto == "tcp"]
    ends = {w.src for w in segs}
    if len(ends) != 2:
        raise ScenarioError(name, f"{len(ends)} endpoints sent segments, expected two")
    syns = {ep: [s for s in segs if s.src == ep and s.flags & (SYN | ACK) == SYN]
            for ep in sorted(ends)}
    for ep, sent in syns.items():
        if not sent:
            raise ScenarioError(name, f"{_port(ep)} sent no bare SYN: it never was in SYN_SENT")
    found: list[str] = []
    for ep, sent in syns.items():
        (other,) = ends - {ep}
        synacks = [s for s in segs if s.src == ep and s.flags & (SYN | ACK) == SYN | ACK]
        if not synacks or (synacks[0].seq, synacks[0].ack) != (
                sent[0].seq, (syns[other][0].seq + 1) % MOD):
            raise ScenarioError(name, f"{_port(ep)} did not answer the other SYN with its own "
                                      "SYN-ACK: the SYNs did not cross")
        found.append(f"{_port(ep)} SYN {[s.frame for s in sent]} SYN-ACK {synacks[0].frame}")
    if any(s.flags & RST for s in segs):
        raise ScenarioError(name, "unexpected RST")
    return "the SYNs crossed: " + "; ".join(found)


def _udp(wire: Sequence[Wire]) -> tuple[list[Wire], list[Wire]]:
    """The datagrams and the ICMP port unreachables of a capture."""
    return [w for w in wire if w.proto == "udp"], [w for w in wire if w.proto == "unreachable"]


def verify_udp_basic(wire: Sequence[Wire], ports: Ports) -> str:
    datagrams, errors = _udp(wire)
    shape = [(d.dst[1] == ports[0], d.payload) for d in datagrams]
    if errors or shape != [(True, LESSON_CLIENT_DATA), (False, LESSON_SERVER_DATA)]:
        raise ScenarioError("udp-basic", f"expected a request to port {ports[0]} and its "
                                         f"reply, got {shape!r} and {len(errors)} ICMP errors")
    request, reply = datagrams
    if (reply.src, reply.dst) != (request.dst, request.src):
        raise ScenarioError("udp-basic", "the reply did not go back to the sender")
    return f"request at frame {request.frame}, reply at frame {reply.frame}"


def verify_udp_connected(wire: Sequence[Wire], ports: Ports) -> str:
    name = "udp-connected"
    datagrams, errors = _udp(wire)
    if len(datagrams) != 3 or len(errors) != 1:
        raise ScenarioError(name, f"{len(datagrams)} datagrams and {len(errors)} ICMP port "
                                  "unreachable, expected 3 and 1")
    to_a, to_b, stray = datagrams
    a, b = to_a.dst, to_a.src
    if (a[1], b[1]) != ports[:2] or (to_b.src, to_b.dst) != (a, b):
        raise ScenarioError(name, "the first two datagrams are not B -> A and A -> B")
    if stray.dst != b or stray.src in (a, b):
        raise ScenarioError(name, f"frame {stray.frame} is not a third party's datagram to B")
    (error,) = errors
    if error.quoted != (stray.src, stray.dst) or error.dst[0] != stray.src[0]:
        raise ScenarioError(name, f"the ICMP error at frame {error.frame} does not answer "
                                  f"frame {stray.frame}")
    return (f"B -> A at frame {to_a.frame}, A -> B at {to_b.frame}, the third party's "
            f"datagram at {stray.frame} answered by port unreachable at {error.frame}")


def verify_udp_unreachable(wire: Sequence[Wire], ports: Ports) -> str:
    name = "udp-unreachable"
    datagrams, errors = _udp(wire)
    if len(datagrams) != 1 or len(errors) != 1:
        raise ScenarioError(name, f"{len(datagrams)} datagrams and {len(errors)} ICMP port "
                                  "unreachable, expected 1 and 1")
    (sent,), (error,) = datagrams, errors
    if sent.dst[1] != ports[0] or error.quoted != (sent.src, sent.dst):
        raise ScenarioError(name, f"the ICMP error at frame {error.frame} does not answer "
                                  f"the datagram at frame {sent.frame}")
    return f"datagram at frame {sent.frame} answered by port unreachable at {error.frame}"
