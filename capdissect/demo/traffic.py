"""Real socket traffic on loopback for the lessons: the who-are-you/hello-world TCP lesson
and a UDP sendto/recvfrom exchange.

Every blocking call has a timeout and every loop a bound, so a lesson that goes wrong
ends with an exception instead of hanging a test or a classroom.  Only loopback
addresses are accepted: these functions must never put a packet on a real network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Final

from capdissect.demo.steps import NO_STEPS, Steps

LESSON_SERVER_DATA: Final = b"who are you"
LESSON_CLIENT_DATA: Final = b"hello world"

DEFAULT_TIMEOUT_S: Final = 5.0
# The server closes a moment after it reads EOF, so the ACK of the client's FIN travels
# alone and the server's FIN follows as its own segment (the 4-segment close the lessons
# draw) instead of riding on one FIN+ACK.
SERVER_CLOSE_DELAY_S: Final = 0.2
_MAX_READ: Final = 4096


def loopback_family(host: str) -> socket.AddressFamily:
    """Return the address family of *host*, a literal loopback address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address literal: {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"not a loopback address: {host} (lessons stay on loopback)")
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


class Worker(threading.Thread):
    """A thread that keeps the exception its target raised, for the caller to re-raise."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # handed to the joining thread
            self.error = exc

    def finish(self, timeout_s: float) -> None:
        """Join within *timeout_s*; re-raise the thread's exception, if any."""
        self.join(timeout_s)
        if self.is_alive():
            raise TimeoutError(f"{self.name} did not finish within {timeout_s:.1f} s")
        if self.error is not None:
            raise self.error


def recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Read exactly *size* bytes (each recv has the socket's timeout; the loop a deadline)."""
    chunks: list[bytes] = []
    got = 0
    for _ in range(size):  # every successful recv returns at least one byte
        if time.monotonic() > deadline:
            raise TimeoutError(f"read {got} of {size} bytes before the deadline")
        chunk = sock.recv(size - got)
        if not chunk:
            raise ConnectionError(f"peer closed after {got} of {size} bytes")
        chunks.append(chunk)
        got += len(chunk)
        if got >= size:
            break
    return b"".join(chunks)


def recv_until_eof(sock: socket.socket, deadline: float, limit: int = _MAX_READ) -> bytes:
    """Read until the peer's FIN, at most *limit* bytes, before *deadline*."""
    chunks: list[bytes] = []
    got = 0
    for _ in range(limit + 1):  # at most `limit` data reads plus the EOF read
        if time.monotonic() > deadline:
            raise TimeoutError(f"no EOF before the deadline ({got} bytes read)")
        chunk = sock.recv(_MAX_READ)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        got += len(chunk)
        if got > limit:
            break
    raise ConnectionError(f"peer sent more than {limit} bytes without closing")


def tcp_lesson(
    host: str,
    port: int,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    close_delay_s: float = SERVER_CLOSE_DELAY_S,
    steps: Steps = NO_STEPS,
) -> None:
    """Run the TCP lesson once on *host*:*port* (``127.0.0.1`` or ``::1``).

    The server listens, accepts, sends ``who are you`` and reads until EOF; the client
    connects, sends ``hello world``, reads the server's 11 bytes and closes first.  The
    server closes *close_delay_s* after it read EOF.  On the wire: handshake (S, S., .),
    two data segments with their ACKs, then FIN / ACK / FIN / ACK: 10 or 11 segments.
    *steps* hears of each step of the lesson (steps.py).
    """
    family = loopback_family(host)
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.settimeout(timeout_s)
        listener.bind((host, port))
        listener.listen(1)
        steps.step("the server listens")
        deadline = time.monotonic() + timeout_s

        def serve() -> None:
            conn, _peer = listener.accept()
            with conn:
                conn.settimeout(timeout_s)
                conn.sendall(LESSON_SERVER_DATA)
                received = recv_until_eof(conn, deadline)
                if received != LESSON_CLIENT_DATA:
                    raise ConnectionError(f"server received {received!r}")
                # Quiet now: the server holds the client's FIN and waits before closing.
                steps.step("the client closed")
                time.sleep(close_delay_s)

        server = Worker("tcp-lesson-server", serve)
        server.start()
        try:
            with socket.socket(family, socket.SOCK_STREAM) as client:
                client.settimeout(timeout_s)
                client.connect((host, port))
                # The server thread may be sending "who are you" meanwhile: no state changes.
                steps.step("the client connected")
                client.sendall(LESSON_CLIENT_DATA)
                reply = recv_exactly(client, len(LESSON_SERVER_DATA), deadline)
                if reply != LESSON_SERVER_DATA:
                    raise ConnectionError(f"client received {reply!r}")
                steps.step("after the data")
            # leaving the block closed the client first: its FIN starts the teardown
        except BaseException:
            server.join(timeout_s + close_delay_s + 1.0)  # bounded; the client's error wins
            raise
        server.finish(timeout_s + close_delay_s + 1.0)
        steps.step("the server closed")


def udp_exchange(
    host: str,
    port: int,
    *,
    request: bytes = LESSON_CLIENT_DATA,
    reply: bytes = LESSON_SERVER_DATA,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    steps: Steps = NO_STEPS,
) -> None:
    """One UDP request and reply on *host*:*port*: the client ``sendto``s *request*, the
    server ``recvfrom``s it and answers *reply* to the address it came from.  *steps*
    hears of each step (steps.py)."""
    family = loopback_family(host)
    with socket.socket(family, socket.SOCK_DGRAM) as server_sock:
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server_sock.settimeout(timeout_s)
        server_sock.bind((host, port))
        steps.step("the server is bound")

        def serve() -> None:
            data, peer = server_sock.recvfrom(_MAX_READ)
            if data != request:
                raise ConnectionError(f"server received {data!r}")
            server_sock.sendto(reply, peer)

        server = Worker("udp-exchange-server", serve)
        server.start()
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as client:
                client.settimeout(timeout_s)
                client.sendto(request, (host, port))
                steps.watch(client)  # bound by sendto, on a port of its own
                answer, _peer = client.recvfrom(_MAX_READ)
                if answer != reply:
                    raise ConnectionError(f"client received {answer!r}")
                server.finish(timeout_s + 1.0)
                steps.step("after the request and the reply")
        except BaseException:
            server.join(timeout_s + 1.0)  # bounded; the client's error wins
            raise
