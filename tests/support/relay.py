"""A path between two network namespaces through a third, and a userspace relay there that
drops, delays and reorders TCP segments: the impairment for kernels without ``tc netem``.

    client namespace          middle namespace            server namespace
    [dev_a] <--veth--> [relay0]   relay   [relay1] <--veth--> [dev_b]

The middle namespace has no addresses and no IP forwarding, so only the relay moves
frames across it: two AF_PACKET sockets, one bound to each of its interfaces, copy every
frame to the other side.  IPv4 TCP frames are impaired, each direction on its own and
seeded: dropped with probability *loss*, delayed by *delay* ± *jitter* (first in, first
out), and with probability *reorder* held back at its release until the next segment of
its direction has passed it (at most ``HOLD_S``).  Everything else (ARP, IPv6 neighbour
discovery) passes at once.  The queue holds at most ``QUEUE_LIMIT`` frames.

The client's and server's interfaces have GSO off (one segment per frame, as on a wire:
``gso_max_segs 1``, ethtool is not needed).  veth still hands over TCP checksums left to
the hardware, so the sockets use ``PACKET_VNET_HDR``: each frame is read and written with
the kernel's virtio-net header, which carries the pending checksum (and a GSO frame, if one
came) across unchanged.

``python tests/support/relay.py LEFT RIGHT --loss 2 ...`` runs the relay (in the middle
namespace); it prints ``ready`` once bound, and on SIGTERM or after ``--limit`` seconds
its counters as one JSON line.  ``RelayedPath`` builds the namespaces, starts and stops
the relay by its PID, and deletes every namespace it made on the way out.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

SOL_PACKET: Final = 263
PACKET_STATISTICS: Final = 6
PACKET_VNET_HDR: Final = 15
PACKET_IGNORE_OUTGOING: Final = 23
ETH_P_ALL: Final = 0x0003
VNET_HDR: Final = 10  # struct virtio_net_hdr
HOLD_S: Final = 0.05  # a reordered segment waits at most this long for one to pass it
QUEUE_LIMIT: Final = 20_000
_TIMEOUT_S: Final = 15.0
MIDDLE_DEVS: Final = ("relay0", "relay1")  # toward the client's namespace, the server's


@dataclass(frozen=True)
class Impairment:
    """Per direction: percent dropped, delay and jitter in ms, percent reordered."""

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    seed: int = 1

    @classmethod
    def from_netem(cls, netem: str, seed: int = 1) -> Impairment:
        """The relay's version of tc netem arguments ("delay 10ms 3ms loss 2% reorder 5%")."""
        delay = re.search(r"delay (\d+(?:\.\d+)?)ms(?: (\d+(?:\.\d+)?)ms)?", netem)
        loss = re.search(r"loss (\d+(?:\.\d+)?)%", netem)
        reorder = re.search(r"reorder (\d+(?:\.\d+)?)%", netem)
        return cls(loss=float(loss[1]) if loss else 0.0,
                   delay_ms=float(delay[1]) if delay else 0.0,
                   jitter_ms=float(delay[2] or 0) if delay else 0.0,
                   reorder=float(reorder[1]) if reorder else 0.0, seed=seed)

    def argv(self) -> list[str]:
        return ["--loss", str(self.loss), "--delay", str(self.delay_ms), "--jitter",
                str(self.jitter_ms), "--reorder", str(self.reorder), "--seed", str(self.seed)]


# ----- the relay (runs in the middle namespace) ------------------------------------------
def _packet_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing until bound
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # not the frames we send
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def _is_tcp(frame: bytes) -> bool:
    """An IPv4 TCP frame (after the virtio-net header)."""
    return len(frame) > VNET_HDR + 34 and frame[VNET_HDR + 12:VNET_HDR + 14] == b"\x08\x00" \
        and frame[VNET_HDR + 23] == 6


def relay(left: str, right: str, imp: Impairment, limit_s: float) -> Counter[str]:
    """Move frames between *left* and *right* until SIGTERM or *limit_s* seconds."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    socks = [_packet_socket(left), _packet_socket(right)]
    print("ready", flush=True)
    rng = random.Random(imp.seed)
    counts: Counter[str] = Counter()
    queue: list[tuple[float, int, int, bytes]] = []  # (release, order, out side, frame)
    last = [0.0, 0.0]  # each direction's latest release: first in, first out
    held: list[tuple[float, bytes] | None] = [None, None]  # per out side
    order = 0
    end = time.monotonic() + limit_s

    def send(out: int, frame: bytes) -> None:
        try:
            socks[out].send(frame)
        except OSError as err:
            counts[f"send error {err.strerror}"] += 1

    while not stopping and time.monotonic() < end:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            if held[out] is None and rng.random() * 100 < imp.reorder:
                held[out] = (now + HOLD_S, frame)
                continue
            send(out, frame)
            counts["forwarded"] += 1
            waiting = held[out]
            if waiting is not None:  # the held segment goes right after the one that passed it
                send(out, waiting[1])
                counts["forwarded"] += 1
                counts["reordered"] += 1
                held[out] = None
        for out, waiting in enumerate(held):
            if waiting is not None and waiting[0] <= now:  # nothing came to pass it
                send(out, waiting[1])
                counts["forwarded"] += 1
                counts["held, none passed"] += 1
                held[out] = None
        wake = [0.05, *(queue[0][0] - now for _ in queue[:1]), *(w[0] - now for w in held if w)]
        readable, _, _ = select.select(socks, [], [], max(0.0, min(wake)))
        for sock in readable:
            out = 1 - socks.index(sock)
            for _ in range(256):  # a bounded batch, then the queue's turn again
                try:
                    frame = sock.recv(VNET_HDR + 65536)
                except BlockingIOError:
                    break
                if frame[1]:  # virtio-net gso_type: a GSO frame came despite gso_max_segs
                    counts["gso frames"] += 1
                if not _is_tcp(frame):
                    send(out, frame)
                    counts["other frames"] += 1
                elif rng.random() * 100 < imp.loss:
                    counts["dropped"] += 1
                elif len(queue) >= QUEUE_LIMIT:
                    counts["dropped, queue full"] += 1
                else:
                    jitter = rng.uniform(-imp.jitter_ms, imp.jitter_ms)
                    release = max(now + max(0.0, imp.delay_ms + jitter) / 1000, last[out])
                    last[out] = release
                    order += 1
                    heapq.heappush(queue, (release, order, out, frame))
    counts["left in queue"] = len(queue) + sum(w is not None for w in held)
    for sock in socks:  # struct tpacket_stats: packets, drops (receive buffer full)
        counts["socket drops"] += struct.unpack("II", sock.getsockopt(
            SOL_PACKET, PACKET_STATISTICS, 8))[1]
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left")
    parser.add_argument("right")
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--reorder", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds at most")
    opts = parser.parse_args()
    imp = Impairment(opts.loss, opts.delay, opts.jitter, opts.reorder, opts.seed)
    print(json.dumps(relay(opts.left, opts.right, imp, opts.limit)), flush=True)
    return 0


# ----- the three namespaces ----------------------------------------------------------------
def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")


def netem_available(namespace: str) -> bool:
    """Whether the kernel has tc netem (tried on *namespace*'s loopback, then removed)."""
    add = ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "lo", "root",
           "netem", "delay", "1ms"]
    if subprocess.run(add, capture_output=True, timeout=_TIMEOUT_S, check=False).returncode:
        return False
    subprocess.run([*add[:5], "del", *add[6:10]], capture_output=True, timeout=_TIMEOUT_S,
                   check=False)
    return True


class RelayedPath:
    """``with RelayedPath((a, m, b), (dev_a, dev_b), (addr_a, addr_b)) as path:``
    namespaces *a* and *b* joined through *m*, with /24 addresses on *dev_a* and *dev_b*;
    ``path.start(impairment)`` runs the relay, ``path.stop()`` returns its counters."""

    def __init__(self, names: tuple[str, str, str], devs: tuple[str, str],
                 addrs: tuple[str, str]) -> None:
        self.names, self.devs, self.addrs = names, devs, addrs
        self.middle = names[1]
        self._made: list[str] = []
        self._relay: subprocess.Popen[str] | None = None
        self._netem: bool | None = None

    def __enter__(self) -> RelayedPath:
        try:
            self._build()
        except BaseException:
            self._delete()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._relay is not None:
                self.stop()
        finally:
            self._delete()

    def _build(self) -> None:
        a, m, b = self.names
        for ns in self.names:
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", a, "link", "add", self.devs[0], "type", "veth", "peer", "name", MIDDLE_DEVS[0],
            "netns", m)
        _ip("-n", b, "link", "add", self.devs[1], "type", "veth", "peer", "name", MIDDLE_DEVS[1],
            "netns", m)
        # The middle moves nothing by itself: no addresses, no forwarding, no IPv6.
        for key in ("net.ipv4.ip_forward=0", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1"):
            subprocess.run(["ip", "netns", "exec", m, "sysctl", "-qw", key],
                           capture_output=True, timeout=_TIMEOUT_S, check=False)
        for ns, dev, addr in zip((a, b), self.devs, self.addrs, strict=True):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            # One segment per frame, as on a wire (ethtool may be missing).
            _ip("-n", ns, "link", "set", dev, "gso_max_segs", "1", "gso_max_size", "1500")
            _ip("-n", ns, "link", "set", dev, "up")
        for dev in MIDDLE_DEVS:
            _ip("-n", m, "link", "set", dev, "up")

    def has_netem(self) -> bool:
        """Whether the kernel has tc netem (probed once, in the first namespace)."""
        if self._netem is None:
            self._netem = netem_available(self.names[0])
        return self._netem

    def impair(self, netem: str, seed: int, limit_s: float = 120.0) -> None:
        """Impair both directions as ``tc qdisc ... netem NETEM`` does: netem itself on
        both ends' interfaces where the kernel has it (the relay then only moves frames),
        else the relay, seeded with *seed*."""
        if not self.has_netem():
            self.start(Impairment.from_netem(netem, seed), limit_s)
            return
        a, _, b = self.names
        for ns, dev in ((a, self.devs[0]), (b, self.devs[1])):
            tc = ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root",
                  "netem", *netem.split(), "limit", "10000"]
            done = subprocess.run(tc, capture_output=True, text=True, timeout=_TIMEOUT_S,
                                  check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(tc[4:])}: {done.stderr.strip()}")
        self.start(Impairment(), limit_s)

    def start(self, imp: Impairment, limit_s: float = 120.0) -> None:
        """Run the relay in the middle namespace; back once its sockets are bound."""
        assert self._relay is None, "the relay is running"
        self._relay = subprocess.Popen(
            ["ip", "netns", "exec", self.middle, sys.executable, str(Path(__file__)),
             *MIDDLE_DEVS, *imp.argv(), "--limit", str(limit_s)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._relay.stdout is not None
        ready, _, _ = select.select([self._relay.stdout], [], [], _TIMEOUT_S)
        line = self._relay.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the relay did not start: {line!r}")

    def stop(self) -> dict[str, int]:
        """Stop the relay (SIGTERM to its PID, then SIGKILL); its counters."""
        proc, self._relay = self._relay, None
        assert proc is not None, "no relay is running"
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=_TIMEOUT_S)
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the relay failed ({proc.returncode}): {err.strip()}")
        counts: dict[str, int] = json.loads(lines[-1])
        return counts

    def _delete(self) -> None:
        while self._made:
            subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True,
                           timeout=_TIMEOUT_S, check=False)


if __name__ == "__main__":
    sys.exit(main())
