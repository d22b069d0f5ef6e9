"""The kernel as a second oracle: each ``ss`` snapshot of a scenario beside capdissect's
``sockets --at`` the same moment, and every difference either explained or reported.

Lining up.  A snapshot was read by the kernel at some instant between ``started`` and
``finished`` (kernel.py).  capdissect's table is taken ``--at`` the snapshot's start,
to the microsecond a pcap timestamp has (the demo prints that value, so a learner can
type ``capdissect sockets FILE --at VALUE`` and get the same table).  The scenarios step
only where their sockets are quiet, but a helper thread may still be sending: when
packets fall inside the snapshot's window, the table after each of them is a candidate
too, and the first candidate that the kernel's table matches is the one shown.

What is compared.  Proto, local address, foreign address and state, as netstat spells
them (kernel.py normalises ss's spelling), as a multiset: row order is the kernel's hash
order in netstat and ss, which no capture can know.  Recv-Q and Send-Q are not compared:
they count bytes inside the two kernels (not yet read by the application, not yet
acknowledged) that a capture does not show.

The documented exceptions (``EXCEPTIONS``, also in the README's demo section) are the
sockets the wire cannot reveal.  Each applies only when the capture up to that moment
lacks the very packet that would reveal the socket; everything else is a difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from capdissect.addresses import netstat_address
from capdissect.commands import reports as analyze
from capdissect.demo.kernel import KernelSocket, Row, Snapshot
from capdissect.demo.scenarios import Wire, read_wire
from capdissect.demo.steps import BASELINE_STEP
from capdissect.dissect.tcp import ACK, SYN
from capdissect.report.tables.sockets import TableAt

EXCEPTIONS: Final[Mapping[str, str]] = MappingProxyType({
    "older": "there before the scenario's first step (e.g. a TIME_WAIT left by an earlier "
             "run): the capture cannot show a socket older than itself",
    "listener-before-syn": "a listening socket that no SYN has reached yet: bind() and "
                           "listen() send nothing",
    "udp-silent": "a UDP socket that has sent nothing yet: bind() and connect() send "
                  "nothing",
    "wildcard-bind": "a socket bound to the wildcard address (0.0.0.0, ::), e.g. by "
                     "sendto() on an unbound socket: a packet carries the address it left "
                     "from, never the address the socket is bound to",
    "udp-connect-unseen": "a connect()ed UDP socket that has refused no other peer yet: "
                          "on the wire, connect() then send() looks like sendto()",
    "closed-silently": "a listening or unconnected UDP socket closed since an earlier "
                       "step: its close() sends nothing, so the wire still shows it",
})


@dataclass(frozen=True, slots=True)
class Difference:
    """A row only one side has, and the exception that explains it (None: unexplained)."""

    side: str  # "kernel" or "capdissect": the side that has the row
    row: Row
    exception: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """One step: the kernel's table, capdissect's at the same moment, their differences."""

    snapshot: Snapshot
    at: str  # the ``sockets --at`` value giving capdissect's table
    table: TableAt
    differences: tuple[Difference, ...]
    in_window: int  # packets captured while ss was running

    @property
    def kernel(self) -> list[Row]:
        return self.snapshot.rows()

    @property
    def wire(self) -> list[Row]:
        return table_rows(self.table)

    @property
    def unexplained(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.exception is None)


def wildcard(proto: str) -> str:
    """netstat's foreign address of a listener or unconnected socket."""
    return ":::*" if proto.endswith("6") else "0.0.0.0:*"


def table_rows(table: TableAt) -> list[Row]:
    """capdissect's table as rows."""
    return [Row(sock.proto, netstat_address(sock.local),
                netstat_address(sock.foreign) if sock.foreign is not None
                else wildcard(sock.proto), state)
            for sock, state in table.rows]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the capture showed up to a moment: the packets that reveal sockets."""

    syn_to: frozenset[str]  # destinations of a bare SYN
    udp_from: frozenset[str]  # senders of a datagram
    refused: frozenset[tuple[str, str]]  # (socket, peer) pairs an ICMP error answered

    @classmethod
    def until(cls, wire: Sequence[Wire], at: float) -> Evidence:
        shown = [w for w in wire if w.ts <= at]
        return cls(
            frozenset(netstat_address(w.dst) for w in shown
                      if w.proto == "tcp" and w.flags & (SYN | ACK) == SYN),
            frozenset(netstat_address(w.src) for w in shown if w.proto == "udp"),
            frozenset((netstat_address(w.quoted[1]), netstat_address(w.quoted[0]))
                      for w in shown if w.proto == "unreachable" and w.quoted is not None))


def _is_wildcard(local: str) -> bool:
    return local.rpartition(":")[0] in ("0.0.0.0", "::")


def _same_socket(kernel_local: str, seen: str) -> bool:
    """*seen* (an address on the wire) is the kernel's *kernel_local*, which may be bound
    to the wildcard address of its family."""
    if kernel_local == seen:
        return True
    host, _, port = kernel_local.rpartition(":")
    seen_host, _, seen_port = seen.rpartition(":")
    return (port == seen_port and _is_wildcard(kernel_local)
            and (":" in host) == (":" in seen_host))


def differences(kernel: Sequence[Row], wire: Sequence[Row], evidence: Evidence,
                baseline: frozenset[Row], earlier: frozenset[Row]) -> tuple[Difference, ...]:
    """The rows only one side has, each with the exception that explains it, if any.

    *baseline*: the kernel's rows before the scenario's first socket; *earlier*: every
    row the kernel showed at an earlier step.  An exception that concerns one socket
    shown differently by the two sides (wildcard-bind, udp-connect-unseen) pairs the
    kernel's row with capdissect's, and explains both.
    """
    kernel_only = list((Counter(kernel) - Counter(wire)).elements())
    wire_only = list((Counter(wire) - Counter(kernel)).elements())
    out: list[Difference] = []

    partner: list[Difference] = []  # capdissect's row of the socket, when paired

    def pair(row: Row, wanted: Row, why: str) -> str | None:
        if wanted in wire_only:
            wire_only.remove(wanted)
            partner.append(Difference("capdissect", wanted, why))
            return why
        return None

    for row in kernel_only:
        why: str | None = None
        partner.clear()
        udp = row.proto.startswith("udp")
        if row in baseline:
            why = "older"
        elif row.state == "LISTEN" and not any(_same_socket(row.local, seen)
                                               for seen in evidence.syn_to):
            why = "listener-before-syn"
        elif udp and not any(_same_socket(row.local, seen) for seen in evidence.udp_from):
            why = "udp-silent"
        elif _is_wildcard(row.local):
            why = next((pair(row, w, "wildcard-bind") for w in list(wire_only)
                        if w.proto == row.proto and w.foreign == row.foreign
                        and w.state == row.state and _same_socket(row.local, w.local)), None)
        elif (udp and row.state == "ESTABLISHED"
              and not any(sock == row.local and peer != row.foreign
                          for sock, peer in evidence.refused)):
            why = pair(row, Row(row.proto, row.local, wildcard(row.proto), ""),
                       "udp-connect-unseen")
        out.append(Difference("kernel", row, why))
        out.extend(partner)
    for row in wire_only:
        closed = row.state == "LISTEN" or (row.proto.startswith("udp") and row.state == "")
        out.append(Difference("capdissect", row,
                              "closed-silently" if closed and row in earlier else None))
    return tuple(out)


def candidate_times(snapshot: Snapshot, wire: Sequence[Wire]) -> list[float]:
    """Where capdissect's table may be read for *snapshot*: its start (to the pcap's
    microsecond), then after each packet captured while ss ran."""
    at = float(f"{snapshot.started:.6f}")
    return [at, *sorted({w.ts for w in wire if at < w.ts <= snapshot.finished})]


def compare(snapshots: Sequence[Snapshot], wire: Sequence[Wire],
            tables: Sequence[Sequence[TableAt]]) -> list[Comparison]:
    """Each snapshot against capdissect's tables at its ``candidate_times`` (*tables*,
    one list per snapshot, same order)."""
    baseline = frozenset(snapshots[0].rows()) if (
        snapshots and snapshots[0].step == BASELINE_STEP) else frozenset()
    earlier: set[Row] = set()
    out: list[Comparison] = []
    for snapshot, candidates in zip(snapshots, tables, strict=True):
        tried: list[Comparison] = []
        for table in candidates:
            found = differences(snapshot.rows(), table_rows(table),
                                Evidence.until(wire, table.at), baseline, frozenset(earlier))
            tried.append(Comparison(snapshot, f"{table.at:.6f}", table, found,
                                    len(candidates) - 1))
            if not tried[-1].unexplained:
                break
        best = tried[-1] if not tried[-1].unexplained else tried[0]
        out.append(best)
        earlier.update(snapshot.rows())
    return out


def compare_capture(path: Path, snapshots: Sequence[Snapshot]) -> list[Comparison]:
    """Read the capture at *path* and compare each snapshot with capdissect's table."""
    wire = read_wire(path)
    times = [candidate_times(s, wire) for s in snapshots]
    flat = analyze.sockets_at(path, [t for ts in times for t in ts])
    tables: list[list[TableAt]] = []
    for ts in times:
        tables.append(flat[:len(ts)])
        flat = flat[len(ts):]
    return compare(snapshots, wire, tables)


def connected_udp(snapshot: Snapshot, local_port: int, peer_port: int) -> KernelSocket | None:
    """The kernel's UDP socket on *local_port* if it is connect()ed to *peer_port*."""
    for sock in snapshot.sockets:
        row = sock.row
        if (row.proto.startswith("udp") and row.state == "ESTABLISHED"
                and row.local.endswith(f":{local_port}")
                and row.foreign.endswith(f":{peer_port}")):
            return sock
    return None
