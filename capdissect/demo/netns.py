"""A throwaway network namespace whose firewall drops the first FIN (or SYN) of each sender,
so that both sides' retransmissions cross: the only way to show a simultaneous close or
a simultaneous open on loopback.

Why a drop and not a delay: on loopback a segment is processed by the receiver the
moment it is sent, so two FINs sent from user space never cross.  nftables cannot hold
a packet back (netem could, but many kernels, this project's CI among them, ship
without it), so the namespace drops each side's first FIN at input.  Both sockets
then retransmit it from their retransmission timers.  When the two FINs were sent in the
same jiffy from the same CPU, both timers expire in the same timer-softirq run, and both
retransmissions are on the wire before the receive softirq processes either: they
cross, and each side goes FIN_WAIT_1 -> CLOSING -> TIME_WAIT.  The scenario pins itself
to one CPU and sends both FINs back to back, just after a clock tick, for that reason,
and checks the capture (each FIN's ack must not cover the other's) because timing can
still lose the race.

The namespace is named ``capd-<pid>-<random>`` and is always deleted on the way out,
error or not; deleting it also deletes its nftables table.  Nothing here touches the
main namespace's interfaces or firewall.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Literal

from capdissect.errors import CaptureError, DemoUnavailable

PREFIX: Final = "capd-"
_TOOL_TIMEOUT_S: Final = 10.0
_SBIN: Final = "/usr/sbin:/sbin"

Drop = Literal["fin", "syn"]

# Which segments the rule holds back: any segment carrying FIN, or a bare SYN (a SYN-ACK
# must pass, it is what answers the crossed SYNs).
_MATCH: Final[dict[str, str]] = {
    "fin": "tcp flags & fin == fin",
    "syn": "tcp flags & (syn | ack) == syn",
}

_RULESET: Final = """\
table inet capdissect {{
    # Sender ports whose first {what} was dropped already; later ones pass.
    set dropped {{
        type inet_service
        flags dynamic
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        {match} tcp sport @dropped accept
        {match} add @dropped {{ tcp sport }} counter drop
    }}
}}
"""


def ruleset(drop: Drop) -> str:
    """The nftables rules (``nft -f`` syntax) that drop the first *drop* of each sender."""
    return _RULESET.format(what=drop.upper(), match=_MATCH[drop])


def tool(name: str) -> str | None:
    """Path of an iproute2/nftables tool; they live in sbin, which a PATH may lack."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def namespace_problem() -> str | None:
    """Why this process cannot make a namespace with a firewall rule, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add, nft)"
    if tool("ip") is None:
        return "iproute2 is not installed (apt-get install iproute2)"
    if tool("nft") is None:
        return "nftables is not installed (apt-get install nftables)"
    return None


def list_namespaces() -> list[str]:
    """Names ``ip netns list`` shows (each line is a name, maybe followed by an id)."""
    ip = tool("ip")
    if ip is None:
        return []
    done = subprocess.run([ip, "netns", "list"], capture_output=True, text=True,
                          timeout=_TOOL_TIMEOUT_S, check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


class Namespace:
    """``with Namespace("fin") as ns: subprocess.run(ns.command([...]))``.

    Entering creates the namespace, brings its ``lo`` up (127.0.0.1 and ::1) and loads
    the drop rule; leaving deletes it, whatever happened inside.
    """

    def __init__(self, drop: Drop | None) -> None:
        self.drop = drop
        self.name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self._created = False

    def command(self, argv: Sequence[str]) -> list[str]:
        """*argv* run inside the namespace."""
        return [tool("ip") or "ip", "netns", "exec", self.name, *argv]

    def __enter__(self) -> Namespace:
        problem = namespace_problem()
        if problem is not None:
            raise DemoUnavailable(problem)
        ip = tool("ip") or "ip"
        self._run([ip, "netns", "add", self.name], unavailable=True)
        self._created = True
        try:
            self._run([ip, "-n", self.name, "link", "set", "lo", "up"])
            if self.drop is not None:
                self._run(self.command([tool("nft") or "nft", "-f", "-"]),
                          stdin=ruleset(self.drop), unavailable=True)
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.delete()

    def delete(self) -> None:
        """Delete the namespace (and so its nftables table); idempotent."""
        if not self._created:
            return
        done = subprocess.run([tool("ip") or "ip", "netns", "delete", self.name],
                              capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S,
                              check=False)
        if done.returncode != 0 and self.name in list_namespaces():
            raise DemoUnavailable(f"ip netns delete {self.name}: {done.stderr.strip()}")
        self._created = False

    def _run(self, argv: list[str], stdin: str | None = None, unavailable: bool = False) -> None:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=_TOOL_TIMEOUT_S, check=False)
        if done.returncode != 0:
            # A kernel or container without netns/nf_tables support is "cannot run here",
            # not a bug in the scenario.
            message = f"{' '.join(argv[:4])}: {done.stderr.strip() or done.returncode}"
            raise (DemoUnavailable if unavailable else CaptureError)(message)
