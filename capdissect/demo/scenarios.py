"""The lesson scenarios: real sockets, captured by tcpdump, each checked on its own capture.

A scenario is three things: ``drive`` makes the traffic with real sockets (every call
has a timeout and every loop a bound); ``verify`` reads the capture back and checks the
promised shape from the raw headers (never through the tracker, which these captures
are here to test); ``run_scenario`` ties them together and retries a bounded number of
times when the timing did not give the promised shape.

Most scenarios run on the loopback of the calling process's namespace.  The two that
need crossing segments (``tcp-simultaneous-close``, ``tcp-simultaneous-open``) run in a
throwaway network namespace whose firewall drops each side's first FIN or SYN (see
``netns.py``): a child ``python -m capdissect.demo --here ...`` is started inside it
with ``ip netns exec`` and captures and drives there.

    python -m capdissect.demo --list
    sudo python -m capdissect.demo tcp-simultaneous-close --family 6 --write x.pcap
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple, NoReturn

from capdissect.demo.kernel import Snapshot, SsRecorder
from capdissect.demo.netns import Drop, Namespace
from capdissect.demo.steps import BASELINE_STEP, EXIT_STEP, Steps
from capdissect.demo.tcpdump import TcpdumpCapture
from capdissect.demo.traffic import (
    LESSON_CLIENT_DATA,
    LESSON_SERVER_DATA,
    SERVER_CLOSE_DELAY_S,
    loopback_family,
    recv_exactly,
    recv_until_eof,
    tcp_lesson,
    udp_exchange,
)
from capdissect.dissect import icmp, icmp6
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.errors import CapdissectError, DemoUnavailable, PortInUse, ScenarioError
from capdissect.sources import open_capture
from capdissect.sources.strace import log_beside, tracing_this_process

Ports = tuple[int, ...]
Endpoint = tuple[bytes, int]

HOSTS: Final[Mapping[int, str]] = MappingProxyType({4: "127.0.0.1", 6: "::1"})
LESSON_TCP_PORT: Final = 30002
LESSON_UDP_PORT: Final = 10001
DEFAULT_TIMEOUT_S: Final = 5.0
ATTEMPTS: Final = 3
# What the third party of udp-connected sends to the connected socket, which never gets it.
STRANGER_DATA: Final = b"anyone there?"
MAX_PACKETS: Final = 200  # a scenario makes a dozen; more means stray traffic got in
CHILD_TIMEOUT_S: Final = 60.0
EXIT_UNAVAILABLE: Final = 3  # the child's exit status for "cannot run here"
_MOD: Final = 1 << 32


# ----- socket helpers ------------------------------------------------------------------
@contextlib.contextmanager
def _connected(host: str, port: int, timeout_s: float,
               steps: Steps) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A listener on *host*:*port*, a client connected to it and the accepted socket.

    One thread is enough: connect() returns once the kernel completed the handshake for
    the listen queue, and accept() then takes it.  One thread also makes the order of
    the application's calls, and so of the segments, the order written in the code.
    The listener closes last, after the with block: steps taken inside it still see it.
    """
    family = loopback_family(host)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.settimeout(timeout_s)
        listener.bind((host, port))
        listener.listen(1)
        steps.step("the server listens")
        client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        client.settimeout(timeout_s)
        client.connect((host, port))
        server = stack.enter_context(listener.accept()[0])
        server.settimeout(timeout_s)
        steps.step("the client connected, the server accepted")
        yield client, server


def _exchange(client: socket.socket, server: socket.socket, deadline: float,
              steps: Steps) -> None:
    """The lesson's two lines: the server asks ``who are you``, the client says hello."""
    server.sendall(LESSON_SERVER_DATA)
    recv_exactly(client, len(LESSON_SERVER_DATA), deadline)
    client.sendall(LESSON_CLIENT_DATA)
    recv_exactly(server, len(LESSON_CLIENT_DATA), deadline)
    steps.step("after the data")


def _wait_acked(sock: socket.socket, deadline: float) -> None:
    """Wait until the peer acknowledged everything *sock* sent (SIOCOUTQ reaches 0)."""
    buf = bytearray(4)
    while time.monotonic() < deadline:
        fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)  # SIOCOUTQ: sent but not acked
        if struct.unpack("i", buf)[0] == 0:
            return
        time.sleep(0.005)
    raise TimeoutError("the peer did not acknowledge the data before the deadline")


@contextlib.contextmanager
def _one_cpu() -> Iterator[None]:
    """Run on one CPU, so both sockets' retransmission timers sit in the same CPU's timer
    wheel and expire in the same softirq run: that is what makes them cross (netns.py)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ----- the scenarios' traffic ---------------------------------------------------------
# Each drive calls steps.step(...) where a lesson would run netstat, at moments when its
# sockets are quiet (see steps.py).  The scenarios with a listener also step once all
# their sockets are closed (EXIT_STEP): only TIME_WAIT is left, as after the lesson.
def drive_tcp_basic(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """The lesson: the client closes first, the server 0.2 s later (its ACK of the
    client's FIN travels alone, then its own FIN)."""
    tcp_lesson(host, ports[0], timeout_s=timeout_s, steps=steps)
    steps.step(EXIT_STEP)


def drive_tcp_server_closes_first(host: str, ports: Ports, timeout_s: float,
                                  steps: Steps) -> None:
    """The lesson mirrored: the server closes after the exchange, the client 0.2 s after
    it read EOF, so the server is the one left in TIME_WAIT."""
    deadline = time.monotonic() + timeout_s
    with _connected(host, ports[0], timeout_s, steps) as (client, server):
        _exchange(client, server, deadline, steps)
        server.close()
        recv_until_eof(client, deadline)
        steps.step("the server closed")
        time.sleep(SERVER_CLOSE_DELAY_S)
        client.close()
        steps.step("the client closed")
    steps.step(EXIT_STEP)


def drive_tcp_half_close(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """An echo: the client sends ``hello world`` and shutdown(SHUT_WR)s; the server reads
    to EOF, still answers (the echo), and closes 0.2 s later."""
    deadline = time.monotonic() + timeout_s
    with _connected(host, ports[0], timeout_s, steps) as (client, server):
        client.sendall(LESSON_CLIENT_DATA)
        client.shutdown(socket.SHUT_WR)
        request = recv_until_eof(server, deadline)
        steps.step("the client sent its data and shut down its side")
        server.sendall(request)
        recv_exactly(client, len(request), deadline)
        steps.step("the server answered after the client's FIN")
        # The pause keeps the server's FIN apart from its data, as in the lesson.
        time.sleep(SERVER_CLOSE_DELAY_S)
        server.close()
        recv_until_eof(client, deadline)
        steps.step("the server closed")
        client.close()
    steps.step(EXIT_STEP)


def drive_tcp_reset(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """After the exchange the client sets SO_LINGER {on, 0 s} and closes: an abortive
    close, RST instead of FIN (RFC 9293 §3.10.4 ABORT).  The server's next read fails."""
    deadline = time.monotonic() + timeout_s
    with _connected(host, ports[0], timeout_s, steps) as (client, server):
        _exchange(client, server, deadline, steps)
        _wait_acked(client, deadline)  # the server's ACK goes on the wire before the RST
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        try:
            data = server.recv(4096)
        except ConnectionResetError:
            steps.step("the client aborted, the server's read failed")
        else:
            raise ScenarioError("tcp-reset",
                                f"the server read {data!r} instead of ECONNRESET")
    steps.step(EXIT_STEP)


def drive_tcp_refused(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """connect() to a port nothing listens on: the SYN is answered by RST."""
    with socket.socket(loopback_family(host), socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        try:
            client.connect((host, ports[0]))
        except ConnectionRefusedError:
            steps.step("connect() was refused")
        else:
            raise ScenarioError("tcp-refused", f"something listens on port {ports[0]}")
    steps.step(EXIT_STEP)


def drive_tcp_simultaneous_close(host: str, ports: Ports, timeout_s: float,
                                 steps: Steps) -> None:
    """Both sides shutdown(SHUT_WR) back to back.  In the namespace both first FINs are
    dropped; the retransmissions cross and each side goes through CLOSING."""
    deadline = time.monotonic() + timeout_s
    with _one_cpu(), _connected(host, ports[0], timeout_s, steps) as (client, server):
        _exchange(client, server, deadline, steps)
        # Let the data's ACKs go out first, so the teardown starts on a quiet connection.
        time.sleep(0.05)
        client.shutdown(socket.SHUT_WR)
        server.shutdown(socket.SHUT_WR)
        # Both first FINs were dropped; the retransmissions come ~0.2 s later (RTO).
        steps.step("both sides shut down (their first FINs dropped)")
        recv_until_eof(client, deadline)  # returns after the retransmitted FINs, ~0.2 s
        recv_until_eof(server, deadline)
        steps.step("the retransmitted FINs crossed")
    steps.step(EXIT_STEP)


def drive_tcp_simultaneous_open(host: str, ports: Ports, timeout_s: float,
                                steps: Steps) -> None:
    """Two sockets bound to fixed ports connect() to each other at once.  In the namespace
    both first SYNs are dropped; the retransmitted SYNs cross and each side answers the
    other's SYN with a SYN-ACK (SYN_SENT -> SYN_RECEIVED -> ESTABLISHED).  Then the lower
    port (the client, SPEC §4) says hello and closes first."""
    low, high = ports[0], ports[1]
    family = loopback_family(host)
    deadline = time.monotonic() + timeout_s
    with _one_cpu(), contextlib.ExitStack() as stack:
        a = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        b = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        a.bind((host, low))
        b.bind((host, high))
        # The higher port's SYN goes first: the tracker must still call the lower one
        # the client, as SPEC §4 says for a simultaneous open.
        for sock, peer in ((b, low), (a, high)):
            sock.setblocking(False)
            err = sock.connect_ex((host, peer))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        # Both first SYNs were dropped; the retransmissions come ~1 s later.
        steps.step("both sides connect() (their first SYNs dropped)")
        _wait_connected((a, b), deadline)
        steps.step("the crossed SYNs connected both")
        for sock in (a, b):
            sock.settimeout(timeout_s)
        a.sendall(LESSON_CLIENT_DATA)
        recv_exactly(b, len(LESSON_CLIENT_DATA), deadline)
        b.sendall(LESSON_SERVER_DATA)
        recv_exactly(a, len(LESSON_SERVER_DATA), deadline)
        steps.step("after the data")
        a.close()
        recv_until_eof(b, deadline)
        steps.step("the lower port closed")
        time.sleep(SERVER_CLOSE_DELAY_S)
        b.close()
        steps.step("the higher port closed")


def _wait_connected(socks: Sequence[socket.socket], deadline: float) -> None:
    pending = list(socks)
    for _ in range(2 * len(socks) + 1):  # each round completes a socket or times out
        if not pending:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        _, writable, _ = select.select([], pending, [], remaining)
        for sock in writable:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect: {os.strerror(err)}")
            pending.remove(sock)
    if pending:
        raise TimeoutError("the simultaneous open did not complete before the deadline")


def drive_udp_basic(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """sendto/recvfrom: a request and its reply, no handshake, no state."""
    udp_exchange(host, ports[0], timeout_s=timeout_s, steps=steps)


def drive_udp_connected(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """B connect()s its UDP socket to A and talks with it.  A third socket C sends to B:
    the kernel finds no socket for C (B only takes datagrams from A), so B never sees it
    and C gets ICMP port unreachable (C is connected too, so its recv reports
    ECONNREFUSED)."""
    family = loopback_family(host)
    with contextlib.ExitStack() as stack:
        a, b, c = (stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
                   for _ in range(3))
        for sock in (a, b, c):
            sock.settimeout(timeout_s)
        a.bind((host, ports[0]))
        b.bind((host, ports[1]))
        b.connect((host, ports[0]))
        steps.step("A is bound, B is connect()ed to A")
        b.send(LESSON_CLIENT_DATA)
        _data, peer = a.recvfrom(4096)
        a.sendto(LESSON_SERVER_DATA, peer)
        b.recv(4096)
        steps.step("A and B exchanged datagrams")
        c.connect((host, ports[1]))
        c.send(STRANGER_DATA)
        try:
            c.recv(4096)
        except ConnectionRefusedError:
            pass
        else:
            raise ScenarioError("udp-connected", "the third party got an answer")
        b.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            data = b.recv(4096)
            raise ScenarioError("udp-connected", f"the connected socket received {data!r}")
        steps.step("B refused C's datagram")


def drive_udp_unreachable(host: str, ports: Ports, timeout_s: float, steps: Steps) -> None:
    """A datagram to a port nothing is bound to: ICMP port unreachable comes back."""
    with socket.socket(loopback_family(host), socket.SOCK_DGRAM) as client:
        client.settimeout(timeout_s)
        client.connect((host, ports[0]))  # connected, so the ICMP error reaches recv()
        steps.step("the client is connect()ed to the port")
        client.send(LESSON_CLIENT_DATA)
        try:
            client.recv(4096)
        except ConnectionRefusedError:
            steps.step("the datagram was refused")
            return
    raise ScenarioError("udp-unreachable", f"something answered on port {ports[0]}")


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
    fin_end = (fin.seq + len(fin.payload) + 1) % _MOD
    return (seg.ack - fin_end) % _MOD < (1 << 31)


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
                and synack.ack == (syn.seq + 1) % _MOD):
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
            and rst.ack == (syn.seq + 1) % _MOD):
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
                sent[0].seq, (syns[other][0].seq + 1) % _MOD):
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


# ----- the registry ----------------------------------------------------------------------
def _tcp_filter(ports: Ports) -> str:
    return f"tcp port {ports[0]}"


def _udp_filter(index: int) -> Callable[[Ports], str]:
    """UDP to or from one port, and the ICMP/ICMPv6 port unreachable quoting it (the
    quoted destination port: ICMP header 8 + quoted IPv4 header 20 + 2; ICMPv6 8 + 40 + 2)."""
    def bpf(ports: Ports) -> str:
        port = ports[index]
        return (f"udp port {port}"
                f" or (icmp[icmptype] == icmp-unreach and icmp[30:2] == {port})"
                f" or (icmp6[icmp6type] == icmp6-destinationunreach and icmp6[50:2] == {port})")
    return bpf


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    drive: Callable[[str, Ports, float, Steps], None]  # host, ports, timeout, steps
    verify: Callable[[Sequence[Wire], Ports], str]
    bpf: Callable[[Ports], str]
    ports: Ports  # the lesson's ports; tests pass free ones (free_ports)
    transport: int  # socket.SOCK_STREAM or SOCK_DGRAM, for free_ports
    min_packets: int  # the capture is not over before it holds this many
    drop: Drop | None = None  # run in a namespace that drops each side's first FIN/SYN


_SCENARIO_LIST: Final = (
    Scenario("tcp-basic", "the lesson: who are you / hello world, the client closes first",
             drive_tcp_basic, verify_tcp_basic, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 10),
    Scenario("tcp-server-closes-first", "the lesson, but the server closes first",
             drive_tcp_server_closes_first, verify_tcp_server_closes_first, _tcp_filter,
             (LESSON_TCP_PORT,), socket.SOCK_STREAM, 10),
    Scenario("tcp-half-close", "shutdown(SHUT_WR) by the client; the server still answers",
             drive_tcp_half_close, verify_tcp_half_close, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 10),
    Scenario("tcp-reset", "SO_LINGER {1, 0} then close(): RST instead of FIN",
             drive_tcp_reset, verify_tcp_reset, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 7),
    Scenario("tcp-refused", "connect() to a port nothing listens on: SYN answered by RST",
             drive_tcp_refused, verify_tcp_refused, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 2),
    Scenario("tcp-simultaneous-close", "both sides close at once: the FINs cross",
             drive_tcp_simultaneous_close, verify_tcp_simultaneous_close, _tcp_filter,
             (LESSON_TCP_PORT,), socket.SOCK_STREAM, 13, drop="fin"),
    Scenario("tcp-simultaneous-open", "two bound sockets connect() to each other: the SYNs "
             "cross", drive_tcp_simultaneous_open, verify_tcp_simultaneous_open, _tcp_filter,
             (LESSON_TCP_PORT, LESSON_TCP_PORT + 1), socket.SOCK_STREAM, 10, drop="syn"),
    Scenario("udp-basic", "sendto/recvfrom: a request and its reply",
             drive_udp_basic, verify_udp_basic, _udp_filter(0), (LESSON_UDP_PORT,),
             socket.SOCK_DGRAM, 2),
    Scenario("udp-connected", "a connected UDP socket ignores a third party, whose datagram "
             "is answered by ICMP port unreachable", drive_udp_connected,
             verify_udp_connected, _udp_filter(1), (LESSON_UDP_PORT, LESSON_UDP_PORT + 1),
             socket.SOCK_DGRAM, 4),
    Scenario("udp-unreachable", "UDP to a port nothing is bound to: ICMP port unreachable",
             drive_udp_unreachable, verify_udp_unreachable, _udp_filter(0),
             (LESSON_UDP_PORT,), socket.SOCK_DGRAM, 2),
)
SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType(
    {s.name: s for s in _SCENARIO_LIST})


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ScenarioError(name, f"no such scenario (known: {known})") from None


def free_ports(name: str, family: int) -> Ports:
    """Ports the kernel calls free right now, as many as the scenario uses.

    A scenario in its own namespace keeps the lesson's ports: nothing else lives there.
    The sockets are held together while probing, so the ports are distinct.
    """
    scenario = get_scenario(name)
    if scenario.drop is not None:
        return scenario.ports
    host = HOSTS[family]
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(loopback_family(host), scenario.transport))
                  for _ in scenario.ports]
        for probe in probes:
            probe.bind((host, 0))
        return tuple(int(p.getsockname()[1]) for p in probes)


# ----- running -------------------------------------------------------------------------
class ScenarioRun(NamedTuple):
    scenario: str
    family: int
    path: Path
    ports: Ports
    packets: int
    attempts: int
    shape: str  # what the shape check found, one line
    failures: tuple[str, ...]  # why earlier attempts were thrown away
    # ss -tanu at each step of the lesson (kernel.py); empty when ss is missing
    snapshots: tuple[Snapshot, ...] = ()
    kernel_problem: str | None = None  # why there are no snapshots
    trace_problem: str | None = None  # why the calls were not traced (strace, ptrace)


def verify_capture(name: str, path: Path, ports: Ports | None = None) -> str:
    """Check that the capture at *path* shows what scenario *name* promises; return a
    one-line description of what it shows, or raise ScenarioError."""
    scenario = get_scenario(name)
    return scenario.verify(read_wire(path), ports or scenario.ports)


class Captured(NamedTuple):
    """What one capture of a scenario gave: the packets written, the kernel's tables, and
    why the socket calls were not traced (None: strace's log is beside the capture)."""

    packets: int
    snapshots: tuple[Snapshot, ...]
    kernel_problem: str | None
    trace_problem: str | None = None

    def to_json(self) -> str:
        return json.dumps({"packets": self.packets, "kernel_problem": self.kernel_problem,
                           "snapshots": [s.to_json() for s in self.snapshots],
                           "trace_problem": self.trace_problem})

    @classmethod
    def from_json(cls, text: str) -> Captured:
        obj = json.loads(text)
        return cls(int(obj["packets"]),
                   tuple(Snapshot.from_json(s) for s in obj["snapshots"]),
                   obj["kernel_problem"], obj.get("trace_problem"))


def capture_here(name: str, out: Path, family: int, ports: Ports,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> Captured:
    """Capture scenario *name* in this process's namespace, with ``ss -tanu`` at each of
    its steps (the first before it opens a socket)."""
    scenario = get_scenario(name)
    out.unlink(missing_ok=True)
    kernel = SsRecorder(ports)
    with TcpdumpCapture(out, scenario.bpf(ports)) as cap:
        kernel.step(BASELINE_STEP)
        # The socket calls, through the same strace path as `capdissect trace --pid`:
        # attached to this process, which drives the lesson (SPEC 3.10).
        with tracing_this_process(log_beside(out)) as tracing:
            try:
                scenario.drive(HOSTS[family], ports, timeout_s, kernel)
            except OSError as exc:  # timeouts and refused/reset surprises: the lesson failed
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(name, tuple(ports)) from None
                raise ScenarioError(name, f"{type(exc).__name__}: {exc}") from exc
        packets = cap.stop(scenario.min_packets)
    return Captured(packets, tuple(kernel.snapshots), kernel.problem, tracing.problem)


def _capture_in_namespace(scenario: Scenario, out: Path, family: int, ports: Ports,
                          timeout_s: float) -> Captured:
    assert scenario.drop is not None
    package_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    # The child imports capdissect from this checkout even when it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(package_root), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "capdissect.demo", "--here", scenario.name,
            "--family", str(family), "--ports", ",".join(map(str, ports)),
            "--write", str(out), "--timeout", str(timeout_s)]
    with Namespace(scenario.drop) as ns:
        # Its own session: on a timeout the whole group (the child and its tcpdump) goes.
        proc = subprocess.Popen(ns.command(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScenarioError(scenario.name, f"did not finish within {CHILD_TIMEOUT_S:.0f} s "
                                               f"in namespace {ns.name}") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        lines = stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode == EXIT_UNAVAILABLE:
            raise DemoUnavailable(why)
        if proc.returncode != 0:
            raise ScenarioError(scenario.name, f"in namespace {ns.name}: {why}")
        try:
            return Captured.from_json(stdout)
        except (ValueError, KeyError, TypeError) as exc:
            raise ScenarioError(scenario.name, f"the namespace child said {stdout[:200]!r}: "
                                               f"{exc}") from None


def run_scenario(name: str, out: Path, *, family: int = 4, ports: Ports | None = None,
                 attempts: int = ATTEMPTS,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> ScenarioRun:
    """Run scenario *name* over IPv*family*, capture it into *out* (a ``.pcap`` name:
    Debian's AppArmor profile for tcpdump only lets it write those) and check its shape.

    A run whose shape is wrong (timing can lose the crossing race; stray packets) is
    thrown away and tried again, *attempts* times at most.  Raises DemoUnavailable when
    this machine cannot capture or make the namespace, ScenarioError when no attempt gave
    the promised shape.
    """
    scenario = get_scenario(name)
    if family not in HOSTS:
        raise ScenarioError(name, f"no IPv{family}: use 4 or 6")
    ports = ports or scenario.ports
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            if scenario.drop is None:
                captured = capture_here(name, out, family, ports, timeout_s)
            else:
                captured = _capture_in_namespace(scenario, out, family, ports, timeout_s)
            shape = verify_capture(name, out, ports)
        except PortInUse:
            raise  # the port stays taken: another attempt would fail the same way
        except ScenarioError as exc:
            failures.append(f"attempt {attempt}: {exc.reason}")
            continue
        return ScenarioRun(name, family, out, ports, captured.packets, attempt, shape,
                           tuple(failures), captured.snapshots, captured.kernel_problem,
                           captured.trace_problem)
    raise ScenarioError(name, "; ".join(failures))


# ----- command line (and the child inside a namespace) ---------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m capdissect.demo",
        description="Run a lesson scenario with real sockets, capture it and check it.")
    parser.add_argument("name", nargs="?", help="the scenario (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--ports", help="comma-separated ports (default: the lesson's)")
    parser.add_argument("--write", type=Path, help="the capture file (.pcap)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--here", action="store_true",
                        help="capture in this namespace, no checks (the namespace child)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for scenario in _SCENARIO_LIST:
            where = " (in a namespace)" if scenario.drop else ""
            print(f"{scenario.name:24} {scenario.summary}{where}")
        return 0
    out: Path = args.write or Path(f"{args.name}.pcap")
    ports = tuple(int(p) for p in args.ports.split(",")) if args.ports else None
    try:
        if args.here:
            scenario = get_scenario(args.name)
            # One JSON line for the parent: the packet count and the kernel's tables.
            print(capture_here(args.name, out, args.family, ports or scenario.ports,
                               args.timeout).to_json())
            return 0
        run = run_scenario(args.name, out, family=args.family, ports=ports,
                           timeout_s=args.timeout)
    except DemoUnavailable as exc:
        print(f"cannot run here: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (CapdissectError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{run.path}: {run.packets} packets, attempt {run.attempts}: {run.shape}")
    return 0
