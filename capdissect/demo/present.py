"""``capdissect demo``: run a lesson for real, then show it the ways a learner needs.

The scenario runs with real sockets on loopback and is captured; then come the packets
as tcpdump prints them with capdissect's annotations, the ladder diagram, netstat's
table after each state change, and the kernel's own table (``ss -tanu``, recorded at
each step of the lesson) beside capdissect's at the same moment (oracle.py).  Where
this machine cannot capture (no root or CAP_NET_RAW, no tcpdump, no network namespaces
for the crossing scenarios) the demo replays the capture bundled in ``captures/`` and
says so in one line.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from capdissect.commands import reports as analyze
from capdissect.commands.outfiles import refuse_input
from capdissect.commands.read import ReadOptions, read_lines
from capdissect.demo.oracle import EXCEPTIONS, Comparison, compare_capture, connected_udp
from capdissect.demo.scenarios import (
    SCENARIOS,
    ScenarioRun,
    get_scenario,
    run_scenario,
    verify_capture,
)
from capdissect.errors import DemoUnavailable, ScenarioError
from capdissect.sources import open_capture
from capdissect.sources.strace import log_beside

# The captures the scenarios made, shipped with the sources (captures/README.md).
BUNDLED: Final = Path(__file__).resolve().parents[2] / "captures"


def scenario_list() -> list[str]:
    """One line per scenario: its name and what it shows."""
    return [f"{s.name:24} {s.summary}" + (" (in a network namespace)" if s.drop else "")
            for s in SCENARIOS.values()]


def capture(name: str, out: Path, family: int, port: int | None,
            notice: Callable[[str], None], keep: bool = False) -> tuple[Path, ScenarioRun | None]:
    """Run scenario *name* and capture it into *out*; fall back to the bundled capture
    (with a one-line *notice*, copied to *out* when the user asked to *keep* it) when this
    machine cannot capture.  Returns the capture and the run (None: replayed)."""
    scenario = get_scenario(name)
    ports = None
    if port is not None:
        ports = tuple(port + i for i in range(len(scenario.ports)))
    try:
        run = run_scenario(name, out, family=family, ports=ports)
    except DemoUnavailable as why:
        bundled = BUNDLED / f"{name}.pcap"
        if not bundled.exists():
            raise ScenarioError(name, f"cannot capture here ({why}) and no bundled capture "
                                      f"at {bundled}") from None
        notice(f"capdissect demo: cannot capture here ({why}); replaying {bundled}")
        verify_capture(name, bundled)
        if keep:
            refuse_input(out, bundled)
            shutil.copyfile(bundled, out)  # --write still gets the capture shown
        return bundled, None
    notice(f"capdissect demo: captured {run.packets} packets of {name} on loopback "
           f"({run.shape})")
    return out, run


def demo_pieces(name: str, *, family: int = 4, port: int | None = None,
                write: Path | None = None, handout: Path | None = None,
                options: ReadOptions | None = None,
                notice: Callable[[str], None] = print) -> Iterator[str]:
    """Run (or replay) scenario *name* and yield the demo's text, in pieces ending in \\n."""
    options = options or ReadOptions(n=1)
    scenario = get_scenario(name)
    with contextlib.ExitStack() as stack:
        if write is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capd-demo-")))
            out = tmp / f"{name}.pcap"
        else:
            out = write
        path, run = capture(name, out, family, port, notice, keep=write is not None)
        calls = traced_calls(run, notice)
        yield f"== {name}: {scenario.summary} ==\n\n"
        if calls is None:
            yield "-- the packets, as tcpdump prints them, with what they mean --\n"
            texts = read_lines(path, options)
        else:
            yield ("-- the packets, as tcpdump prints them, with what they mean and the "
                   "socket calls beside them --\n")
            texts = analyze.read_with_calls(path, options, calls)
        for text in texts:
            yield text + "\n"
        yield "\n-- the timeline --\n"
        yield from analyze.timeline(path, calls=calls)
        yield "\n-- netstat after each change --\n"
        yield from analyze.sockets(path, every=True)
        yield "\n-- the kernel's own table (ss) beside capdissect's, at each step --\n"
        yield from _lines(kernel_lines(run, write))
        if handout is not None:
            from capdissect.commands.handout import (
                write_handout,  # the HTML/PDF machinery, on demand
            )

            written = write_handout(path, handout, title=f"capdissect demo: {name}",
                                    calls=calls)
            notice(f"capdissect demo: handout written to {written}")


def traced_calls(run: ScenarioRun | None, notice: Callable[[str], None]) -> Path | None:
    """strace's log of the scenario's socket calls, or None with a notice saying why the
    demo shows the packets only (a replay, no strace, no ptrace permission)."""
    if run is None:
        return None  # the replay's notice said it: nothing ran here
    log = log_beside(run.path)
    if run.trace_problem is not None or not log.exists():
        notice(f"capdissect demo: {run.trace_problem or 'no strace log'}; showing the "
               "packets only, without the socket calls")
        return None
    return log


def _lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        yield line + "\n"


def kernel_lines(run: ScenarioRun | None, write: Path | None) -> Iterator[str]:
    """Each step's ``ss -tanu``, capdissect's table at the same moment, and how they
    differ: not at all, only where the wire cannot tell (oracle.EXCEPTIONS), or really."""
    if run is None:
        yield "not asked: this is a replay of a bundled capture, no kernel ran it here"
        return
    if not run.snapshots:
        yield f"not asked: {run.kernel_problem or 'the scenario took no snapshots'}"
        return
    comparisons = compare_capture(run.path, run.snapshots)
    file = str(write) if write is not None else run.path.name
    if write is None:
        yield (f"(to check capdissect's side yourself, keep the capture: --write "
               f"{run.path.name})")
    first = _first_ts(run.path)
    for index, comparison in enumerate(comparisons, 1):
        if index > 1:
            yield ""
        yield from _step_lines(comparison, index, len(comparisons), first, file)
    if run.scenario == "udp-connected":
        yield ""
        yield _udp_connected_line(comparisons, run)
    unexplained = sum(1 for c in comparisons if c.unexplained)
    excused = any(c.differences for c in comparisons)
    yield ""
    if unexplained:
        yield f"kernel and capdissect DISAGREE at {unexplained} of {len(comparisons)} steps"
    else:
        yield (f"kernel and capdissect agree at all {len(comparisons)} steps"
               + (", apart from what the wire cannot show" if excused else ""))


def _first_ts(path: Path) -> float | None:
    with open_capture(path) as cap:
        for raw in cap:
            return raw.ts
    return None


def _step_lines(c: Comparison, index: int, total: int, first: float | None,
                file: str) -> Iterator[str]:
    when = "before the first packet" if c.table.frame is None else f"after frame {c.table.frame}"
    offset = "" if first is None else f"{float(c.at) - first:+.6f} s, "
    yield f"step {index}/{total}: {c.snapshot.step} ({offset}{when})"
    yield "  kernel (ss -tanu):"
    for line in c.snapshot.text:
        yield f"    {line}"
    if not c.snapshot.sockets:
        yield "    (no socket on the scenario's ports)"
    yield f"  capdissect, from the wire (capdissect sockets {file} --at {c.at}):"
    for line in c.table.lines:
        yield f"    {line}"
    if c.in_window:
        yield (f"  ({c.in_window} packets were captured while ss ran: capdissect's table "
               "is taken where it matches, if anywhere)")
    if not c.differences:
        yield "  => the same sockets in the same states"
        return
    yield ("  => they differ only where the wire cannot tell:" if not c.unexplained
           else "  => THEY DIFFER:")
    for d in c.differences:
        why = EXCEPTIONS[d.exception] if d.exception else "unexplained"
        yield f"     only {d.side}: {d.row} ({why})"


def _udp_connected_line(comparisons: list[Comparison], run: ScenarioRun) -> str:
    """udp-connected's point, confirmed by the kernel: B's socket is connected to A."""
    a_port, b_port = run.ports[0], run.ports[1]
    for c in reversed(comparisons):
        found = connected_udp(c.snapshot, b_port, a_port)
        if found is not None:
            return (f"the kernel confirms it ({c.snapshot.step}): B's socket {found.row.local} "
                    f"is connect()ed to A, {found.row.foreign} ({found.line.split()[1]} in "
                    "ss), so the kernel gave C's datagram to no socket and answered it with "
                    "ICMP port unreachable")
    return (f"the kernel does NOT show B's socket (port {b_port}) connected to A (port "
            f"{a_port}) at any step")
