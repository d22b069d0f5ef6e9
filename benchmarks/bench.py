"""Time capdissect against its peers on the two cached benchmark captures (SPEC 5, issue 19).

    make bench                                   # = .venv/bin/python benchmarks/bench.py --write
    .venv/bin/python benchmarks/bench.py --runs 5
    .venv/bin/python benchmarks/bench.py --mix long --only flows
    .venv/bin/python benchmarks/bench.py --capture some.pcap

Every row runs on both traffic mixes of ``gen_capture.py`` (``short``: a million packets
of mostly short connections; ``long``: fewer, longer connections with large segments,
zero windows and a lossy transfer), so that no target holds on one file only.  The peers
are tcpdump (text), tshark's TCP conversation table and tcptrace -l (tracking); two rows
have no outside peer: annotated ``read -n`` against our own ``read --plain -nn``, and
``read --json`` against a packets-per-second target.

Each command runs as a whole process (interpreter start-up included), stdout to
/dev/null, TZ=UTC.  Wall time is measured from spawn to exit (``os.wait4``); peak memory
is the child's own high-water mark (see ``measure``).  Runs are interleaved (peer,
capdissect, peer, ...) after one untimed pass that puts the file in the page cache; the
table shows medians.
``--write`` rewrites benchmarks/RESULTS.md with the machine, the capture and the table.
The start-up table (``--only startup`` alone) times each command on the 11-packet
lesson capture beside the bare interpreter and tcpdump.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gen_capture import MIXES, CaptureInfo, ensure_capture

from capdissect.sources.files import open_capture

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
RESULTS: Final = HERE / "RESULTS.md"
# Start-up (issue 19): the lesson's 11 packets, where the interpreter and the imports are
# nearly the whole run; read --plain -nn must finish within this, quiet machine or not.
STARTUP_CAPTURE: Final = ROOT / "captures" / "tcp-basic.pcap"
STARTUP_TARGET_S: Final = 0.12
STARTUP_RUNS: Final = 9
RUN_TIMEOUT_S: Final = 1800.0  # one process; a hung run is killed and reported
POLL_S: Final = 0.002
ENV: Final = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float
    max_rss_mb: float
    exit_code: int
    stderr_tail: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """Our command against a peer's, with the target for the wall-time ratio; or, with no
    peer, against a packets-per-second target."""

    title: str
    peer: tuple[str, ...]  # () for a throughput row
    ours: tuple[str, ...]
    max_ratio: float = 0.0  # ours / peer wall time must be at most this
    source: str = "SPEC §5"  # where the target comes from
    max_rss_mb: float | None = 150.0  # SPEC 5: peak memory of capdissect
    min_rate: float | None = None  # packets/s, for a row without a peer
    peer_label: str = "peer"

    @property
    def target(self) -> str:
        if self.min_rate is not None:
            return f"≥ {self.min_rate:,.0f} packets/s"
        if self.max_ratio < 1:  # "3x faster" reads better than "<= 0.333x"
            return f"≥ {1 / self.max_ratio:g}x faster than {self.peer_label}"
        return f"≤ {self.max_ratio:g}x {self.peer_label}"


@dataclass
class Measured:
    comparison: Comparison
    peer: list[Sample] = field(default_factory=list)
    ours: list[Sample] = field(default_factory=list)
    missing: str | None = None  # why it was not run (a peer not installed)


@dataclass
class MixResults:
    """One capture's rows."""

    mix: str  # a gen_capture mix, or "" for --capture FILE
    capture: Path
    info: CaptureInfo | None
    results: list[Measured]
    counted: int | None = None  # packets of a --capture file

    @property
    def packets(self) -> int | None:
        return self.info.packets if self.info is not None else self.counted


def capdissect_script() -> str:
    script = Path(sys.executable).with_name("capdissect")
    return str(script) if script.exists() else "capdissect"


def comparisons(capture: Path) -> list[Comparison]:
    f = str(capture)
    ours = capdissect_script()
    plain = (ours, "read", f, "--plain", "-nn")
    tcptrace = ("tcptrace", "-l", f)
    return [
        # SPEC 5 asks 3x; issue 19 raises it to 2x on both mixes.
        Comparison("read -nn", ("tcpdump", "-r", f, "-nn"), plain, 2.0, "issue 19"),
        Comparison("read -nn -v -X", ("tcpdump", "-r", f, "-nn", "-v", "-X"),
                   (*plain, "-v", "-X"), 1.0),
        # SPEC 5: flows and timeline --json at least 3x faster than tshark's TCP
        # conversation table on the same file (tshark is timed once and shared).
        Comparison("flows --json", tshark_conv(f), (ours, "flows", f, "--json"), 1 / 3),
        Comparison("timeline --json", tshark_conv(f), (ours, "timeline", f, "--json"), 1 / 3),
        # Issue 19: the classic connection analyser, in C (timed once and shared).
        Comparison("flows --json vs tcptrace", tcptrace, (ours, "flows", f, "--json"), 1.0,
                   "issue 19"),
        Comparison("timeline --json vs tcptrace", tcptrace, (ours, "timeline", f, "--json"),
                   1.5, "issue 19"),
        # Issue 19: the annotated read against the plain one, and JSON's rate.
        Comparison("read -n", plain, (ours, "read", f, "-n"), 2.5, "issue 19",
                   peer_label="`read --plain -nn`"),
        Comparison("read --json", (), (ours, "read", f, "--json"), source="issue 19",
                   min_rate=100_000),
        # Issue 19: two processes against one, the same output (tests/e2e/*_jobs.py).
        # Peak memory is the parent's; each worker holds its share of the flows.
        *(Comparison(f"{' '.join(command)} -j 2", (ours, *command[:1], f, *command[1:]),
                     (ours, *command[:1], f, *command[1:], "-j", "2"), 1 / 1.7, "issue 19",
                     peer_label="`-j 1`")
          for command in (("flows", "--json"), ("timeline", "--json"), ("timeline",),
                          ("read", "--json"), ("read", "-n"), ("sockets", "--every"))),
    ]


def startup_commands() -> list[tuple[str, ...]]:
    """The interpreter alone, tcpdump, then capdissect's commands on the small capture:
    read --plain -nn (with the target) first, then the other read paths and reports."""
    f = str(STARTUP_CAPTURE)
    ours = capdissect_script()
    return [
        (sys.executable, "-c", "pass"),
        ("tcpdump", "-r", f, "-nn"),
        (ours, "read", f, "--plain", "-nn"),
        (ours, "read", f, "-n"),
        (ours, "read", f, "--json"),
        (ours, "flows", f),
        (ours, "timeline", f),
        (ours, "sockets", f),
    ]


def run_startup(runs: int, log: bool = True) -> dict[tuple[str, ...], list[Sample]]:
    """Each start-up command *runs* times, interleaved (one of each per round), after
    one untimed round.  The package's bytecode is compiled first, as ``pip install``
    does: with PYTHONDONTWRITEBYTECODE set, an editable install would otherwise
    compile every module at every start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "capdissect")],
                   check=True, stdout=subprocess.DEVNULL)
    commands = startup_commands()
    for argv in commands:
        measure(argv)
    samples: dict[tuple[str, ...], list[Sample]] = {argv: [] for argv in commands}
    for i in range(runs):
        for argv in commands:
            samples[argv].append(measure(argv))
        if log:
            walls = ", ".join(f"{s[-1].wall_s * 1000:.0f}" for s in samples.values())
            print(f"  start-up [{i + 1}/{runs}] ms: {walls}", file=sys.stderr)
    return samples


def startup_table(samples: dict[tuple[str, ...], list[Sample]]) -> str:
    header = (
        "| command | median wall (ms) | runs (ms) | minus `-c pass` (ms) | target | met |\n"
        "| --- | ---: | --- | ---: | --- | --- |\n"
    )
    interpreter = _median(next(iter(samples.values())))
    rows = []
    for argv, runs in samples.items():
        median = _median(runs)
        failed = _failed(runs)
        target, met = "", ""
        if argv[1:3] == ("read", str(STARTUP_CAPTURE)) and argv[3:] == ("--plain", "-nn"):
            target = f"≤ {STARTUP_TARGET_S:g} s"
            met = "yes" if median <= STARTUP_TARGET_S and failed is None else "no"
        if failed is not None:
            met = f"no: exit {failed.exit_code}"
        shown = ", ".join(f"{s.wall_s * 1000:.0f}" for s in runs)
        rows.append(f"| {display(argv, STARTUP_CAPTURE)} | {median * 1000:.0f} | {shown} "
                    f"| {(median - interpreter) * 1000:.0f} | {target} | {met} |")
    return header + "\n".join(rows) + "\n"


def tshark_conv(capture: str) -> tuple[str, ...]:
    return ("tshark", "-q", "-z", "conv,tcp", "-r", capture)


def _vm_hwm_kib(pid: int) -> int | None:
    """The process's own peak RSS since its exec (``VmHWM``), None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no Vm* lines


def measure(argv: Sequence[str], stdout: Path | None = None) -> Sample:
    """Run *argv* once: wall time and peak RSS (bounded by RUN_TIMEOUT_S).  Its output goes
    to *stdout* when given (to check it), else to /dev/null.

    Peak RSS is the child's ``VmHWM``, read every POLL_S while it runs.  The ``ru_maxrss``
    that ``os.wait4`` returns is a worse measure on Linux: exec keeps the high-water mark
    of the memory image it replaces, so every child would count this Python process's
    ~18 MB.  It is still the fallback for a child that ends before the first poll.
    """
    with open(stdout or os.devnull, "wb") as sink, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=sink, stderr=err, env=ENV
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        hwm_kib = 0
        # Poll with WNOHANG from this one thread: /proc/PID is read only while the child is
        # not yet reaped, so the PID cannot belong to another process.
        for _ in range(int(RUN_TIMEOUT_S / POLL_S) + 2):
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            hwm_kib = max(hwm_kib, _vm_hwm_kib(proc.pid) or 0)
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(POLL_S)
        else:
            proc.kill()
            _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        tail = err.read()[-600:].decode("utf-8", "replace")
    peak_kib = hwm_kib or usage.ru_maxrss  # both in KiB
    return Sample(wall, peak_kib / 1024, proc.returncode, tail)


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as f:
        for _ in range(path.stat().st_size // (1 << 20) + 1):
            if not f.read(1 << 20):
                break


def run_all(capture: Path, runs: int, log: bool = True,
            only: Sequence[str] = ()) -> list[Measured]:
    """Measure every comparison (or those whose title contains one of *only*)."""
    warm_page_cache(capture)
    results = [Measured(c) for c in comparisons(capture)
               if not only or any(word in c.title for word in only)]
    peers: dict[tuple[str, ...], list[Sample]] = {}  # a peer shared by comparisons runs once
    for measured in results:
        c = measured.comparison
        if c.peer and shutil.which(c.peer[0]) is None:
            measured.missing = f"{c.peer[0]} is not installed (apt-get install {c.peer[0]})"
            continue
        shared = peers.get(c.peer) if c.peer else None
        if shared is not None:
            measured.peer = shared
        elif c.peer:
            peers[c.peer] = measured.peer
        for i in range(runs):
            pairs = [(c.ours, measured.ours)]
            if c.peer and shared is None:
                pairs.insert(0, (c.peer, measured.peer))
            for argv, samples in pairs:
                sample = measure(argv)
                samples.append(sample)
                if log:
                    status = "" if sample.exit_code == 0 else f"  exit {sample.exit_code}"
                    print(
                        f"  [{i + 1}/{runs}] {shlex.join(argv)}: {sample.wall_s:.2f} s, "
                        f"{sample.max_rss_mb:.0f} MB{status}",
                        file=sys.stderr,
                    )
    return results


def _median(samples: Sequence[Sample]) -> float:
    return statistics.median(s.wall_s for s in samples)


def _peak(samples: Sequence[Sample]) -> float:
    return max(s.max_rss_mb for s in samples)


def _failed(samples: Sequence[Sample]) -> Sample | None:
    return next((s for s in samples if s.exit_code != 0), None)


def display(argv: Sequence[str], capture: Path) -> str:
    """The command as a reader would type it: FILE for the capture, no venv path."""
    words = ["FILE" if a == str(capture) else a for a in argv]
    words[0] = Path(words[0]).name
    return "`" + " ".join(words) + "`"


def table(results: Sequence[Measured], capture: Path, packets: int | None = None) -> str:
    """The rows of one capture; *packets* gives the throughput rows their rate."""
    header = (
        "| command | median wall (s) | runs (s) | peak RSS (MB) | ratio to peer | target "
        "| met |\n| --- | ---: | --- | ---: | ---: | --- | --- |\n"
    )
    rows = []
    shown: set[tuple[str, ...]] = set()
    for m in results:
        c = m.comparison
        if m.missing is not None:
            rows.append(f"| {display(c.ours, capture)} vs {display(c.peer, capture)} | - | - "
                        f"| - | - | {c.target} ({c.source}) | not run: {m.missing} |")
            continue
        ours_shown = c.ours in shown
        for argv, samples, is_ours in ((c.peer, m.peer, False), (c.ours, m.ours, True)):
            if not argv or argv in shown:  # a peer shared by two comparisons gets one row
                continue
            shown.add(argv)
            median = _median(samples)
            runs = ", ".join(f"{s.wall_s:.2f}" for s in samples)
            failed = _failed(samples)
            if not is_ours:
                ratio, target, met = "1.00x", "peer", ""
            else:
                ratio, target, met = _verdict(m, median, failed, packets)
            rows.append(
                f"| {display(argv, capture)} | {median:.2f} | {runs} | {_peak(samples):.0f} "
                f"| {ratio} | {target} | {met} |"
            )
        if ours_shown:
            # our command's row was shown against another peer: this peer's ratio too
            rows.append(_extra_ratio_row(m, capture, packets))
    return header + "\n".join(rows) + "\n"


def _verdict(m: Measured, median: float, failed: Sample | None,
             packets: int | None) -> tuple[str, str, str]:
    """(ratio or rate, target, met) of our command in comparison *m*."""
    c = m.comparison
    targets = [f"{c.target} ({c.source})"]
    if c.max_rss_mb is not None:
        targets.append(f"< {c.max_rss_mb:g} MB")
    if failed is not None:
        return "-", ", ".join(targets), f"no: exit {failed.exit_code}"
    if c.min_rate is not None:
        if packets is None:
            return "-", ", ".join(targets), "unknown packet count"
        rate = packets / median
        ok = rate >= c.min_rate
        shown = f"{rate:,.0f} packets/s"
    else:
        r = median / _median(m.peer)
        ok = r <= c.max_ratio
        shown = f"{r:.2f}x"
    if c.max_rss_mb is not None:
        ok = ok and _peak(m.ours) < c.max_rss_mb
    return shown, ", ".join(targets), "yes" if ok else "no"


def _extra_ratio_row(m: Measured, capture: Path, packets: int | None) -> str:
    """A second target for a command already in the table (e.g. flows against tcptrace
    after flows against tshark): its own runs, this peer's ratio."""
    c = m.comparison
    median = _median(m.ours)
    ratio, target, met = _verdict(m, median, _failed(m.ours), packets)
    runs = ", ".join(f"{s.wall_s:.2f}" for s in m.ours)
    return (f"| {display(c.ours, capture)} vs `{Path(c.peer[0]).name}` | {median:.2f} | {runs} "
            f"| {_peak(m.ours):.0f} | {ratio} | {target} | {met} |")


def failures(results: Sequence[Measured],
             startup: dict[tuple[str, ...], list[Sample]] | None = None) -> list[str]:
    out = []
    for m in results:
        for argv, samples in ((m.comparison.peer, m.peer), (m.comparison.ours, m.ours)):
            failed = _failed(samples)
            if failed is not None:
                out.append(f"{shlex.join(argv)}: exit {failed.exit_code}: {failed.stderr_tail}")
    for argv, samples in (startup or {}).items():
        failed = _failed(samples)
        if failed is not None:
            out.append(f"{shlex.join(argv)}: exit {failed.exit_code}: {failed.stderr_tail}")
    return out


def _command_output(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (proc.stdout + proc.stderr).strip()


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    tcpdump = _command_output(["tcpdump", "--version"]).splitlines()
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "capdissect"])
    return {
        "CPU": f"{cpu} ({os.cpu_count()} logical CPUs as seen by `nproc`)",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "tcpdump": ", ".join(tcpdump[:2]) if tcpdump else "unknown",
        "capdissect": f"commit {commit}" + (" with uncommitted changes" if dirty else ""),
    }


def results_markdown(
    mixes: Sequence[MixResults], runs: int,
    startup: dict[tuple[str, ...], list[Sample]] | None = None,
) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/bench.py --write`); do not edit by hand.",
        "",
        "**What is measured.** Each command runs as a whole process, interpreter start-up",
        "included, with stdout to /dev/null and `TZ=UTC`. Wall time is from spawn to exit",
        "(`os.wait4`). Peak memory is the child's `VmHWM` (its own high-water RSS since",
        "exec), read from /proc every 2 ms; `ru_maxrss` is not used because on Linux exec",
        "keeps the high-water mark of the launching Python process (about 18 MB), which",
        "would hide tcpdump's real figure. The file is read once untimed first (page",
        "cache), then the peer and capdissect run alternately; the table shows the median",
        f"of {runs} runs each and all runs. A peer shared by two rows (tshark, tcptrace) is",
        "timed once. Targets: SPEC §5 (`read --plain -nn -v -X` no slower than tcpdump,",
        "`flows --json` and `timeline --json` at least 3x faster than `tshark -q -z",
        "conv,tcp`, capdissect's peak memory under 150 MB) and issue 19 (`read --plain",
        "-nn` within 2x tcpdump, raised from SPEC's 3x; `flows --json` no slower than",
        "`tcptrace -l` and `timeline --json` within 1.5x of it; annotated `read -n` within",
        "2.5x our `read --plain -nn`; `read --json` at least 100,000 packets/s), each on",
        "both captures. `live` at 20,000 packets/s beside tcpdump is measured by",
        "`benchmarks/live_bench.py` (also run by `make bench`; alone: `make bench-live`)",
        "and recorded in [LIVE.md](LIVE.md).",
        "",
        "**The captures** are real traffic recorded by tcpdump, built by",
        "`benchmarks/gen_capture.py` and cached in `~/.cache/capdissect-bench/` (not in the",
        "repository). `short`: over 127.0.0.1 and ::1, many short TCP connections (one",
        "request and reply each), long TCP request/reply connections, a few 4 MB bulk",
        "transfers, UDP request/reply bursts, and ICMP port unreachable for datagrams sent",
        "to a closed port. `long`: fewer, longer connections with large segments (up to",
        "64 KiB): bulk transfers into a slow reader with a small receive buffer (zero",
        "windows), large unpaced writes, long request/reply connections with replies up to",
        "64 KiB, UDP streams and request/reply, and a 3 MB transfer through a lossy path",
        "between network namespaces (retransmissions, duplicate ACKs, out-of-order",
        "segments), merged in.",
        "",
        "**Reproduce:** `make bench` (building the captures the first time needs root and",
        'tcpdump, about a minute); more runs: `make bench BENCH_ARGS="--runs 5"`.',
        "",
        "## Machine",
        "",
        f"- Date: {now}",
        *(f"- {k}: {v}" for k, v in machine().items()),
    ]
    for mix in mixes:
        title = f"`{mix.mix}` mix" if mix.mix else "capture"
        lines += ["", f"## Results: {title}", "",
                  f"- File: `{mix.capture.name}`, {mix.capture.stat().st_size / 1e6:.1f} MB"]
        if mix.info is not None:
            done = ", ".join(f"{k} {v}" for k, v in mix.info.completed.items())
            lines += [
                f"- Packets: {mix.info.packets:,}",
                f"- Built in {mix.info.seconds} s; client operations completed: {done}",
            ]
        lines += ["", table(mix.results, mix.capture, mix.packets).rstrip("\n")]
    if startup:
        runs_each = len(next(iter(startup.values())))
        lines += [
            "",
            "## Start-up",
            "",
            f"FILE is `captures/{STARTUP_CAPTURE.name}` (11 packets): the run is almost all",
            "interpreter start-up and imports. The first row is the interpreter that runs",
            "capdissect doing nothing, measured in the same run, since a loaded machine",
            f"slows every row; the median of {runs_each} interleaved runs each (one of every",
            "command per round, after an untimed round, with the package's bytecode",
            "compiled as `pip install` leaves it). Target (issue 19): `read --plain -nn`",
            f"within {STARTUP_TARGET_S:g} s wall.",
            "",
            startup_table(startup).rstrip("\n"),
        ]
    problems = failures([m for mix in mixes for m in mix.results], startup)
    if problems:
        lines += ["", "## Failed runs", "", *(f"- {p}" for p in problems)]
    return "\n".join(lines) + "\n"


# Sections of RESULTS.md that other scripts write (export_bench.py, redesign_bench.py,
# notes by hand under "## Notes"): --write keeps them, after its own.
OWN_SECTIONS: Final = ("## Machine", "## Capture", "## Results", "## Start-up",
                       "## Failed runs")


def write_section(section: str, text: str) -> None:
    """Put *text*, which starts with the heading *section*, into RESULTS.md in place of
    an older *section* (or at the end); every other section stays as it is.  For the
    scripts that write one section each (export_bench.py, stages.py, redesign_bench.py)."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    text = text.rstrip("\n") + "\n"
    start = old.find(f"\n{section}\n")
    if start < 0:
        RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)
    else:
        end = old.find("\n## ", start + len(section) + 2)
        after = "" if end < 0 else "\n" + old[end + 1:]
        RESULTS.write_text(old[:start + 1] + text + after)
    print(f"wrote {RESULTS}", file=sys.stderr)


def kept_sections(old: str) -> str:
    """The sections of *old* this script does not write, in their order."""
    parts = old.split("\n## ")[1:]
    kept = ["## " + part.rstrip("\n") for part in parts
            if not ("## " + part).startswith(OWN_SECTIONS)]
    return "\n\n".join(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark capdissect against its peers.")
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/RESULTS.md")
    parser.add_argument("--capture", type=Path, help="use this file instead of the cached ones")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES), default=[],
                        help="only this traffic mix (repeatable; default: all)")
    parser.add_argument("--only", action="append", default=[], metavar="TITLE",
                        help="only comparisons whose title contains TITLE (repeatable), "
                        "e.g. --only flows --only timeline; --only startup: the start-up "
                        "table")
    parser.add_argument("--startup-runs", type=int, default=STARTUP_RUNS,
                        help="runs per command in the start-up table (median)")
    args = parser.parse_args()
    if args.runs < 1 or args.startup_runs < 1:
        parser.error("--runs and --startup-runs must be at least 1")
    only = [word for word in args.only if word != "startup"]
    with_startup = not args.only or "startup" in args.only

    mixes: list[MixResults] = []
    if not args.only or only:
        if args.capture is not None:
            targets: list[tuple[str, Path, CaptureInfo | None]] = [("", args.capture, None)]
            with open_capture(args.capture) as cap:  # pcap or pcapng: for packets/s rows
                packets = sum(1 for _ in cap)
        else:
            targets, packets = [], None
            for name in args.mix or list(MIXES):
                info = ensure_capture(log=lambda m: print(m, file=sys.stderr), mix=name)
                targets.append((name, Path(info.path), info))
        for name, capture, info in targets:
            print(f"benchmarking on {capture} ({args.runs} runs each)", file=sys.stderr)
            mix = MixResults(name, capture, info, run_all(capture, args.runs, only=only),
                             None if info is not None else packets)
            mixes.append(mix)
            print(table(mix.results, capture, mix.packets))
    startup = None
    if with_startup:
        print(f"start-up on {STARTUP_CAPTURE.name} ({args.startup_runs} runs each)",
              file=sys.stderr)
        startup = run_startup(args.startup_runs)
        print(startup_table(startup))
    if args.write:
        kept = kept_sections(RESULTS.read_text()) if RESULTS.exists() else ""
        text = results_markdown(mixes, args.runs, startup)
        RESULTS.write_text(text + ("\n" + kept + "\n" if kept else ""))
        print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
