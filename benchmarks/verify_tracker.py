"""`make verify-tracker`: the tracker measured against tshark and against the kernel.

Fetches nothing.  Two parts:

1. Every capture in tests/corpus and tests/corpus-extra with TCP: capdissect's analysis
   flags against tshark's, frame by frame (precision and recall per flag), and the
   connections against `tshark -q -z conv,tcp` (count, frames and bytes of each).
2. With root: real transfers between a client's and a server's network namespace, joined
   through a third (tests/support/relay.py), all created and deleted here.  The segments are
   dropped, delayed and reordered by tc netem on the client's and server's interfaces
   where the kernel has netem, otherwise by the userspace relay in the middle namespace,
   with the same figures.  tcpdump captures on the client's interface while `ss -tan` is
   polled in both; the tracker's
   final states must equal the kernel's last snapshot (after the run, a socket the
   kernel no longer lists is CLOSED), and each timed snapshot is compared with the
   states the tracker gives at that instant.

`--write` rewrites benchmarks/TRACKER.md with the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capdissect.dissect.stack import decode  # noqa: E402
from capdissect.sources import open_capture  # noqa: E402
from capdissect.tracking.analysis import NAMES  # noqa: E402
from capdissect.tracking.tcp import TcpConnection, Update  # noqa: E402
from capdissect.tracking.tracker import Tracker  # noqa: E402
from tests.support.analysis_compare import capdissect_flags, decode_check, tshark_flags  # noqa: E402
from tests.support.relay import HOLD_S, RelayedPath  # noqa: E402

CORPORA = (ROOT / "tests" / "corpus", ROOT / "tests" / "corpus-extra")
OUT = ROOT / "benchmarks" / "TRACKER.md"

# ss -tan spelling -> RFC 9293's.
SS_STATES = {"ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED",
             "FIN-WAIT-1": "FIN_WAIT_1", "FIN-WAIT-2": "FIN_WAIT_2", "CLOSE-WAIT": "CLOSE_WAIT",
             "CLOSING": "CLOSING", "LAST-ACK": "LAST_ACK", "TIME-WAIT": "TIME_WAIT",
             "LISTEN": "LISTEN"}


# ----- part 1: the corpus against tshark ----------------------------------------------
@dataclass
class FlagCounts:
    both: Counter[str] = field(default_factory=Counter)
    ours: Counter[str] = field(default_factory=Counter)
    theirs: Counter[str] = field(default_factory=Counter)
    differences: list[str] = field(default_factory=list)


@dataclass
class ConvCounts:
    files: int = 0
    tshark: int = 0
    ours: int = 0
    same: int = 0  # conversations with the same frames and bytes
    differences: list[str] = field(default_factory=list)


UNITS = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def tshark_conversations(path: Path) -> dict[frozenset[str], tuple[int, int, str]]:
    """(frames, bytes, unit) of each conversation, as tshark 4.0 prints them: the bytes
    in whole units (11043 bytes are "11 kB")."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"],
                         capture_output=True, text=True, timeout=300, check=False).stdout
    convs: dict[frozenset[str], tuple[int, int, str]] = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) > 10 and cells[1] == "<->":
            # <- frames bytes unit | -> frames bytes unit | total: the third triple.
            frames, size, unit = re.findall(r"(\d+)\s+(\d+)\s+(bytes|kB|MB|GB)", line)[2]
            convs[frozenset((cells[0], cells[2]))] = (int(frames), int(size), unit)
    return convs


def tracker_conversations(path: Path) -> dict[frozenset[str], tuple[int, int]]:
    """Each connection record: frames and frame bytes, as tshark counts them."""
    tracker = Tracker(keep_events=False)
    sizes: dict[int, list[int]] = {}
    names: dict[int, frozenset[str]] = {}
    with open_capture(path) as cap:
        for frame, raw in enumerate(cap, 1):
            seen = tracker.feed(frame, decode(raw))
            if isinstance(seen, Update):
                conn = seen.connection
                sizes.setdefault(conn.id, []).append(raw.wire_len)
                names[conn.id] = frozenset(_dotted(ep.addr, ep.port)
                                           for ep in (conn.client, conn.server))
            tracker.drain()
    tracker.close()
    out: dict[frozenset[str], tuple[int, int]] = {}
    for cid, lens in sizes.items():
        frames, size = out.get(names[cid], (0, 0))
        out[names[cid]] = (frames + len(lens), size + sum(lens))  # records with the same ports
    return out


def _dotted(addr: bytes, port: int) -> str:
    import socket
    if len(addr) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"
    return f"{socket.inet_ntop(socket.AF_INET6, addr)}:{port}"


def corpus() -> tuple[FlagCounts, ConvCounts, int]:
    flags, convs, files = FlagCounts(), ConvCounts(), 0
    for directory in CORPORA:
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".pcap", ".pcapng"):
                continue
            check = decode_check(path)
            if not check.tcp:
                continue
            files += 1
            ours, theirs = capdissect_flags(path), tshark_flags(path)
            for frame in sorted(ours.keys() | theirs.keys()):
                a, b = ours.get(frame, set()), theirs.get(frame, set())
                for name in a & b:
                    flags.both[name] += 1
                for name in a:
                    flags.ours[name] += 1
                for name in b:
                    flags.theirs[name] += 1
                if a != b:
                    flags.differences.append(f"{path.name} frame {frame}: capdissect "
                                             f"{sorted(a)}, tshark {sorted(b)}"
                                             + (f" ({check.differs})" if check.differs else ""))
            mine, tshark = tracker_conversations(path), tshark_conversations(path)
            convs.files += 1
            convs.tshark += len(tshark)
            convs.ours += len(mine)
            for key in mine.keys() | tshark.keys():
                ours, theirs = mine.get(key), tshark.get(key)
                if (ours is not None and theirs is not None and ours[0] == theirs[0]
                        and ours[1] // UNITS[theirs[2]] == theirs[1]):
                    convs.same += 1
                else:
                    convs.differences.append(f"{path.name} {' <-> '.join(sorted(key))}: "
                                             f"capdissect {mine.get(key)}, tshark "
                                             f"{tshark.get(key)} (frames, bytes)")
    return flags, convs, files


# ----- part 2: lossy transfers against ss ----------------------------------------------
NS_A, NS_M, NS_B = "capdissect-vt-a", "capdissect-vt-m", "capdissect-vt-b"
ADDR_A, ADDR_B = "10.203.0.1", "10.203.0.2"
PORT = 5001
POLL_S = 0.02
RUN_LIMIT_S = 25.0


@dataclass(frozen=True)
class Run:
    name: str
    netem: str  # tc netem arguments, both ends; without netem, the relay's per direction
    size: int  # bytes the client sends
    reply: int  # bytes the server sends back
    closer: str  # client | server | both


RUNS = (
    Run("client closes", "delay 10ms 3ms loss 2%", 2_000_000, 1000, "client"),
    Run("server closes", "delay 10ms 3ms loss 2%", 2_000_000, 1000, "server"),
    Run("both close", "delay 10ms reorder 10% 50%", 1_000_000, 100_000, "both"),
    Run("client closes, more loss", "delay 5ms 2ms loss 5%", 500_000, 500_000, "client"),
    Run("server closes, more loss", "delay 8ms 2ms loss 3% reorder 5% 50%",
        1_000_000, 200_000, "server"),
    Run("both close, more loss", "delay 15ms 5ms loss 5%", 300_000, 300_000, "both"),
)

# Both programs: receive a count of bytes, then close as the run says (the side that
# does not close first waits for the peer's FIN and stays in CLOSE_WAIT for a while).
COMMON = r"""
import socket, sys, time
size, reply, closer = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def receive(c, count):
    got = 0
    while got < count:
        d = c.recv(65536)
        if not d: break
        got += len(d)
def finish(c, me):
    time.sleep(0.3)
    if closer == me: c.close()
    elif closer == "both": time.sleep(0.5); c.close()
    else:
        while c.recv(65536): pass
        time.sleep(0.3)
        c.close()
    time.sleep(1)
"""

SERVER = COMMON + f"""
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", {PORT})); ls.listen(1); print("ready", flush=True)
ls.settimeout(20); c, _ = ls.accept(); c.settimeout(20); ls.close()
receive(c, size)
c.sendall(b"r" * reply)
finish(c, "server")
"""

CLIENT = COMMON + f"""
c = socket.create_connection(("{ADDR_B}", {PORT}), timeout=20)
c.sendall(b"q" * size)
receive(c, reply)
finish(c, "client")
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@contextmanager
def namespaces() -> Iterator[RelayedPath]:
    for ns in (NS_A, NS_M, NS_B):  # left over by a killed run
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    with RelayedPath((NS_A, NS_M, NS_B), ("vt0", "vt1"), (ADDR_A, ADDR_B)) as path:
        yield path


def ss_snapshot(ns: str) -> dict[tuple[str, str], str]:
    """(local, peer) -> state, for the test port's connections; a listener on the port
    as ("LISTEN", "")."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tanH"], capture_output=True,
                         text=True, timeout=10, check=False).stdout
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if (len(cells) >= 5 and cells[0] in SS_STATES
                and (cells[3].endswith(f":{PORT}") or cells[4].endswith(f":{PORT}"))):
            key = ("LISTEN", "") if cells[0] == "LISTEN" else (cells[3], cells[4])
            rows[key] = SS_STATES[cells[0]]
    return rows


@dataclass
class KernelCounts:
    runs: int = 0
    finals_equal: int = 0
    snapshots: int = 0
    equal: int = 0
    in_flight: int = 0  # differ, but the tracker reaches the kernel's state within the delay
    impairment: str = ""
    differences: list[str] = field(default_factory=list)
    in_flight_list: list[str] = field(default_factory=list)
    relay: Counter[str] = field(default_factory=Counter)  # the relay's counters, all runs
    tshark: Counter[str] = field(default_factory=Counter)  # tshark's flags on the captures


# tshark's flags that show the impairment on a capture.
IMPAIRMENT_FLAGS = ("tcp.analysis.out_of_order", "tcp.analysis.retransmission",
                    "tcp.analysis.spurious_retransmission", "tcp.analysis.duplicate_ack")


def tshark_impairment(pcap: Path) -> Counter[str]:
    """How many frames of each direction tshark gives each of IMPAIRMENT_FLAGS."""
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "tcp.srcport",
                          *(x for name in IMPAIRMENT_FLAGS for x in ("-e", name))],
                         capture_output=True, text=True, timeout=300, check=False).stdout
    seen: Counter[str] = Counter()
    for line in out.splitlines():
        port, *values = line.split("\t")
        way = "server to client" if port == str(PORT) else "client to server"
        for name, value in zip(IMPAIRMENT_FLAGS, values, strict=False):
            seen[f"{name.removeprefix('tcp.analysis.')} {way}"] += bool(value)
    return seen


def lossy_run(path: RelayedPath, run: Run, seed: int, workdir: Path,
              counts: KernelCounts) -> None:
    pcap = workdir / f"{run.name.replace(' ', '_').replace(',', '')}.pcap"
    path.impair(run.netem, seed, RUN_LIMIT_S + 10)
    dump = subprocess.Popen(["ip", "netns", "exec", NS_A, "tcpdump", "-i", "vt0", "-n", "-U",
                             "-s", "128", "-w", str(pcap), "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs: list[subprocess.Popen[str]] = []
    try:
        time.sleep(1.0)  # tcpdump is listening
        args = [str(run.size), str(run.reply), run.closer]
        server = subprocess.Popen(["ip", "netns", "exec", NS_B, sys.executable, "-c", SERVER,
                                   *args], stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout is not None
        server.stdout.readline()  # ready
        snaps: list[tuple[float, float, str, dict[tuple[str, str], str]]] = []
        client = subprocess.Popen(["ip", "netns", "exec", NS_A, sys.executable, "-c", CLIENT,
                                   *args], text=True)
        procs.append(client)
        deadline = time.monotonic() + RUN_LIMIT_S
        while time.monotonic() < deadline and (client.poll() is None or server.poll() is None):
            for ns in (NS_A, NS_B):
                t = time.time()
                rows = ss_snapshot(ns)
                snaps.append((t, time.time(), ns, rows))  # ss read in between
            time.sleep(POLL_S)
        final = {**ss_snapshot(NS_A), **ss_snapshot(NS_B)}
        time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        dump.terminate()
        dump.wait(timeout=10)
        counts.relay.update(path.stop())
    counts.tshark.update(tshark_impairment(pcap))
    compare_with_kernel(run, pcap, snaps, final, counts)


def compare_with_kernel(run: Run, pcap: Path,
                        snaps: list[tuple[float, float, str, dict[tuple[str, str], str]]],
                        final: dict[tuple[str, str], str], counts: KernelCounts) -> None:
    tracker = Tracker()
    with open_capture(pcap) as cap:
        for frame, raw in enumerate(cap, 1):
            tracker.feed(frame, decode(raw))
    conns = [c for c in tracker.close() if isinstance(c, TcpConnection)]
    counts.runs += 1
    if len(conns) != 1:
        counts.differences.append(f"{run.name}: {len(conns)} connections in the capture")
        return
    conn = conns[0]
    client = _dotted(conn.client.addr, conn.client.port)
    server = _dotted(conn.server.addr, conn.server.port)
    sides = {"client": (client, server), "server": (server, client)}
    last = final
    ours_final = {"client": _name(conn.client.state), "server": _name(conn.server.state)}
    kernel_final = {role: last.get(key, "CLOSED") for role, key in sides.items()}
    if ours_final == kernel_final:
        counts.finals_equal += 1
    else:
        counts.differences.append(f"{run.name}: final states {ours_final}, ss {kernel_final}")
    delay = _max_delay(run.netem)
    events = conn.events
    for t0, t1, ns, rows in snaps:
        t = (t0 + t1) / 2
        if not events or t < events[0].ts or t > events[-1].ts:
            continue
        index, role = (0, "client") if ns == NS_A else (1, "server")
        # A server without its connection socket yet is the listener (SPEC §4: LISTEN).
        kernel = rows.get(sides[role], rows.get(("LISTEN", ""), "CLOSED") if index else "CLOSED")
        ours = _states_at(events, t)[index]
        counts.snapshots += 1
        if ours == kernel:
            counts.equal += 1
        elif kernel in _states_between(events, t0 - delay, t1 + delay, index):
            counts.in_flight += 1
            counts.in_flight_list.append(f"{run.name}: at +{t - events[0].ts:.3f} s the "
                                         f"{role} is {ours}, ss says {kernel}")
        else:
            counts.differences.append(f"{run.name}: at +{t - events[0].ts:.3f} s the "
                                      f"{role} is {ours}, ss says {kernel}")


def _name(state: object) -> str:
    value = getattr(state, "value", None)
    return value if isinstance(value, str) else "CLOSED"


def _states_at(events: list, t: float) -> tuple[str, str]:  # type: ignore[type-arg]
    current = events[0].states
    for event in events:
        if event.ts > t:
            break
        current = event.states
    return _name(current[0]), _name(current[1])


def _states_between(events: list, t0: float, t1: float,  # type: ignore[type-arg]
                    index: int) -> set[str]:
    """Every state the tracker gives endpoint *index* from *t0* to *t1*."""
    seen = {_states_at(events, t0)[index]}
    seen.update(_name(e.states[index]) for e in events if t0 <= e.ts <= t1)
    return seen


def _max_delay(netem: str) -> float:
    """The longest one-way delay of the netem arguments (delay + jitter, and the relay's
    hold of a reordered segment), twice, plus the poll."""
    m = re.search(r"delay (\d+)ms(?: (\d+)ms)?", netem)
    base = (int(m[1]) + int(m[2] or 0)) / 1000 if m else 0.0
    if "reorder" in netem:
        base += HOLD_S
    return base * 2 + POLL_S * 2


# ----- the report -----------------------------------------------------------------------
# Why the differences in tests/corpus(-extra) are what they are, by capture.
KNOWN = {
    "tcpdump_heapoverflow-tcp_print.pcap": "a segment from 48.48.48.48:12336 to itself: "
    "tshark lists no conversation for it",
    "tcpdump_tcp-auth-heapoverflow.pcap": "the same self-addressed segment",
    "zeek_chksums_ip6-hoa-tcp-good-chksum.pcap": "tshark takes the IPv6 Home Address "
    "option as the source; capdissect the header's source, as tcpdump prints it",
    "pcpp_ipfragutil_bpf_filter.pcap": "IP fragments: tshark reassembles them and counts "
    "the bytes of the reassembled segment (tests/support/analysis_compare.py, decode_check)",
}

WHY = """Why they differ.  The capture point is the client's interface, and the impairment
is on the path between the client's and the server's namespaces (where the kernel has
netem, on both interfaces, at egress).  A segment the client sends is captured before its
delay (and before it may be dropped or held back); a segment the server sends is captured
only after its delay, and never if it is dropped.  Each difference seen (tshark on the
run's capture, the relay's counters):

- *the server ESTABLISHED, ss SYN_RECEIVED just after the handshake*: the client's ACK of
  the SYN-ACK is captured as it leaves and taken at once (SPEC §4: only a SYN's or a
  FIN's receipt waits for evidence); the server gets it one delay later.
- *the server LISTEN, ss SYN_RECEIVED*, *the server ESTABLISHED, ss FIN_WAIT_1 or
  CLOSING*: the server's SYN-ACK or FIN is still on its way to the capture point (delayed,
  or held back by the relay for reordering); the capture sees it up to a delay and a hold
  later, and the client answers it at once, so the tracker's SYN_RECEIVED or FIN_WAIT_1
  lasts microseconds where the kernel's lasted a round trip.
- *the client ESTABLISHED, ss CLOSE_WAIT*: the server's FIN reached the client, whose ack
  of it left on the delayed-ACK timer (about 40 ms later); the tracker waits for that
  ack, the receiver's evidence, before it moves the client (SPEC §4: only on loopback
  is arrival taken as receipt).
- *the server FIN_WAIT_2, ss FIN_WAIT_1* (or ESTABLISHED against SYN_RECEIVED), for a
  retransmission timeout: the client's ACK of the server's FIN (or SYN-ACK) was captured
  and then dropped after the capture point; the tracker took it at once (SPEC §4) and is
  one state ahead until the server sends its FIN again.
- *the server ESTABLISHED, ss CLOSE_WAIT*, for a retransmission timeout: the server got
  the client's FIN, but its ack, the evidence the tracker waits for, was dropped before
  the capture point; the tracker moves the server when a later ack of the FIN is captured.
- *the server ESTABLISHED, ss FIN_WAIT_1* (or *CLOSE_WAIT, ss LAST_ACK*, when the server
  closes second), for a retransmission timeout: the server's FIN was dropped before the
  capture point (the relay's `dropped`); the capture, and so the tracker, sees the server
  close only when the FIN is sent again.

The end states are not affected.  One end state was, before a tracker fix found by these
runs: a server FIN held back by the relay reached the capture after the server's next
ACK (seq one past the FIN), and the tracker took the FIN as sent after the client's FIN had
arrived (CLOSE_WAIT, LAST_ACK, CLOSED) where its ack field shows it was sent before (a
simultaneous close: FIN_WAIT_1, CLOSING, TIME_WAIT, as `ss` said);
tests/corpus-extra/capdissect_reordered_fin.pcap keeps that close."""


def report(flags: FlagCounts, convs: ConvCounts, files: int,
           kernel: KernelCounts | None) -> str:
    lines = ["# Tracker verification (`make verify-tracker`)", "",
             "Written by `benchmarks/verify_tracker.py --write`; it fetches nothing.", "",
             f"## Analysis flags against tshark ({files} captures of tests/corpus and "
             "tests/corpus-extra)", "",
             "| flag | both | capdissect | tshark | precision | recall |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in NAMES:
        b, o, t = flags.both[name], flags.ours[name], flags.theirs[name]
        if o or t:
            lines.append(f"| {name} | {b} | {o} | {t} | {_ratio(b, o)} | {_ratio(b, t)} |")
    b, o, t = (sum(c.values()) for c in (flags.both, flags.ours, flags.theirs))
    lines += [f"| **all** | {b} | {o} | {t} | {_ratio(b, o)} | {_ratio(b, t)} |", "",
              "Frames that differ:", ""]
    lines += [f"- {d}" for d in flags.differences] or ["- none"]
    lines += ["", "## Connections against `tshark -q -z conv,tcp`", "",
              f"{convs.tshark} conversations for tshark, {convs.ours} for capdissect in "
              f"{convs.files} captures; {convs.same} with the same frames and bytes.", ""]
    lines += [f"- {d}" for d in convs.differences] or ["- no difference"]
    lines += ["", "Why:", ""] + [f"- `{name}`: {why}" for name, why in KNOWN.items()]
    lines += ["", "## Lossy transfers against `ss -tan`", ""]
    if kernel is None:
        lines += ["Not run (needs root, ip, tc, tcpdump and ss)."]
    else:
        how = ", ".join(f"{r.name} (`{r.netem}`)" for r in RUNS)
        where = ("tc netem on the client's and the server's interface"
                 if kernel.impairment == "tc netem" else
                 "the userspace relay (tests/support/relay.py) in a middle namespace, "
                 "each direction on its own (this kernel has no netem): client to server "
                 "after the capture point, server to client before it")
        relay = ", ".join(f"{n} {kernel.relay[n]}" for n in sorted(kernel.relay)) or "-"
        flags = ", ".join(f"`{n}` {kernel.tshark[n]}" for n in sorted(kernel.tshark)) or "-"
        lines += [f"Runs between a client's and a server's namespace joined through a third, "
                  f"impaired by {where}: {how}.", "",
                  f"- the relay's counters over all runs: {relay}",
                  f"- tshark's flags on the captures: {flags}.  Reordering is real: "
                  "the server's segments reordered before the capture point are tshark's "
                  "`out_of_order server to client` (with the loss-free `both close` run among "
                  "them); the client's, reordered after it, show as the server's duplicate "
                  "ACKs with SACK blocks",
                  f"- end states equal to `ss`: {kernel.finals_equal} of {kernel.runs} runs",
                  f"- timed snapshots (each namespace's sockets, every {POLL_S * 1000:.0f} ms): "
                  f"{kernel.snapshots}; equal {kernel.equal}; differing only by the time a "
                  f"segment takes between an endpoint and the capture point {kernel.in_flight} "
                  f"(the tracker shows the kernel's state within twice the run's longest "
                  f"one-way delay, the relay's {HOLD_S * 1000:.0f} ms hold of a reordered "
                  f"segment and two polls of the span in which `ss` ran: on a loaded machine "
                  f"starting it takes up to a few hundred ms); other "
                  f"{kernel.snapshots - kernel.equal - kernel.in_flight}", "",
                  "Within the delay:", ""]
        lines += [f"- {d}" for d in kernel.in_flight_list[:40]] or ["- none"]
        lines += ["", "Other:", ""]
        lines += [f"- {d}" for d in kernel.differences[:40]] or ["- none"]
        lines += ["", WHY]
    return "\n".join(lines) + "\n"


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.4f}" if b else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {OUT}")
    parser.add_argument("--no-kernel", action="store_true", help="skip the lossy transfers")
    opts = parser.parse_args()
    if shutil.which("tshark") is None:
        print("tshark is needed (apt-get install tshark)", file=sys.stderr)
        return 2
    flags, convs, files = corpus()
    kernel = None
    tools = all(shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin")
                for t in ("ip", "tc", "tcpdump", "ss"))
    if not opts.no_kernel and os.geteuid() == 0 and tools:
        kernel = KernelCounts()
        with namespaces() as path, tempfile.TemporaryDirectory() as tmp:
            kernel.impairment = ("tc netem" if path.has_netem() else
                                 "the userspace relay (tests/support/relay.py)")
            for seed, run in enumerate(RUNS, 1):
                lossy_run(path, run, seed, Path(tmp), kernel)
    text = report(flags, convs, files, kernel)
    print(text)
    if opts.write:
        OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
