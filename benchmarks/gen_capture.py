"""Generate (once) the benchmark captures: real traffic recorded by tcpdump.

    .venv/bin/python benchmarks/gen_capture.py [--mix short|long] [--min-packets N] [--force]

Two mixes (``MIXES``), so that no benchmark target holds on one file only.  Each capture
is cached in ~/.cache/capdissect-bench/ (``$XDG_CACHE_HOME`` if set), never in the
repository, and rebuilt only when missing, too small or made by another version of its
mix.  Needs root and tcpdump; the long mix also network namespaces (iproute2) and
mergecap (tshark's wireshark-common).

``short`` (loopback-v1.pcap, about a million packets): many short connections, over both
127.0.0.1 and ::1, on the dedicated ports 21000-21004 (below Linux's ephemeral range, so no
client port lands on them):

* many short TCP connections: connect, one request, one reply, client closes;
* long-lived TCP connections doing request/reply ping-pong with varying reply sizes;
* a few bulk transfers of several MB, written 1448 bytes at a time with TCP_NODELAY, so
  most data segments are Ethernet-sized (loopback's GSO would otherwise make 64 KB ones);
* UDP request/reply bursts, and now and then a datagram to a closed port, which the
  kernel answers with ICMP / ICMPv6 port unreachable.

``long`` (longconn-v1.pcap, about 280,000 packets of some 900 bytes on average): fewer,
longer connections and larger segments, over both 127.0.0.1 and ::1 on ports 22000-22004:

* bulk transfers into a receiver with a small receive buffer that reads a little at a
  time and sleeps in between, now and then past the delayed-ACK timer, so the sender
  keeps hitting a zero window (and the receiver, short of buffer, drops a few segments:
  retransmissions even on loopback);
* bulk transfers written 1 MiB at a time without TCP_NODELAY: loopback's GSO makes
  segments of up to 64 KB;
* long-lived TCP connections doing request/reply with replies of 16 bytes to 64 KiB;
* one-way UDP streams of datagrams of 100 bytes to 8 KiB, and UDP request/reply;
* a transfer of a few MB between two network namespaces through a relay that drops,
  delays and reorders segments (tests/support/lossy.py): retransmissions, duplicate
  ACKs, out-of-order segments.  It is captured on its own interface while the loopback
  traffic runs, and mergecap merges both files in time order (both are Ethernet).

Each family has one server process (a single-threaded selector loop; the slow reader of
the long mix reads in a thread per connection) and several client processes, so
connections overlap as in real traffic.  Every loop is bounded by a count and by a
deadline, every socket has a timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root
from tests.support.livecap import TcpdumpCapture, count_pcap_records

# The short mix's (the first benchmark capture's) version and size; the long mix has its own
# in MIXES.
GENERATOR_VERSION: Final = 1  # bump when the traffic changes: cached captures are remade
# SPEC 5 measures on "about a million packets"; the plan below makes a bit more.
DEFAULT_MIN_PACKETS: Final = 1_000_000
BUILD_BUDGET_S: Final = 150.0  # clients stop early past this; the count check then decides
SOCKET_TIMEOUT_S: Final = 5.0

HOSTS: Final = ("127.0.0.1", "::1")
PORT_SHORT: Final = 21000  # short connections: one request, one reply
PORT_PINGPONG: Final = 21001  # long connections, many requests
PORT_BULK: Final = 21002  # the server reads and discards until EOF
PORT_UDP: Final = 21003  # UDP request/reply
PORT_CLOSED: Final = 21004  # nobody listens: ICMP port unreachable
BPF_FILTER: Final = "portrange 21000-21004 or icmp or icmp6"

# The long mix's ports (also below the ephemeral range, apart from the short mix's).
PORT_SLOW_SINK: Final = 22000  # small receive buffer, read slowly: zero windows
PORT_REQUESTS: Final = 22001  # long connections, replies up to 64 KiB
PORT_FAST_SINK: Final = 22002  # the server reads and discards until EOF, fast
PORT_UDP_RR: Final = 22003  # UDP request/reply
PORT_UDP_STREAM: Final = 22004  # one-way UDP: the server only reads
LONG_BPF_FILTER: Final = "portrange 22000-22004"

REQUEST: Final = struct.Struct("!I60x")  # 64-byte request: the reply length it asks for
BULK_WRITE: Final = 1448  # one Ethernet-sized TCP payload per send
BULK_CHUNK: Final = 64 * 1024
LARGE_WRITE: Final = 1024 * 1024  # long mix: one send, many 64 KB GSO segments
SLOW_RCVBUF: Final = 4096  # the kernel doubles it: an 8 KB receive buffer
SLOW_READ: Final = 2048  # the slow reader's recv size ...
SLOW_PAUSE_S: Final = 0.001  # ... its sleep after each recv ...
SLOW_STALL_EVERY: Final = 32  # ... and after every 32nd a longer one, past the delayed ACK
SLOW_STALL_S: Final = 0.06  # timer: the ACK of the full buffer then says window 0
SLOW_MAX_READS: Final = 1_000_000
UDP_SINK_RCVBUF: Final = 4 * 1024 * 1024
UDP_STREAM_SIZES: Final = (100, 8192)  # one-way datagrams: log-uniform between these
UDP_STREAM_BURST: Final = 8  # datagrams between two pauses of ...
UDP_STREAM_PAUSE_S: Final = 0.001
LARGE_REPLY_SHARE: Final = 0.08  # long mix: this share of replies is 1500 B - 64 KiB
MAX_REPLY: Final = 64 * 1024
REQUEST_PAUSE_EVERY: Final = 8  # long mix: a 1 ms think time after every 8th round trip
LONG_NICE: Final = 10  # the long mix's clients and servers yield the CPU to tcpdump


@dataclass(frozen=True, slots=True)
class Plan:
    """How much traffic of each kind, per address family."""

    short_conns: int = 2_500
    pingpong_conns: int = 4
    pingpong_round_trips: int = 32_000
    bulk_transfers: int = 2
    bulk_bytes: int = 4 * 1024 * 1024
    udp_exchanges: int = 125_000
    icmp_every: int = 200  # one datagram to the closed port per this many UDP exchanges

    def scaled(self, factor: float) -> Plan:
        return Plan(
            short_conns=round(self.short_conns * factor),
            pingpong_conns=self.pingpong_conns,
            pingpong_round_trips=round(self.pingpong_round_trips * factor),
            bulk_transfers=self.bulk_transfers,
            bulk_bytes=self.bulk_bytes,
            udp_exchanges=round(self.udp_exchanges * factor),
            icmp_every=self.icmp_every,
        )


@dataclass(frozen=True, slots=True)
class LongPlan:
    """The long mix: how much traffic of each kind per address family (the lossy transfer
    is made once, over IPv4)."""

    slow_transfers: int = 2  # each on its own connection, at the same time
    slow_bytes: int = 3 * 1024 * 1024
    fast_transfers: int = 1
    fast_bytes: int = 12 * 1024 * 1024
    fast_pause_ms: int = 20  # between two 1 MiB writes: tcpdump keeps up
    request_conns: int = 4
    request_round_trips: int = 7_000  # per connection
    udp_streams: int = 2
    udp_stream_datagrams: int = 8_000  # per stream
    udp_exchanges: int = 30_000
    lossy_bytes: int = 3_000_000

    def scaled(self, factor: float) -> LongPlan:
        """Scale the counts of messages; the transfers keep their sizes."""
        return LongPlan(
            slow_transfers=self.slow_transfers,
            slow_bytes=self.slow_bytes,
            fast_transfers=self.fast_transfers,
            fast_bytes=self.fast_bytes,
            fast_pause_ms=self.fast_pause_ms,
            request_conns=self.request_conns,
            request_round_trips=round(self.request_round_trips * factor),
            udp_streams=self.udp_streams,
            udp_stream_datagrams=round(self.udp_stream_datagrams * factor),
            udp_exchanges=round(self.udp_exchanges * factor),
            lossy_bytes=self.lossy_bytes,
        )


AnyPlan: TypeAlias = Plan | LongPlan


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capdissect-bench"


def capture_path(mix: str = "short") -> Path:
    spec = mix_named(mix)
    return cache_dir() / f"{spec.stem}-v{spec.version}.pcap"


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# --- server: one selector loop per address family ------------------------------------------


# What a server port does: (port, role, size).  Roles: "reply" (TCP: one reply of at most
# size bytes per 64-byte request), "sink" (TCP: read size bytes at a time until EOF),
# "slow_sink" (TCP, small receive buffer, read slowly), "udp_reply" (at most size bytes),
# "udp_sink".
Service: TypeAlias = tuple[int, str, int]
SHORT_SERVICES: Final[tuple[Service, ...]] = (
    (PORT_SHORT, "reply", 16_384),
    (PORT_PINGPONG, "reply", 16_384),
    (PORT_BULK, "sink", BULK_CHUNK),
    (PORT_UDP, "udp_reply", 1400),
)
LONG_SERVICES: Final[tuple[Service, ...]] = (
    (PORT_SLOW_SINK, "slow_sink", 0),
    (PORT_REQUESTS, "reply", MAX_REPLY),
    (PORT_FAST_SINK, "sink", LARGE_WRITE),
    (PORT_UDP_RR, "udp_reply", 1400),
    (PORT_UDP_STREAM, "udp_sink", 0),
)
_RCVBUF: Final = {"slow_sink": SLOW_RCVBUF, "udp_sink": UDP_SINK_RCVBUF}


def _listen(
    host: str, port: int, kind: socket.SocketKind, rcvbuf: int | None = None
) -> socket.socket:
    sock = socket.socket(family_of(host), kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf is not None:  # before listen(): accepted sockets inherit it, and the SYN's
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # window scale fits
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(
    host: str, stop: EventType, ready: EventType, deadline: float,
    services: tuple[Service, ...] = SHORT_SERVICES, nice: int = 0,
) -> None:  # fmt: skip
    """Answer every client of *host* on *services* until *stop* is set or *deadline*
    passes."""
    os.nice(nice)
    sel = selectors.DefaultSelector()
    bound: list[socket.socket] = []
    for port, role, size in services:
        udp = role.startswith("udp")
        sock = _listen(
            host, port, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM, _RCVBUF.get(role)
        )
        bound.append(sock)
        sel.register(sock, selectors.EVENT_READ, ("udp" if udp else "listen", role, size))
    buffers: dict[socket.socket, bytearray] = {}
    readers: list[threading.Thread] = []  # the slow reader's threads
    ready.set()
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            for key, _events in sel.select(timeout=0.2):
                what, role, size = key.data
                ready_sock = key.fileobj
                if not isinstance(ready_sock, socket.socket):
                    continue
                if what == "listen":
                    conn = _accept(sel, ready_sock, (role, size), buffers)
                    if conn is not None and role == "slow_sink":
                        reader = threading.Thread(
                            target=_read_slowly, args=(conn, stop, deadline), daemon=True
                        )
                        reader.start()
                        readers.append(reader)
                elif role == "udp_sink":
                    _drain_udp(ready_sock)
                elif what == "udp":
                    _answer_udp(ready_sock, size)
                else:
                    _serve_stream(sel, ready_sock, (role, size), buffers)
    finally:
        for sock in list(buffers):
            sel.unregister(sock)
            sock.close()
        for sock in bound:
            sock.close()
        sel.close()
        for reader in readers:  # they stop on *stop* too
            reader.join(2.0)


def _accept(
    sel: selectors.BaseSelector, listener: socket.socket, service: tuple[str, int],
    buffers: dict[socket.socket, bytearray],
) -> socket.socket | None:  # fmt: skip
    try:
        conn, _peer = listener.accept()
    except BlockingIOError:
        return None
    conn.settimeout(SOCKET_TIMEOUT_S)  # sends are small; the timeout only bounds a stall
    if service[0] == "slow_sink":
        return conn  # its own thread reads it
    buffers[conn] = bytearray()
    sel.register(conn, selectors.EVENT_READ, ("conn", *service))
    return conn


def _serve_stream(
    sel: selectors.BaseSelector, conn: socket.socket, service: tuple[str, int],
    buffers: dict[socket.socket, bytearray],
) -> None:  # fmt: skip
    role, size = service
    try:
        data = conn.recv(size if role == "sink" else BULK_CHUNK)
    except (BlockingIOError, TimeoutError):
        return
    except OSError:
        data = b""
    if not data:  # the client closed first: close too
        sel.unregister(conn)
        del buffers[conn]
        conn.close()
        return
    if role == "sink":
        return
    buf = buffers[conn]
    buf += data
    # one reply per whole request; at most len(buf) // 64 iterations
    while len(buf) >= REQUEST.size:
        (reply_len,) = REQUEST.unpack_from(buf)
        del buf[: REQUEST.size]
        conn.sendall(os.urandom(min(reply_len, size)))


def _read_slowly(conn: socket.socket, stop: EventType, deadline: float) -> None:
    """A little at a time with a pause after each read, until EOF: the receive buffer
    fills and the window closes."""
    with conn:
        for n in range(1, SLOW_MAX_READS + 1):
            if n % SLOW_STALL_EVERY == 0 and (stop.is_set() or time.monotonic() > deadline):
                return
            try:
                if not conn.recv(SLOW_READ):
                    return  # EOF: closing tells the client all was read
            except OSError:
                return
            time.sleep(SLOW_STALL_S if n % SLOW_STALL_EVERY == 0 else SLOW_PAUSE_S)


def _answer_udp(sock: socket.socket, cap: int = 1400) -> None:
    # drain what is queued now, bounded
    for _ in range(64):
        try:
            data, peer = sock.recvfrom(2048)
        except BlockingIOError:
            return
        reply_len = REQUEST.unpack_from(data)[0] if len(data) >= REQUEST.size else 32
        sock.sendto(os.urandom(min(reply_len, cap)), peer)


def _drain_udp(sock: socket.socket) -> None:
    for _ in range(64):  # what is queued now, bounded
        try:
            sock.recv(65536)
        except BlockingIOError:
            return


# --- clients ----------------------------------------------------------------------------------


def _connect(host: str, port: int, nodelay: bool = False) -> socket.socket:
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.settimeout(SOCKET_TIMEOUT_S)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((host, port))
    return sock


def _recv_exactly(sock: socket.socket, size: int) -> None:
    got = 0
    for _ in range(size):  # each recv returns at least one byte or raises
        if got >= size:
            return
        chunk = sock.recv(size - got)
        if not chunk:
            raise ConnectionError("server closed early")
        got += len(chunk)


def _round_trip(sock: socket.socket, rng: random.Random, max_reply: int) -> None:
    reply_len = rng.randint(1, max_reply)
    sock.sendall(REQUEST.pack(reply_len))
    _recv_exactly(sock, reply_len)


def client_short(host: str, count: int, seed: int, deadline: float) -> int:
    rng = random.Random(seed)
    done = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        with _connect(host, PORT_SHORT) as sock:
            _round_trip(sock, rng, 2000)
        done += 1
    return done


def _converse(host: str, port: int, round_trips: int, deadline: float,
              reply_size: Callable[[], int], pause_every: int = 0) -> int:
    """One long connection of request/reply round trips, each asking for
    ``reply_size()`` bytes; a 1 ms pause every *pause_every* of them (0: none)."""
    done = 0
    with _connect(host, port) as sock:
        for _ in range(round_trips):
            if done % 256 == 0 and time.monotonic() > deadline:
                break
            reply_len = reply_size()
            sock.sendall(REQUEST.pack(reply_len))
            _recv_exactly(sock, reply_len)
            done += 1
            if pause_every and done % pause_every == 0:
                time.sleep(0.001)
    return done


def client_pingpong(host: str, round_trips: int, seed: int, deadline: float) -> int:
    rng = random.Random(seed)
    return _converse(host, PORT_PINGPONG, round_trips, deadline, lambda: rng.randint(1, 600))


def client_bulk(
    host: str, transfers: int, size: int, deadline: float, port: int = PORT_BULK,
    write: int = BULK_WRITE, nodelay: bool = True, pause_s: float = 0.0,
) -> int:  # fmt: skip
    """*transfers* transfers of *size* bytes, *write* bytes per send (the short mix: 1448
    with TCP_NODELAY)."""
    chunk = os.urandom(write)
    done = 0
    for _ in range(transfers):
        if time.monotonic() > deadline:
            break
        with _connect(host, port, nodelay=nodelay) as sock:
            for offset in range(0, size, write):
                sock.sendall(chunk[: min(write, size - offset)])
                if pause_s:
                    time.sleep(pause_s)
            sock.shutdown(socket.SHUT_WR)
            _wait_eof(sock, deadline)
        done += 1
    return done


def _wait_eof(sock: socket.socket, deadline: float) -> None:
    """Until the server has read everything and closed (a slow reader may take several
    timeouts to drain what is queued), or the deadline passes."""
    for _ in range(1 + int(BUILD_BUDGET_S / SOCKET_TIMEOUT_S)):
        try:
            sock.recv(1)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def client_udp(
    host: str, exchanges: int, icmp_every: int, seed: int, deadline: float,
    port: int = PORT_UDP,
) -> int:  # fmt: skip
    rng = random.Random(seed)
    done = 0
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for i in range(exchanges):
            if i % 256 == 0 and time.monotonic() > deadline:
                break
            sock.sendto(REQUEST.pack(rng.randint(1, 512)), (host, port))
            try:
                sock.recvfrom(2048)
            except TimeoutError:
                continue  # lost on loopback (rare): carry on, the count check decides
            done += 1
            if icmp_every and i % icmp_every == 0:
                # nobody listens there: the kernel answers with ICMP port unreachable
                sock.sendto(b"anyone there?", (host, PORT_CLOSED))
    return done


def _reply_size(rng: random.Random) -> int:
    """Mostly small replies; some (``LARGE_REPLY_SHARE``) from 1500 B to 64 KiB,
    log-uniformly."""
    if rng.random() < LARGE_REPLY_SHARE:
        return min(MAX_REPLY, round(math.exp(rng.uniform(math.log(1500), math.log(MAX_REPLY)))))
    return rng.randint(16, 1500)


def client_requests(host: str, round_trips: int, seed: int, deadline: float) -> int:
    """One long connection: request/reply with replies of 16 B to 64 KiB, no TCP_NODELAY."""
    rng = random.Random(seed)
    return _converse(host, PORT_REQUESTS, round_trips, deadline, lambda: _reply_size(rng),
                     REQUEST_PAUSE_EVERY)


def client_udp_stream(host: str, datagrams: int, seed: int, deadline: float) -> int:
    """One-way datagrams of 100 B to 8 KiB (log-uniform), in short paced bursts."""
    rng = random.Random(seed)
    low, high = (math.log(size) for size in UDP_STREAM_SIZES)
    payload = os.urandom(UDP_STREAM_SIZES[1])
    done = 0
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT_S)
        for i in range(datagrams):
            if i % UDP_STREAM_BURST == 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(UDP_STREAM_PAUSE_S)
            sock.sendto(payload[: round(math.exp(rng.uniform(low, high)))], (host, PORT_UDP_STREAM))
            done += 1
    return done


# --- orchestration ----------------------------------------------------------------------------


Task: TypeAlias = tuple[str, Callable[..., int], tuple[object, ...]]


def short_tasks(plan: Plan, deadline: float) -> list[Task]:
    """The short mix's clients: (what they do, function, arguments)."""
    tasks: list[Task] = []
    for n, host in enumerate(HOSTS):
        tasks.append(("short", client_short, (host, plan.short_conns, n, deadline)))
        for k in range(plan.pingpong_conns):
            pingpong = (host, plan.pingpong_round_trips, 100 * n + k, deadline)
            tasks.append(("pingpong", client_pingpong, pingpong))
        tasks.append(("bulk", client_bulk, (host, plan.bulk_transfers, plan.bulk_bytes, deadline)))
        udp = (host, plan.udp_exchanges, plan.icmp_every, 7 + n, deadline)
        tasks.append(("udp", client_udp, udp))
    return tasks


def long_tasks(plan: LongPlan, deadline: float) -> list[Task]:
    """The long mix's clients on loopback (the lossy transfer is ``build``'s)."""
    tasks: list[Task] = []
    for n, host in enumerate(HOSTS):
        for _ in range(plan.slow_transfers):
            slow = (host, 1, plan.slow_bytes, deadline, PORT_SLOW_SINK, LARGE_WRITE // 4, False)
            tasks.append(("slow bulk", client_bulk, slow))
        fast = (
            host,
            plan.fast_transfers,
            plan.fast_bytes,
            deadline,
            PORT_FAST_SINK,
            LARGE_WRITE,
            False,
            plan.fast_pause_ms / 1000,
        )
        tasks.append(("fast bulk", client_bulk, fast))
        for k in range(plan.request_conns):
            requests = (host, plan.request_round_trips, 300 + 100 * n + k, deadline)
            tasks.append(("requests", client_requests, requests))
        for k in range(plan.udp_streams):
            stream = (host, plan.udp_stream_datagrams, 500 + 100 * n + k, deadline)
            tasks.append(("udp stream", client_udp_stream, stream))
        udp = (host, plan.udp_exchanges, 0, 17 + n, deadline, PORT_UDP_RR)
        tasks.append(("udp", client_udp, udp))
    return tasks


def drive_traffic(plan: AnyPlan, deadline: float, mix: str = "short") -> dict[str, int]:
    """Run *mix*'s servers and clients for both families; return what the clients
    completed."""
    spec = mix_named(mix)
    ctx = get_context("spawn")
    stop = ctx.Event()
    servers = []
    for host in HOSTS:
        ready = ctx.Event()
        args = (host, stop, ready, deadline + 10, spec.services, spec.nice)
        proc = ctx.Process(target=serve, args=args, daemon=True)
        proc.start()
        if not ready.wait(15):
            proc.terminate()
            raise RuntimeError(f"benchmark server on {host} did not start")
        servers.append(proc)

    tasks = spec.tasks(plan, deadline)
    done: dict[str, int] = {}
    try:
        workers = spec.workers or len(tasks)
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=os.nice, initargs=(spec.nice,)
        ) as pool:
            futures = [(kind, pool.submit(fn, *args)) for kind, fn, args in tasks]
            for kind, future in futures:
                left = max(1.0, deadline - time.monotonic() + 30)
                done[kind] = done.get(kind, 0) + future.result(timeout=left)
    finally:
        stop.set()
        for proc in servers:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return done


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    path: str
    packets: int
    bytes: int
    seconds: float
    generator_version: int
    plan: dict[str, int]
    completed: dict[str, int]
    tcpdump_stderr: list[str]
    mix: str = "short"  # added with the long mix; older metadata is the short mix's


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def build(path: Path, plan: AnyPlan, mix: str = "short") -> CaptureInfo:
    """Capture *plan*'s traffic into *path* (written via a temporary name)."""
    spec = mix_named(mix)
    mergecap = shutil.which("mergecap")
    if isinstance(plan, LongPlan) and plan.lossy_bytes and mergecap is None:
        raise SystemExit("the long mix needs mergecap (Debian: wireshark-common, with tshark)")
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # .pcap suffix: Debian's AppArmor profile for tcpdump allows writing such names
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".pcap", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            cap = TcpdumpCapture(partial, spec.bpf_filter, immediate=False, buffer_kib=64 * 1024)
            with cap, ThreadPoolExecutor(max_workers=1) as side:
                lossy = None
                if isinstance(plan, LongPlan) and plan.lossy_bytes:
                    lossy_file = Path(scratch) / "lossy.pcap"
                    lossy = side.submit(_lossy_transfer, lossy_file, plan.lossy_bytes)
                completed = drive_traffic(plan, started + spec.budget_s, mix)
                cap.stop(settle_timeout_s=15.0, quiet_s=1.5)  # until the file stops growing
                if lossy is not None:
                    completed.update(lossy.result(timeout=LOSSY_TIMEOUT_S))
                    assert mergecap is not None
                    merged = Path(scratch) / "merged.pcap"
                    subprocess.run([mergecap, "-F", "pcap", "-w", str(merged), str(partial),
                                    str(lossy_file)], check=True, capture_output=True,
                                   timeout=LOSSY_TIMEOUT_S)  # fmt: skip
                    merged.replace(partial)
        packets = count_pcap_records(partial)
        partial.chmod(0o644)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    info = CaptureInfo(
        str(path), packets, path.stat().st_size, round(time.monotonic() - started, 1),
        spec.version, asdict(plan), completed, cap.stderr_lines, mix,
    )  # fmt: skip
    meta_path(path).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


LOSSY_TIMEOUT_S: Final = 240.0  # lossy_capture bounds each of its own waits


def _lossy_transfer(out: Path, size: int) -> dict[str, int]:
    """tests/support/lossy.py's transfer of *size* bytes, captured into *out*."""
    from tests.support.lossy import lossy_capture  # namespaces and the relay: long mix only

    _how, dropped = lossy_capture(out, size)
    return {"lossy transfer dropped": dropped, "lossy transfer packets": count_pcap_records(out)}


def cached(path: Path, min_packets: int, mix: str = "short") -> CaptureInfo | None:
    """The cached capture's info if it is complete, this version's, and big enough."""
    try:
        meta = json.loads(meta_path(path).read_text())
        info = CaptureInfo(**meta)
    except (OSError, ValueError, TypeError):
        return None
    if not path.exists() or path.stat().st_size != info.bytes:
        return None
    spec = mix_named(mix)
    if info.mix != mix or info.generator_version != spec.version or info.packets < min_packets:
        return None
    return info


def ensure_capture(
    min_packets: int | None = None, force: bool = False, log: Callable[[str], None] = print,
    mix: str = "short",
) -> CaptureInfo:  # fmt: skip
    """Return *mix*'s cached benchmark capture, building it first if needed (bounded
    retries).  *min_packets* None: the mix's default."""
    spec = mix_named(mix)
    if min_packets is None:
        min_packets = spec.default_min_packets
    path = capture_path(mix)
    if not force:
        info = cached(path, min_packets, mix)
        if info is not None:
            return info
    plan = spec.plan.scaled(min_packets / spec.default_min_packets)  # a bit more than asked
    for attempt in range(1, 4):
        log(f"building {path} (attempt {attempt}): {spec.building}")
        info = build(path, plan, mix)
        log(f"captured {info.packets} packets, {info.bytes / 1e6:.1f} MB in {info.seconds} s")
        if info.packets >= min_packets:
            return info
        # too few (a slow machine hit the budget, or kernel drops): ask for more next time
        plan = plan.scaled(1.15 * min_packets / max(info.packets, 1))
    raise SystemExit(f"could not capture {min_packets} packets in 3 attempts")


@dataclass(frozen=True, slots=True)
class Mix:
    """A named traffic mix: what it holds, its file, its version and size, how to make it."""

    name: str
    description: str
    stem: str  # the file: STEM-vVERSION.pcap in cache_dir()
    version: int  # bump when the traffic changes: cached captures are remade
    default_min_packets: int
    plan: AnyPlan  # for default_min_packets; scaled for other sizes
    bpf_filter: str
    services: tuple[Service, ...]
    tasks: Callable[[Any, float], list[Task]]
    workers: int  # client processes at a time; 0: one per task
    nice: int  # added to the clients' and servers' niceness
    budget_s: float  # clients stop early past this; the count check then decides
    building: str  # for the log


MIXES: Final[Mapping[str, Mix]] = MappingProxyType(
    {
        "short": Mix(
            name="short",
            description="many short connections, ping-pong, Ethernet-sized bulk segments, UDP "
            "request/reply and ICMP port unreachable; about a million packets",
            stem="loopback",
            version=GENERATOR_VERSION,
            default_min_packets=DEFAULT_MIN_PACKETS,
            plan=Plan(),  # makes ~1.07 M
            bpf_filter=BPF_FILTER,
            services=SHORT_SERVICES,
            tasks=short_tasks,
            workers=max(4, (os.cpu_count() or 1) * 2),
            nice=0,
            budget_s=BUILD_BUDGET_S,
            building="real loopback traffic, under a minute",
        ),
        "long": Mix(
            name="long",
            description="fewer, longer connections: zero-window bulk, 64 KB segments, long "
            "request/reply, UDP streams, a lossy transfer from network namespaces; about "
            "280,000 packets of ~900 bytes",
            stem="longconn",
            version=1,
            default_min_packets=250_000,
            plan=LongPlan(),
            bpf_filter=LONG_BPF_FILTER,
            services=LONG_SERVICES,
            tasks=long_tasks,
            workers=0,
            nice=LONG_NICE,
            budget_s=90.0,
            building="real loopback traffic and a lossy transfer in network namespaces, under a "
            "minute",
        ),
    }
)


def mix_named(name: str) -> Mix:
    try:
        return MIXES[name]
    except KeyError:
        raise ValueError(f"no traffic mix {name!r}; there are {', '.join(MIXES)}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the cached benchmark capture.")
    parser.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="short",
        help="which traffic: "
        + "; ".join(f"{name}: {mix.description}" for name, mix in MIXES.items()),
    )
    parser.add_argument(
        "--min-packets",
        type=int,
        default=None,
        help="at least this many packets (default: the mix's, "
        + ", ".join(f"{n} {m.default_min_packets}" for n, m in MIXES.items())
        + ")",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    info = ensure_capture(args.min_packets, args.force, mix=args.mix)
    print(f"{info.path}: {info.packets} packets, {info.bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
