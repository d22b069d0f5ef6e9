"""The campaign of issue 21: structure-aware mutants through every command, under caps.

``python -m fuzz.campaign --mutants N --seed S --workers W [--keep DIR]``

Each mutant (``fuzz/mutate.py``) is written to a file and run through every command:
``read --plain -nn -v -X``, ``read --json``, ``timeline --json``, ``timeline --svg``,
``flows --json``, ``sockets --every``, ``handout`` (Markdown and HTML) and ``annotate``,
each under a time cap (an alarm) and a memory cap (RLIMIT_AS on the worker, and its peak
resident size checked after every command).

``tcpdump -r F -nn -v -X`` (``zcat F |`` before it for gzip) gives the packet count to
compare with: every command must account for at least as many packets as tcpdump prints
(``read``'s blocks and JSON lines, the ``packets`` of the JSON reports, the packets
``annotate`` wrote).  A run fails on a traceback, a hang, the memory cap, fewer packets
than tcpdump, output that is not the JSON it should be, a hidden crash (a ``kind: bug``
record or a "cannot print packet" line), an exit that is not 0 or 1 with one error line,
markup from the capture in a handout or SVG, or a control character in any output.

Starting Python costs ~0.4 s, so commands run in-process, through the typer app as the
console script runs them (``typer.testing.CliRunner``), inside a few long-lived worker
processes; only tcpdump starts per mutant.  ``tests/properties/test_campaign.py`` runs a
fixed seed in ``make test``; ``make fuzz`` runs a longer one.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
COMMAND_TIMEOUT_S: Final = 20  # a mutant is a dozen packets: milliseconds when all is well
MUTANT_TIMEOUT_S: Final = 120  # the parent's watchdog over a worker
ADDRESS_SPACE: Final = 1 << 30  # RLIMIT_AS of a worker: a runaway ends in MemoryError
PEAK_LIMIT_KB: Final = 200 * 1024  # resident size no command may push a worker past
REPORTS: Final = ("timeline-json", "timeline-svg", "flows-json", "sockets-every",
                  "handout-md", "handout-html", "annotate")
KINDS: Final = ("traceback", "hang", "memory", "fewer-packets", "bad-json", "hidden-crash",
                "exit-status", "markup", "escape-codes")
_HTML_MARKUP: Final = re.compile(r"<(script|iframe|object|embed)\b|<[a-z][^>]*\son[a-z]+\s*="
                                 r"|(href|src)\s*=\s*[\"']?\s*javascript:", re.I)
_MD_MARKUP: Final = re.compile(r"<(script|iframe|img|object|embed|svg|a)\b|\]\(javascript:",
                               re.I)


@dataclass(frozen=True)
class Failure:
    mutant: int
    command: str
    kind: str
    detail: str

    def key(self) -> str:
        return f"{self.mutant} {self.command} {self.kind}"


@dataclass
class Summary:
    mutants: int = 0
    runs: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)


COMMANDS: Final = ("read-plain", "read-json", *REPORTS)


# ----- the worker: one long-lived process running commands in-process -----------------------
class Hang(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception`` can swallow it."""


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang


def _argv(command: str, path: str, out: str) -> list[str]:
    return {
        "read-plain": ["read", path, "--plain", "-nn", "-v", "-X"],
        "read-json": ["read", path, "--json"],
        "timeline-json": ["timeline", path, "--json"],
        "timeline-svg": ["timeline", path, "--svg", f"{out}.svg"],
        "flows-json": ["flows", path, "--json"],
        "sockets-every": ["sockets", path, "--every"],
        "handout-md": ["handout", path, "-o", f"{out}.md"],
        "handout-html": ["handout", path, "-o", f"{out}.html"],
        "annotate": ["annotate", path, "-o", f"{out}.pcapng"],
    }[command]


def tcpdump_count(path: str, gzipped: bool) -> int:
    """How many packets ``tcpdump -r`` prints before it stops (through zcat for gzip)."""
    tcpdump = ["tcpdump", "-r", "-" if gzipped else path, "-nn", "-v", "-X"]
    with tempfile.TemporaryFile() as out:
        if gzipped:
            with open(path, "rb") as source:
                zcat = subprocess.Popen(["zcat"], stdin=source, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
                assert zcat.stdout is not None
                subprocess.run(tcpdump, stdin=zcat.stdout, stdout=out,
                               stderr=subprocess.DEVNULL, timeout=60, check=False)
                zcat.stdout.close()
                zcat.wait(60)
        else:
            subprocess.run(tcpdump, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)
        out.seek(0)
        return sum(1 for line in out if line[:1] not in (b" ", b"\t"))


def _unprintable(text: str) -> bool:
    return any(not line.isprintable() for line in text.replace("\t", " ").splitlines())


def check_run(command: str, out: str, code: int, stdout: str, stderr: str,
              expected: int) -> list[tuple[str, str]]:
    """What is wrong with one finished command: (kind, detail) pairs."""
    problems: list[tuple[str, str]] = []
    errors = [line for line in stderr.splitlines() if line.startswith("capdissect:")]
    if code not in (0, 1) or (code == 1) != (len(errors) == 1) or len(errors) > 1:
        problems.append(("exit-status", f"exit {code}, stderr {stderr[-300:]!r}"))
    if _unprintable(stdout) or _unprintable(stderr):
        problems.append(("escape-codes", "a control character in the output"))
    counted: int | None = None
    if command == "read-plain":
        blocks = [line for line in stdout.splitlines() if line[:1] not in (" ", "\t")]
        counted = len(blocks)
        if any(line.startswith("[capdissect: cannot print packet") for line in blocks):
            problems.append(("hidden-crash", "a packet the printer failed on"))
    elif command == "read-json":
        lines = stdout.splitlines()
        counted = len(lines)
        try:
            records = [json.loads(line) for line in lines]
        except ValueError as exc:
            problems.append(("bad-json", str(exc)))
        else:
            if any((r.get("error") or {}).get("kind") == "bug" for r in records):
                problems.append(("hidden-crash", "a kind:bug record"))
    elif command in ("timeline-json", "flows-json") and (stdout or code == 0):
        try:  # (a file that cannot be opened at all gives its error line and no document)
            counted = int(json.loads(stdout)["packets"])
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(("bad-json", f"{type(exc).__name__}: {exc}"))
    elif command in ("timeline-json", "flows-json"):
        counted = 0
    elif command == "annotate":
        counted = _packets_in(f"{out}.pcapng")
    if counted is not None and counted < expected:
        problems.append(("fewer-packets", f"{counted} packets, tcpdump printed {expected}"))
    problems += _check_files(command, out, code)
    return problems


def _check_files(command: str, out: str, code: int) -> list[tuple[str, str]]:
    suffix = {"timeline-svg": ".svg", "handout-md": ".md", "handout-html": ".html"}.get(command)
    if suffix is None or code != 0:
        return []
    try:
        text = Path(out + suffix).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [("markup", f"no readable output file: {exc}")]
    pattern = _MD_MARKUP if suffix == ".md" else _HTML_MARKUP
    problems = []
    if (found := pattern.search(_outside_code(text) if suffix == ".md" else text)) is not None:
        problems.append(("markup", f"{found.group(0)!r} in the {suffix} file"))
    if _unprintable(text.replace("\r", "")):
        problems.append(("escape-codes", f"a control character in the {suffix} file"))
    return problems


def _outside_code(markdown: str) -> str:
    """Markdown without its code (fenced blocks, indented lines): text there is shown as
    it is, never rendered, so a ``<`` in a hex dump is no markup."""
    kept = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and not line.startswith(("\t", "    ")):
            kept.append(line)
    return "\n".join(kept)


def _packets_in(path: str) -> int:
    from capdissect.errors import CapdissectError
    from capdissect.sources import open_capture

    count = 0
    try:
        with open_capture(path) as capture:
            for _ in capture:
                count += 1
    except (CapdissectError, OSError):
        pass
    return count


def run_mutant(runner: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    from capdissect.cli import app

    path, index = job["path"], job["index"]
    expected = tcpdump_count(path, job["gzip"])
    failures = []
    for command in job["commands"]:
        out = f"{path}.{command}"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        problems: list[tuple[str, str]] = []
        signal.setitimer(signal.ITIMER_REAL, COMMAND_TIMEOUT_S)
        try:
            result = runner.invoke(app, _argv(command, path, out))
        except Hang:
            result = None
            problems.append(("hang", f"over {COMMAND_TIMEOUT_S} s"))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if result is not None:
            exc = result.exception
            if isinstance(exc, MemoryError):
                problems.append(("memory", "MemoryError at the address-space cap"))
            elif exc is not None and not isinstance(exc, SystemExit):
                problems.append(("traceback", "".join(traceback.format_exception(exc))[-2000:]))
            else:
                problems += check_run(command, out, result.exit_code, result.stdout,
                                      result.stderr, expected)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if peak > PEAK_LIMIT_KB >= before:
            problems.append(("memory", f"peak {peak // 1024} MB"))
        failures += [{"mutant": index, "command": command, "kind": kind, "detail": detail}
                     for kind, detail in problems]
        for suffix in (".svg", ".md", ".html", ".pcapng"):
            Path(out + suffix).unlink(missing_ok=True)
    return failures


def worker() -> None:
    """Read jobs (JSON lines) from stdin, answer each with its failures on the channel
    that was stdout; the commands' own output goes to CliRunner, fd 1 to /dev/null."""
    import typer.main
    import typer.testing

    from capdissect.cli import app

    # CliRunner builds the click command from the typer app on every invoke (~25 ms, most
    # of a command's run on a small capture); the console script builds it once per
    # process, and so does the worker.
    command = typer.main.get_command(app)
    typer.testing._get_command = lambda _app: command  # type: ignore[attr-defined,assignment]
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    signal.signal(signal.SIGALRM, _alarm)
    os.environ.update({"TZ": "UTC", "LC_ALL": "C"})
    time.tzset()
    runner = typer.testing.CliRunner()
    for line in sys.stdin:
        job = json.loads(line)
        channel.write(json.dumps(run_mutant(runner, job)) + "\n")


# ----- the parent: make mutants, hand them out, gather what failed -----------------------
def _mutants(seed: int, count: int, directory: Path) -> Iterator[dict[str, Any]]:
    from fuzz.mutate import Mutator

    mutator = Mutator(seed)
    for index in range(count):
        what, data = mutator.mutant()
        gzipped = data[:2] == b"\x1f\x8b"
        path = directory / f"m{index:05d}.{'pcap.gz' if gzipped else 'pcap'}"
        path.write_bytes(data)
        yield {"index": index, "what": what, "path": str(path), "gzip": gzipped,
               "commands": COMMANDS}


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fuzz.campaign", "--worker"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, job: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The job's failures, or None if the worker did not answer in time (killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        ready, _, _ = select.select([self.proc.stdout], [], [], MUTANT_TIMEOUT_S)
        answer = self.proc.stdout.readline() if ready else ""
        if not answer:
            self.stop()
            return None
        result: list[dict[str, Any]] = json.loads(answer)
        return result

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_campaign(seed: int, count: int, workers: int, keep: Path | None = None) -> Summary:
    summary = Summary()
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    lock = threading.Lock()
    what: dict[int, str] = {}

    def serve() -> None:
        current = Worker()
        try:
            while (job := jobs.get()) is not None:
                found = current.ask(job)
                if found is None:  # killed by the watchdog: a hang of the whole worker
                    found = [{"mutant": job["index"], "command": "+".join(job["commands"]),
                              "kind": "hang", "detail": "the worker died or gave no answer "
                              f"in {MUTANT_TIMEOUT_S} s"}]
                    current = Worker()
                with lock:
                    summary.mutants += 1
                    summary.runs.update(job["commands"])
                    summary.failures += [Failure(**f) for f in found]
                    if found and keep is not None:
                        keep.mkdir(parents=True, exist_ok=True)
                        Path(job["path"]).rename(keep / Path(job["path"]).name)
        finally:
            current.stop()

    with tempfile.TemporaryDirectory(prefix="capdissect-campaign-") as tmp:
        threads = [threading.Thread(target=serve) for _ in range(workers)]
        for thread in threads:
            thread.start()
        try:
            for job in _mutants(seed, count, Path(tmp)):
                what[job["index"]] = job["what"]
                jobs.put(job)
        finally:  # however the loop ends, the workers are told to stop and are waited for
            for _ in threads:
                jobs.put(None)
            for thread in threads:
                thread.join()
    summary.failures.sort(key=lambda f: (f.mutant, f.command, f.kind))
    summary.failures = [Failure(f.mutant, f.command, f.kind, f"{what[f.mutant]}: {f.detail}")
                        for f in summary.failures]
    return summary


def report(summary: Summary, seconds: float, ignored: set[str] | None = None) -> str:
    """One line: mutants, runs per command, failures per kind (the *ignored* apart)."""
    ignored = ignored or set()
    counts = Counter(f.kind for f in summary.failures if f.key() not in ignored)
    kinds = ", ".join(f"{kind} {counts[kind]}" for kind in KINDS)
    runs = ", ".join(f"{command} {n}" for command, n in sorted(summary.runs.items()))
    matched = sum(1 for f in summary.failures if f.key() in ignored)
    return (f"campaign: {summary.mutants} mutants, {sum(summary.runs.values())} command runs "
            f"in {seconds:.0f} s ({runs}); failures: {kinds}"
            + (f"; ignored: {matched}" if ignored else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mutants", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--keep", type=Path, help="keep failing mutants in this folder")
    parser.add_argument("--ignore", action="append", default=[], metavar="COMMAND:KIND",
                        help="a kind of failure of one command that is a known defect with "
                        "an open issue: printed, but not failing the run")
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    start = time.monotonic()
    summary = run_campaign(args.seed, args.mutants, args.workers, args.keep)
    ignored = {f.key() for f in summary.failures if f"{f.command}:{f.kind}" in args.ignore}
    for failure in summary.failures:
        mark = " (ignored)" if failure.key() in ignored else ""
        detail = failure.detail  # what was mutated, then the problem (a traceback's end)
        shown = detail if len(detail) <= 800 else f"{detail[:300]} ... {detail[-500:]}"
        print(f"FAIL{mark} {failure.key()}: {shown}")
    print(report(summary, time.monotonic() - start, ignored))
    sys.exit(1 if len(ignored) < len(summary.failures) else 0)


if __name__ == "__main__":
    main()
