"""The kernel's own socket table at each step of a scenario: ``ss -tanu``, the second oracle.

A scenario knows the truth its capture can only suggest: the kernel has the sockets.
``SsRecorder`` is the ``Steps`` onlooker (steps.py) that runs ``ss -tanu`` at each of
the lesson's steps, the way the lessons run netstat between steps, in whatever network
namespace the calling process is in, filtered to the scenario's ports (and the sockets
it watches).  Each snapshot keeps the wall-clock time before and after ss ran, so that
``oracle.py`` can line it up with the capture's packet timestamps (both are
CLOCK_REALTIME: tcpdump stamps a loopback packet when it is sent).

The rows are kept as ss printed them and also normalised to netstat's spelling, the one
``capdissect sockets`` prints: states (``ESTAB`` -> ``ESTABLISHED``, ``FIN-WAIT-1`` ->
``FIN_WAIT1``, ``UNCONN`` -> an empty UDP state) and addresses (``[::1]:30002`` ->
``::1:30002``, ``[::]:*`` -> ``:::*``).  Nothing else is changed.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from capdissect.demo.netns import tool
from capdissect.errors import ScenarioError

SS_TIMEOUT_S: Final = 5.0
MAX_STEPS: Final = 32  # a scenario takes half a dozen; more is a bug in its drive

# ss (iproute2 misc/ss.c sstate_name) -> netstat (net-tools netstat.c tcp_state).  ss
# calls every closed socket UNCONN; netstat prints TCP's as CLOSE and UDP's as nothing.
SS_TO_NETSTAT: Final[Mapping[str, str]] = MappingProxyType({
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
})


class Row(NamedTuple):
    """One socket as netstat spells it: the columns both oracles can fill (no queues)."""

    proto: str  # tcp, tcp6, udp, udp6
    local: str  # 127.0.0.1:30002, ::1:30002
    foreign: str  # 127.0.0.1:48496, 0.0.0.0:*, :::*
    state: str  # LISTEN, ESTABLISHED, FIN_WAIT1, ..., "" (an unconnected UDP socket)

    def __str__(self) -> str:
        return f"{self.proto} {self.local} {self.foreign} {self.state or '(no state)'}"


class KernelSocket(NamedTuple):
    row: Row
    recv_q: int
    send_q: int
    line: str  # as ss printed it


@dataclass(frozen=True, slots=True)
class Snapshot:
    """``ss -tanu`` at one step of a scenario."""

    step: str
    started: float  # Unix time just before ss ran
    finished: float  # Unix time after it answered: the kernel was read in between
    command: tuple[str, ...]
    text: tuple[str, ...]  # what ss printed, header first
    sockets: tuple[KernelSocket, ...]

    def rows(self) -> list[Row]:
        return [s.row for s in self.sockets]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "started": self.started, "finished": self.finished,
                "command": list(self.command), "text": list(self.text)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Snapshot:
        text = tuple(str(line) for line in obj["text"])
        return cls(str(obj["step"]), float(obj["started"]), float(obj["finished"]),
                   tuple(str(a) for a in obj["command"]), text, parse_ss(text))


def _address(text: str) -> tuple[str, bool]:
    """ss's ``ADDR:PORT`` in netstat's spelling, and whether it is IPv6."""
    host, _, port = text.rpartition(":")
    host = host.split("%", 1)[0]  # "127.0.0.1%lo": bound to a device
    v6 = host.startswith("[")
    host = host.strip("[]")
    if host == "*":  # ss's wildcard of a dual-stack IPv6 socket (IPv4's is 0.0.0.0)
        return f":::{port}", True
    if v6 and host == "::":
        return f":::{port}", True
    return f"{host}:{port}", v6 or ":" in host


def parse_row(line: str) -> KernelSocket:
    """One line of ``ss -tanu`` output (Netid State Recv-Q Send-Q Local Peer)."""
    fields = line.split()
    if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
        raise ValueError(f"not an ss -tanu socket line: {line!r}")
    netid, state, recv_q, send_q, local_text, peer_text = fields[:6]
    local, v6 = _address(local_text)
    foreign, _ = _address(peer_text)
    if state == "UNCONN":
        netstat_state = "" if netid == "udp" else "CLOSE"
    elif state in SS_TO_NETSTAT:
        netstat_state = SS_TO_NETSTAT[state]
    else:
        raise ValueError(f"unknown ss state {state!r} in {line!r}")
    proto = netid + ("6" if v6 else "")
    return KernelSocket(Row(proto, local, foreign, netstat_state), int(recv_q), int(send_q),
                        line.rstrip())


def parse_ss(text: Sequence[str]) -> tuple[KernelSocket, ...]:
    """The sockets of ``ss -tanu`` output (*text* as printed, header first)."""
    return tuple(parse_row(line) for line in text[1:] if line.strip())


def ss_filter(ports: Iterable[int]) -> str:
    """ss's filter language: a socket with any of *ports* at either end."""
    terms = " or ".join(f"sport = :{p} or dport = :{p}" for p in sorted(set(ports)))
    return f"( {terms} )"


def ss_problem() -> str | None:
    return None if tool("ss") is not None else "ss is not installed (apt-get install iproute2)"


class SsRecorder:
    """The ``Steps`` onlooker that runs ``ss -tanu`` at each step (thread-safe).

    ``snapshots`` holds them in step order.  Without ss the steps record nothing and
    ``problem`` says why: the scenario still runs, the demo says the kernel was not asked.
    """

    def __init__(self, ports: Iterable[int]) -> None:
        self._ports = set(ports)
        self._lock = threading.Lock()
        self.snapshots: list[Snapshot] = []
        self.problem = ss_problem()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._ports.add(int(sock.getsockname()[1]))

    def step(self, label: str) -> None:
        if self.problem is not None:
            return
        with self._lock:
            if len(self.snapshots) >= MAX_STEPS:
                raise ScenarioError(label, f"more than {MAX_STEPS} steps")
            self.snapshots.append(take_snapshot(label, self._ports))


def take_snapshot(label: str, ports: Iterable[int]) -> Snapshot:
    command = (tool("ss") or "ss", "-tanu", ss_filter(ports))
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=SS_TIMEOUT_S,
                          check=False)
    finished = time.time()
    if done.returncode != 0:
        raise ScenarioError(label, f"ss: {done.stderr.strip() or done.returncode}")
    text = tuple(line.rstrip() for line in done.stdout.splitlines() if line.strip())
    try:
        sockets = parse_ss(text)
    except ValueError as exc:
        raise ScenarioError(label, str(exc)) from None
    return Snapshot(label, started, finished, command, text, sockets)
