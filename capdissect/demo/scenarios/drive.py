"""The scenarios' traffic: real sockets on loopback, every call with a timeout and
every loop with a bound (``catalog.py`` pairs each with its check)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import termios
import time
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from capdissect.demo.steps import EXIT_STEP, Steps
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
from capdissect.errors import ScenarioError

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
MOD: Final = 1 << 32
_CLOCK_MONOTONIC_COARSE: Final = 6  # Linux's clock id; the time module does not name it
_TICK_WAIT_S: Final = 0.05  # a tick is 1 to 10 ms (HZ 1000 to 100)



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


def _just_after_a_tick() -> None:
    """Return just after the kernel's clock ticks (a jiffy starts), so that two calls made
    next fall in the same jiffy, and so arm their retransmission timers for the same
    expiry (netns.py).  Called back to back under strace, which stops each call at entry
    and exit, two calls were a millisecond apart; at 250 ticks a second, 9 runs in 100
    lost the race, against none in 100 since this wait.  The coarse clock advances once a
    tick and is read without a system call (vDSO), so strace does not slow the wait."""
    start = time.clock_gettime_ns(_CLOCK_MONOTONIC_COARSE)
    deadline = time.monotonic() + _TICK_WAIT_S
    while (time.clock_gettime_ns(_CLOCK_MONOTONIC_COARSE) == start
           and time.monotonic() < deadline):
        pass


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
        _just_after_a_tick()
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
        a.setblocking(False)
        b.setblocking(False)
        _just_after_a_tick()
        # The higher port's SYN goes first: the tracker must still call the lower one
        # the client, as SPEC §4 says for a simultaneous open.
        for sock, peer in ((b, low), (a, high)):
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
