"""The option matrix: ``tcpdump -r FILE OPTIONS`` against ``capdissect read FILE --plain
OPTIONS`` for every option set of SPEC 3.2, over the core corpus and fresh loopback
captures, compared packet block by packet block.

Cost: 27 option sets over 68 files are ~1,800 pairs of runs.  A capdissect process costs
~0.25 s of CPU to start (the interpreter and imports), so separate processes would need
minutes; instead a few worker processes (``tests.support.matrix_worker``) each take a share of
the pairs, run tcpdump as a child process and capdissect's real command line (the typer
app, with the same argv) in process, and compare the outputs.  The console script
itself is exercised by the golden, live, pipe and option-combination tests.

The workers run in an empty network namespace (``unshare -n``) when this machine allows
it, as the golden corpus does: it models tcpdump's LINUX_SLL2 interface names, and
without ``-n`` it makes sure no DNS query can answer tcpdump (names then come only from
/etc/hosts and /etc/services on both sides, SPEC 3.2).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from tests.support.compare import fixed_env, split_blocks
from tests.support.golden import core_files, needs_netns, netns_prefix

ROOT: Final = Path(__file__).parents[2]

# Each option set as typed after the file name (tcpdump -r FILE ... and capdissect read
# FILE --plain ...).  The expression, when there is one, is the last word.
OPTION_SETS: Final[tuple[tuple[str, ...], ...]] = (
    ("-n",), ("-nn",), (), ("-v",), ("-vv",), ("-x",), ("-xx",), ("-X",), ("-XX",),
    ("-e",), ("-S",), ("-K",), ("-t",), ("-tt",), ("-ttt",), ("-tttt",), ("-ttttt",),
    ("-c", "5"),
    ("-nn", "-vv", "-e", "-XX", "-S"),
    ("-n", "-tttt", "-x", "-K"),
    ("-vv", "-K", "-e", "-ttttt"),
    ("-nn", "-v", "-X", "-ttt"),
    ("tcp and port 30002",),
    ("-nn", "udp"),
    ("-nn", "-v", "ip6"),
    ("-S", "tcp[tcpflags] & tcp-syn != 0"),
    ("-nn", "-c", "3", "tcp"),
    ("-ttt", "-e", "not tcp"),
)  # fmt: skip
MIN_SHARE: Final = 0.99  # identical packet blocks per option set
WORKER_TIMEOUT_S: Final = 600.0


# -ttt and -ttttt print the time since the previous / first packet with a sign column:
# " 00:00:00.000295" (or "-00:00:01.000000"), so a packet's first line can start with a
# space, which split_blocks takes for a continuation line.
_RELATIVE_TIME: Final = re.compile(r"[ -]\d+:\d\d:\d\d\.\d+ ")


def split_packets(text: str, options: Sequence[str]) -> list[str]:
    """Per-packet blocks of tcpdump-style *text* printed with *options*."""
    if not any(re.fullmatch(r"-ttt(tt)?", word) for word in options):
        return split_blocks(text)
    blocks: list[str] = []
    for line in text.splitlines(keepends=True):
        if blocks and not _RELATIVE_TIME.match(line):
            blocks[-1] += line
        else:
            blocks.append(line)
    return blocks


def set_id(options: Sequence[str]) -> str:
    """How an option set is named in test ids and the summary."""
    return " ".join(f"'{word}'" if " " in word else word for word in options) or "(none)"


def resolves_names(options: Sequence[str]) -> bool:
    return not any(word.startswith("-n") for word in options)


@dataclass(frozen=True, slots=True)
class Job:
    group: str  # "corpus" or "live"
    source: str  # the file's name in the summary
    path: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobResult:
    """One (file, option set) pair, judged by the worker."""

    group: str
    source: str
    options: tuple[str, ...]
    same: int
    total: int
    first_diff: str | None
    tcpdump_status: int
    tcpdump_error: str
    capdissect_status: int
    capdissect_error: str
    problem: str | None  # a traceback or timeout on our side

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> JobResult:
        fields = dict(raw)
        fields["options"] = tuple(fields["options"])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]


def corpus_jobs() -> tuple[list[Job], list[str]]:
    """Every core file with every option set; and why any pair is left out."""
    jobs = []
    left_out = []
    netns = netns_prefix() is not None
    for item in core_files():
        if needs_netns(item) and not netns:
            left_out.append(f"{item.name}: LINUX_SLL2 interface names need `unshare -n`")
            continue
        for options in OPTION_SETS:
            if resolves_names(options) and not netns:
                continue  # tcpdump might ask DNS; only an empty namespace rules that out
            jobs.append(Job("corpus", item.name, str(item.path), options))
    if not netns:
        left_out.append("option sets without -n: no `unshare -n` to keep tcpdump off DNS")
    return jobs, left_out


def file_jobs(group: str, paths: Iterable[Path]) -> list[Job]:
    netns = netns_prefix() is not None
    return [
        Job(group, path.name, str(path), options)
        for path in paths
        for options in OPTION_SETS
        if netns or not resolves_names(options)
    ]


class MatrixRuns:
    """Worker processes started at once; ``results()`` waits for them (bounded)."""

    def __init__(self, jobs: Sequence[Job], workers: int | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="capdissect-matrix-")
        count = max(1, min(workers or (os.cpu_count() or 2), len(jobs)))
        # Deal the jobs out largest file first, so the workers finish close together.
        ordered = sorted(jobs, key=lambda job: -Path(job.path).stat().st_size)
        shares = [ordered[i::count] for i in range(count)]
        self._procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        for index, share in enumerate(shares):
            jobs_file = Path(self._tmp.name) / f"jobs-{index}.json"
            out_file = Path(self._tmp.name) / f"results-{index}.json"
            jobs_file.write_text(json.dumps([asdict(job) for job in share]))
            argv = [*(netns_prefix() or ()), sys.executable, "-m", "tests.support.matrix_worker",
                    str(jobs_file), str(out_file)]
            proc = subprocess.Popen(argv, cwd=ROOT, env=fixed_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self._procs.append((proc, jobs_file, out_file))
        self._results: dict[tuple[str, tuple[str, ...]], JobResult] | None = None

    def results(self) -> dict[tuple[str, tuple[str, ...]], JobResult]:
        """(source, options) -> result for every job; raises if a worker failed."""
        if self._results is None:
            found: dict[tuple[str, tuple[str, ...]], JobResult] = {}
            failures = []
            for proc, _jobs_file, out_file in self._procs:
                try:
                    _out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    failures.append(f"worker timed out after {WORKER_TIMEOUT_S:.0f} s")
                    continue
                if proc.returncode != 0 or not out_file.exists():
                    failures.append(f"worker exit {proc.returncode}: "
                                    f"{err.decode('utf-8', 'replace')[-3000:]}")
                    continue
                for raw in json.loads(out_file.read_text()):
                    result = JobResult.from_json(raw)
                    found[result.source, result.options] = result
            if failures:
                raise RuntimeError("option-matrix worker failed: " + "\n".join(failures))
            self._results = found
        return self._results

    def close(self) -> None:
        for proc, _jobs_file, _out_file in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self._tmp.cleanup()


@dataclass(frozen=True, slots=True)
class SetTally:
    same: int
    total: int
    files: int
    differing: tuple[str, ...]  # "file: first difference", worst first

    @property
    def share(self) -> float:
        return self.same / self.total if self.total else 1.0


def tally(results: Iterable[JobResult]) -> SetTally:
    same = total = files = 0
    differing: list[tuple[float, str]] = []
    for result in results:
        same += result.same
        total += result.total
        files += 1
        if result.first_diff is not None:
            share = result.same / max(result.total, 1)
            differing.append((share, f"{result.source}: {result.first_diff}"))
    differing.sort(key=lambda pair: pair[0])
    return SetTally(same, total, files, tuple(text for _share, text in differing))


# Filled by the tests, printed by conftest.pytest_terminal_summary: (group, set id) -> tally
RESULTS: dict[tuple[str, str], SetTally] = {}


def summary_lines(results: Mapping[tuple[str, str], SetTally]) -> list[str]:
    if not results:
        return []
    groups = [g for g in ("corpus", "live") if any(key[0] == g for key in results)]
    ids = [set_id(options) for options in OPTION_SETS]
    width = max(len(i) for i in ids)
    lines = ["  ".join([f"{'option set':<{width}}", *(f"{g:>26}" for g in groups)])]
    for ident in ids:
        cells = []
        for group in groups:
            found = results.get((group, ident))
            if found is None:
                cells.append(f"{'-':>26}")
                continue
            cell = f"{found.same}/{found.total} ({found.share:.2%})"
            cells.append(f"{cell:>19} {len(found.differing):>2}/{found.files:<3}")
        lines.append("  ".join([f"{ident:<{width}}", *cells]))
    lines.append("(identical packet blocks / all; then files with a difference / files)")
    return lines
