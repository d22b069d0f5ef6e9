"""``capdissect demo``: run a lesson for real, then show it the three ways a learner needs.

The scenario runs with real sockets on loopback and is captured; then come the packets
as tcpdump prints them with capdissect's annotations, the ladder diagram, and netstat's
table after each state change.  Where this machine cannot capture (no root or
CAP_NET_RAW, no tcpdump, no network namespaces for the crossing scenarios) the demo
replays the capture bundled in ``captures/`` and says so in one line.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from capdissect import analyze
from capdissect.demo.errors import DemoUnavailable, ScenarioError
from capdissect.demo.scenarios import SCENARIOS, get_scenario, run_scenario, verify_capture
from capdissect.outfiles import refuse_input
from capdissect.reader import ReadOptions, read_lines

# The captures the scenarios made, shipped with the sources (captures/README.md).
BUNDLED: Final = Path(__file__).resolve().parents[2] / "captures"


def scenario_list() -> list[str]:
    """One line per scenario: its name and what it shows."""
    return [f"{s.name:24} {s.summary}" + (" (in a network namespace)" if s.drop else "")
            for s in SCENARIOS.values()]


def capture(name: str, out: Path, family: int, port: int | None,
            notice: Callable[[str], None], keep: bool = False) -> Path:
    """Run scenario *name* and capture it into *out*; fall back to the bundled capture
    (with a one-line *notice*, copied to *out* when the user asked to *keep* it) when this
    machine cannot capture."""
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
        return bundled
    notice(f"capdissect demo: captured {run.packets} packets of {name} on loopback "
           f"({run.shape})")
    return out


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
        path = capture(name, out, family, port, notice, keep=write is not None)
        yield f"== {name}: {scenario.summary} ==\n\n"
        yield "-- the packets, as tcpdump prints them, with what they mean --\n"
        for text in read_lines(path, options):
            yield text + "\n"
        yield "\n-- the timeline --\n"
        yield from analyze.timeline(path)
        yield "\n-- netstat after each change --\n"
        yield from analyze.sockets(path, every=True)
        if handout is not None:
            from capdissect.lesson import write_handout  # the HTML/PDF machinery, on demand

            written = write_handout(path, handout, title=f"capdissect demo: {name}")
            notice(f"capdissect demo: handout written to {written}")
