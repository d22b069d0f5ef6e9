"""Generate (once) the benchmark capture: real loopback traffic recorded by tcpdump.

    .venv/bin/python benchmarks/gen_capture.py [--min-packets N] [--force]

The capture is cached in ~/.cache/capdissect-bench/ (``$XDG_CACHE_HOME`` if set), never in
the repository, and rebuilt only when missing, too small or made by another version of
this script.  Needs root and tcpdump.

What is on the wire, over both 127.0.0.1 and ::1, on the dedicated ports 21000-21004 (below
Linux's ephemeral range, so no client port lands on them):

* many short TCP connections: connect, one request, one reply, client closes;
* long-lived TCP connections doing request/reply ping-pong with varying reply sizes;
* a few bulk transfers of several MB, written 1448 bytes at a time with TCP_NODELAY, so
  most data segments are Ethernet-sized (loopback's GSO would otherwise make 64 KB ones);
* UDP request/reply bursts, and now and then a datagram to a closed port, which the
  kernel answers with ICMP / ICMPv6 port unreachable.

Each family has one server process (a single-threaded selector loop) and several client
processes, so connections overlap as in real traffic.  Every loop is bounded by a count
and by a deadline, every socket has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root
from tests.support.livecap import TcpdumpCapture, count_pcap_records

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

REQUEST: Final = struct.Struct("!I60x")  # 64-byte request: the reply length it asks for
BULK_WRITE: Final = 1448  # one Ethernet-sized TCP payload per send
BULK_CHUNK: Final = 64 * 1024


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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capdissect-bench"


def capture_path() -> Path:
    return cache_dir() / f"loopback-v{GENERATOR_VERSION}.pcap"


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# --- server: one selector loop per address family ------------------------------------------


def _listen(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(family_of(host), kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(host: str, stop: EventType, ready: EventType, deadline: float) -> None:
    """Answer every client of *host* until *stop* is set or *deadline* passes."""
    sel = selectors.DefaultSelector()
    listeners = {
        port: _listen(host, port, socket.SOCK_STREAM)
        for port in (PORT_SHORT, PORT_PINGPONG, PORT_BULK)
    }
    udp = _listen(host, PORT_UDP, socket.SOCK_DGRAM)
    for port, sock in listeners.items():
        sel.register(sock, selectors.EVENT_READ, ("listen", port))
    sel.register(udp, selectors.EVENT_READ, ("udp", PORT_UDP))
    buffers: dict[socket.socket, bytearray] = {}
    ready.set()
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            for key, _events in sel.select(timeout=0.2):
                role, port = key.data
                ready_sock = key.fileobj
                if not isinstance(ready_sock, socket.socket):
                    continue
                if role == "listen":
                    _accept(sel, ready_sock, port, buffers)
                elif role == "udp":
                    _answer_udp(ready_sock)
                else:
                    _serve_stream(sel, ready_sock, port, buffers)
    finally:
        for sock in list(buffers):
            sel.unregister(sock)
            sock.close()
        for sock in (*listeners.values(), udp):
            sock.close()
        sel.close()


def _accept(
    sel: selectors.BaseSelector, listener: socket.socket, port: int,
    buffers: dict[socket.socket, bytearray],
) -> None:  # fmt: skip
    try:
        conn, _peer = listener.accept()
    except BlockingIOError:
        return
    conn.settimeout(SOCKET_TIMEOUT_S)  # sends are small; the timeout only bounds a stall
    buffers[conn] = bytearray()
    sel.register(conn, selectors.EVENT_READ, ("conn", port))


def _serve_stream(
    sel: selectors.BaseSelector, conn: socket.socket, port: int,
    buffers: dict[socket.socket, bytearray],
) -> None:  # fmt: skip
    try:
        data = conn.recv(BULK_CHUNK)
    except (BlockingIOError, TimeoutError):
        return
    except OSError:
        data = b""
    if not data:  # the client closed first: close too
        sel.unregister(conn)
        del buffers[conn]
        conn.close()
        return
    if port == PORT_BULK:
        return  # a sink
    buf = buffers[conn]
    buf += data
    # one reply per whole request; at most len(buf) // 64 iterations
    while len(buf) >= REQUEST.size:
        (reply_len,) = REQUEST.unpack_from(buf)
        del buf[: REQUEST.size]
        conn.sendall(os.urandom(min(reply_len, 16_384)))


def _answer_udp(sock: socket.socket) -> None:
    # drain what is queued now, bounded
    for _ in range(64):
        try:
            data, peer = sock.recvfrom(2048)
        except BlockingIOError:
            return
        reply_len = REQUEST.unpack_from(data)[0] if len(data) >= REQUEST.size else 32
        sock.sendto(os.urandom(min(reply_len, 1400)), peer)


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


def client_pingpong(host: str, round_trips: int, seed: int, deadline: float) -> int:
    rng = random.Random(seed)
    done = 0
    with _connect(host, PORT_PINGPONG) as sock:
        for _ in range(round_trips):
            if done % 256 == 0 and time.monotonic() > deadline:
                break
            _round_trip(sock, rng, 600)
            done += 1
    return done


def client_bulk(host: str, transfers: int, size: int, deadline: float) -> int:
    chunk = os.urandom(BULK_WRITE)
    done = 0
    for _ in range(transfers):
        if time.monotonic() > deadline:
            break
        with _connect(host, PORT_BULK, nodelay=True) as sock:
            for offset in range(0, size, BULK_WRITE):
                sock.sendall(chunk[: min(BULK_WRITE, size - offset)])
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # EOF once the server has read everything and closed
        done += 1
    return done


def client_udp(host: str, exchanges: int, icmp_every: int, seed: int, deadline: float) -> int:
    rng = random.Random(seed)
    done = 0
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for i in range(exchanges):
            if i % 256 == 0 and time.monotonic() > deadline:
                break
            sock.sendto(REQUEST.pack(rng.randint(1, 512)), (host, PORT_UDP))
            try:
                sock.recvfrom(2048)
            except TimeoutError:
                continue  # lost on loopback (rare): carry on, the count check decides
            done += 1
            if icmp_every and i % icmp_every == 0:
                # nobody listens there: the kernel answers with ICMP port unreachable
                sock.sendto(b"anyone there?", (host, PORT_CLOSED))
    return done


# --- orchestration ----------------------------------------------------------------------------


def drive_traffic(plan: Plan, deadline: float) -> dict[str, int]:
    """Run servers and clients for both families; return what the clients completed."""
    ctx = get_context("spawn")
    stop = ctx.Event()
    servers = []
    for host in HOSTS:
        ready = ctx.Event()
        proc = ctx.Process(target=serve, args=(host, stop, ready, deadline + 10), daemon=True)
        proc.start()
        if not ready.wait(15):
            proc.terminate()
            raise RuntimeError(f"benchmark server on {host} did not start")
        servers.append(proc)

    tasks: list[tuple[str, Callable[..., int], tuple[object, ...]]] = []
    for n, host in enumerate(HOSTS):
        tasks.append(("short", client_short, (host, plan.short_conns, n, deadline)))
        for k in range(plan.pingpong_conns):
            pingpong = (host, plan.pingpong_round_trips, 100 * n + k, deadline)
            tasks.append(("pingpong", client_pingpong, pingpong))
        tasks.append(("bulk", client_bulk, (host, plan.bulk_transfers, plan.bulk_bytes, deadline)))
        udp = (host, plan.udp_exchanges, plan.icmp_every, 7 + n, deadline)
        tasks.append(("udp", client_udp, udp))

    done: dict[str, int] = {}
    try:
        workers = max(4, (os.cpu_count() or 1) * 2)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
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


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def build(path: Path, plan: Plan) -> CaptureInfo:
    """Capture *plan*'s traffic into *path* (written via a temporary name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # .pcap suffix: Debian's AppArmor profile for tcpdump allows writing such names
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".pcap", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        cap = TcpdumpCapture(partial, BPF_FILTER, immediate=False, buffer_kib=64 * 1024)
        with cap:
            completed = drive_traffic(plan, started + BUILD_BUDGET_S)
            cap.stop(settle_timeout_s=15.0, quiet_s=1.5)  # until the file stops growing
        packets = count_pcap_records(partial)
        partial.chmod(0o644)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    info = CaptureInfo(
        str(path), packets, path.stat().st_size, round(time.monotonic() - started, 1),
        GENERATOR_VERSION, asdict(plan), completed, cap.stderr_lines,
    )  # fmt: skip
    meta_path(path).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def cached(path: Path, min_packets: int) -> CaptureInfo | None:
    """The cached capture's info if it is complete, this version's, and big enough."""
    try:
        meta = json.loads(meta_path(path).read_text())
        info = CaptureInfo(**meta)
    except (OSError, ValueError, TypeError):
        return None
    if not path.exists() or path.stat().st_size != info.bytes:
        return None
    if info.generator_version != GENERATOR_VERSION or info.packets < min_packets:
        return None
    return info


def ensure_capture(
    min_packets: int = DEFAULT_MIN_PACKETS, force: bool = False, log: Callable[[str], None] = print
) -> CaptureInfo:
    """Return the cached benchmark capture, building it first if needed (bounded retries)."""
    path = capture_path()
    if not force:
        info = cached(path, min_packets)
        if info is not None:
            return info
    plan = Plan().scaled(min_packets / DEFAULT_MIN_PACKETS)  # the default plan makes ~1.07 M
    for attempt in range(1, 4):
        log(f"building {path} (attempt {attempt}): real loopback traffic, under a minute")
        info = build(path, plan)
        log(f"captured {info.packets} packets, {info.bytes / 1e6:.1f} MB in {info.seconds} s")
        if info.packets >= min_packets:
            return info
        # too few (a slow machine hit the budget, or kernel drops): ask for more next time
        plan = plan.scaled(1.15 * min_packets / max(info.packets, 1))
    raise SystemExit(f"could not capture {min_packets} packets in 3 attempts")


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the cached benchmark capture.")
    parser.add_argument("--min-packets", type=int, default=DEFAULT_MIN_PACKETS)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    info = ensure_capture(args.min_packets, args.force)
    print(f"{info.path}: {info.packets} packets, {info.bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
