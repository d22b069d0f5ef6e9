"""The lesson scenarios: real sockets, captured by tcpdump, each checked on its own capture.

A scenario is three things: ``drive`` makes the traffic with real sockets (every call
has a timeout and every loop a bound); ``verify`` reads the capture back and checks the
promised shape from the raw headers (never through the tracker, which these captures
are here to test); ``run_scenario`` ties them together and retries a bounded number of
times when the timing did not give the promised shape.

Most scenarios run on the loopback of the calling process's namespace.  The two that
need crossing segments (``tcp-simultaneous-close``, ``tcp-simultaneous-open``) run in a
throwaway network namespace whose firewall drops each side's first FIN or SYN (see
``netns.py``): a child ``python -m capdissect.demo --here ...`` is started inside it
with ``ip netns exec`` and captures and drives there.

    python -m capdissect.demo --list
    sudo python -m capdissect.demo tcp-simultaneous-close --family 6 --write x.pcap
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from capdissect.demo.kernel import Snapshot, SsRecorder
from capdissect.demo.netns import Namespace
from capdissect.demo.scenarios.catalog import (
    SCENARIO_LIST,
    SCENARIOS,
    Scenario,
    free_ports,
    get_scenario,
)
from capdissect.demo.scenarios.drive import (
    ATTEMPTS,
    CHILD_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    EXIT_UNAVAILABLE,
    HOSTS,
    Ports,
)
from capdissect.demo.scenarios.verify import Wire, read_wire
from capdissect.demo.steps import BASELINE_STEP
from capdissect.demo.tcpdump import TcpdumpCapture
from capdissect.errors import CapdissectError, DemoUnavailable, PortInUse, ScenarioError
from capdissect.sources.strace import log_beside, tracing_this_process


# ----- running -------------------------------------------------------------------------
class ScenarioRun(NamedTuple):
    scenario: str
    family: int
    path: Path
    ports: Ports
    packets: int
    attempts: int
    shape: str  # what the shape check found, one line
    failures: tuple[str, ...]  # why earlier attempts were thrown away
    # ss -tanu at each step of the lesson (kernel.py); empty when ss is missing
    snapshots: tuple[Snapshot, ...] = ()
    kernel_problem: str | None = None  # why there are no snapshots
    trace_problem: str | None = None  # why the calls were not traced (strace, ptrace)


def verify_capture(name: str, path: Path, ports: Ports | None = None) -> str:
    """Check that the capture at *path* shows what scenario *name* promises; return a
    one-line description of what it shows, or raise ScenarioError."""
    scenario = get_scenario(name)
    return scenario.verify(read_wire(path), ports or scenario.ports)


class Captured(NamedTuple):
    """What one capture of a scenario gave: the packets written, the kernel's tables, and
    why the socket calls were not traced (None: strace's log is beside the capture)."""

    packets: int
    snapshots: tuple[Snapshot, ...]
    kernel_problem: str | None
    trace_problem: str | None = None

    def to_json(self) -> str:
        return json.dumps({"packets": self.packets, "kernel_problem": self.kernel_problem,
                           "snapshots": [s.to_json() for s in self.snapshots],
                           "trace_problem": self.trace_problem})

    @classmethod
    def from_json(cls, text: str) -> Captured:
        obj = json.loads(text)
        return cls(int(obj["packets"]),
                   tuple(Snapshot.from_json(s) for s in obj["snapshots"]),
                   obj["kernel_problem"], obj.get("trace_problem"))


def capture_here(name: str, out: Path, family: int, ports: Ports,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> Captured:
    """Capture scenario *name* in this process's namespace, with ``ss -tanu`` at each of
    its steps (the first before it opens a socket)."""
    scenario = get_scenario(name)
    out.unlink(missing_ok=True)
    kernel = SsRecorder(ports)
    with TcpdumpCapture(out, scenario.bpf(ports)) as cap:
        kernel.step(BASELINE_STEP)
        # The socket calls, through the same strace path as `capdissect trace --pid`:
        # attached to this process, which drives the lesson (SPEC 3.10).
        with tracing_this_process(log_beside(out)) as tracing:
            try:
                scenario.drive(HOSTS[family], ports, timeout_s, kernel)
            except OSError as exc:  # timeouts and refused/reset surprises: the lesson failed
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(name, tuple(ports)) from None
                raise ScenarioError(name, f"{type(exc).__name__}: {exc}") from exc
        packets = cap.stop(scenario.min_packets)
    return Captured(packets, tuple(kernel.snapshots), kernel.problem, tracing.problem)


def _capture_in_namespace(scenario: Scenario, out: Path, family: int, ports: Ports,
                          timeout_s: float) -> Captured:
    assert scenario.drop is not None
    package_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    # The child imports capdissect from this checkout even when it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(package_root), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "capdissect.demo", "--here", scenario.name,
            "--family", str(family), "--ports", ",".join(map(str, ports)),
            "--write", str(out), "--timeout", str(timeout_s)]
    with Namespace(scenario.drop) as ns:
        # Its own session: on a timeout the whole group (the child and its tcpdump) goes.
        proc = subprocess.Popen(ns.command(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScenarioError(scenario.name, f"did not finish within {CHILD_TIMEOUT_S:.0f} s "
                                               f"in namespace {ns.name}") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        lines = stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode == EXIT_UNAVAILABLE:
            raise DemoUnavailable(why)
        if proc.returncode != 0:
            raise ScenarioError(scenario.name, f"in namespace {ns.name}: {why}")
        try:
            return Captured.from_json(stdout)
        except (ValueError, KeyError, TypeError) as exc:
            raise ScenarioError(scenario.name, f"the namespace child said {stdout[:200]!r}: "
                                               f"{exc}") from None


def run_scenario(name: str, out: Path, *, family: int = 4, ports: Ports | None = None,
                 attempts: int = ATTEMPTS,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> ScenarioRun:
    """Run scenario *name* over IPv*family*, capture it into *out* (a ``.pcap`` name:
    Debian's AppArmor profile for tcpdump only lets it write those) and check its shape.

    A run whose shape is wrong (timing can lose the crossing race; stray packets) is
    thrown away and tried again, *attempts* times at most.  Raises DemoUnavailable when
    this machine cannot capture or make the namespace, ScenarioError when no attempt gave
    the promised shape.
    """
    scenario = get_scenario(name)
    if family not in HOSTS:
        raise ScenarioError(name, f"no IPv{family}: use 4 or 6")
    ports = ports or scenario.ports
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            if scenario.drop is None:
                captured = capture_here(name, out, family, ports, timeout_s)
            else:
                captured = _capture_in_namespace(scenario, out, family, ports, timeout_s)
            shape = verify_capture(name, out, ports)
        except PortInUse:
            raise  # the port stays taken: another attempt would fail the same way
        except ScenarioError as exc:
            failures.append(f"attempt {attempt}: {exc.reason}")
            continue
        return ScenarioRun(name, family, out, ports, captured.packets, attempt, shape,
                           tuple(failures), captured.snapshots, captured.kernel_problem,
                           captured.trace_problem)
    raise ScenarioError(name, "; ".join(failures))


# ----- command line (and the child inside a namespace) ---------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m capdissect.demo",
        description="Run a lesson scenario with real sockets, capture it and check it.")
    parser.add_argument("name", nargs="?", help="the scenario (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--ports", help="comma-separated ports (default: the lesson's)")
    parser.add_argument("--write", type=Path, help="the capture file (.pcap)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--here", action="store_true",
                        help="capture in this namespace, no checks (the namespace child)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for scenario in SCENARIO_LIST:
            where = " (in a namespace)" if scenario.drop else ""
            print(f"{scenario.name:24} {scenario.summary}{where}")
        return 0
    out: Path = args.write or Path(f"{args.name}.pcap")
    ports = tuple(int(p) for p in args.ports.split(",")) if args.ports else None
    try:
        if args.here:
            scenario = get_scenario(args.name)
            # One JSON line for the parent: the packet count and the kernel's tables.
            print(capture_here(args.name, out, args.family, ports or scenario.ports,
                               args.timeout).to_json())
            return 0
        run = run_scenario(args.name, out, family=args.family, ports=ports,
                           timeout_s=args.timeout)
    except DemoUnavailable as exc:
        print(f"cannot run here: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (CapdissectError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{run.path}: {run.packets} packets, attempt {run.attempts}: {run.shape}")
    return 0


__all__ = ["SCENARIOS", "Ports", "Scenario", "ScenarioRun", "Wire", "free_ports", "get_scenario",
           "read_wire", "run_scenario", "verify_capture"]
