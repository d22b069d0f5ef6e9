"""The golden corpus: capture files from public test suites with tcpdump 4.99.3's output
beside them (tests/corpus/README.md says where each comes from and the exact command).

This module loads the manifest, runs capdissect over the corpus in parallel (one process
per file and option set, started once per session), and keeps the per-file tally that
the terminal summary prints.
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from tests.support.compare import Run, Tally, capdissect_command, compare_blocks, run, split_blocks

CORPUS: Final = Path(__file__).parents[1] / "corpus"
EXPECTED: Final = CORPUS / "expected"

# option-set id (the expected file's suffix) -> tcpdump/capdissect options
OPTION_SETS: Final[Mapping[str, tuple[str, ...]]] = {
    "nn": ("-nn",),
    "nn-v-X": ("-nn", "-v", "-X"),
}
MIN_SHARE: Final = 0.99  # identical packet blocks over all core files, per option set


@dataclass(frozen=True, slots=True)
class CorpusFile:
    name: str
    link_type: str
    packets: int

    @property
    def path(self) -> Path:
        return CORPUS / self.name

    def expected(self, option_set: str) -> Path:
        return EXPECTED / f"{self.name}.{option_set}.txt"


@cache
def core_files() -> tuple[CorpusFile, ...]:
    with (CORPUS / "MANIFEST.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return tuple(
        CorpusFile(row["file"], row["link_type"], int(row["tcpdump_packets"]))
        for row in rows
        if row["scope"] == "core"
    )


@cache
def netns_prefix() -> tuple[str, ...] | None:
    """``("unshare", "-n")`` if this machine can run a process in a fresh, empty network
    namespace, else None.

    The expected outputs were made there: tcpdump names a LINUX_SLL2 packet's interface
    with if_indextoname() on the reading machine, and in an empty namespace only
    ifindex 1 (``lo``) exists, so 1 prints ``lo`` and anything else ``?``.  Running
    capdissect the same way models exactly that.
    """
    try:
        probe = subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return ("unshare", "-n") if probe.returncode == 0 else None


def needs_netns(item: CorpusFile) -> bool:
    return item.link_type == "LINUX_SLL2"


@dataclass(frozen=True, slots=True)
class Outcome:
    """capdissect's run over one corpus file with one option set, judged."""

    file: CorpusFile
    option_set: str
    run: Run
    tally: Tally


def run_one(item: CorpusFile, option_set: str) -> Outcome:
    prefix = netns_prefix() or ()
    argv = [*prefix, *capdissect_command(), "read", item.name, "--plain"]
    result = run([*argv, *OPTION_SETS[option_set]], cwd=CORPUS)
    want = split_blocks(item.expected(option_set).read_text("latin-1"))
    return Outcome(item, option_set, result, compare_blocks(want, split_blocks(result.stdout)))


class GoldenRuns:
    """Runs are submitted to a thread pool up front (each thread waits on one process, so
    the processes run in parallel) and collected when a test asks for them."""

    def __init__(self, workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers or max(2, (os.cpu_count() or 1) * 2))
        self._futures: dict[tuple[str, str], Future[Outcome]] = {}
        self.outcomes: dict[tuple[str, str], Outcome] = {}

    def submit(self, keys: Iterable[tuple[str, str]]) -> None:
        by_name = {item.name: item for item in core_files()}
        for name, option_set in keys:
            if (name, option_set) not in self._futures:
                future = self._pool.submit(run_one, by_name[name], option_set)
                self._futures[name, option_set] = future

    def get(self, name: str, option_set: str) -> Outcome:
        self.submit([(name, option_set)])
        outcome = self._futures[name, option_set].result()  # run() bounds each process
        self.outcomes[name, option_set] = outcome
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# Filled by the tests, printed by conftest.pytest_terminal_summary.
RESULTS: dict[tuple[str, str], Outcome] = {}


def summary_lines(results: Mapping[tuple[str, str], Outcome]) -> list[str]:
    """Per-file ``same/total`` for each option set, then the totals and the worst diffs."""
    if not results:
        return []
    sets = [s for s in OPTION_SETS if any(key[1] == s for key in results)]
    names = sorted({key[0] for key in results})
    width = max(len(n) for n in names)
    lines = ["  ".join([f"{'file':<{width}}", *(f"{s:>12}" for s in sets)])]
    totals = {s: [0, 0] for s in sets}
    for name in names:
        cells = []
        for s in sets:
            outcome = results.get((name, s))
            if outcome is None:
                cells.append(f"{'-':>12}")
                continue
            crashed = "!" if outcome.run.problem() else " "
            cells.append(f"{outcome.tally.same:>5}/{outcome.tally.total:<5}{crashed}")
            totals[s][0] += outcome.tally.same
            totals[s][1] += outcome.tally.total
        lines.append("  ".join([f"{name:<{width}}", *cells]))
    for s in sets:
        same, total = totals[s]
        share = same / total if total else 0.0
        lines.append(f"total {s}: {same}/{total} packet blocks identical ({share:.2%})")
    lines.append("(! = the process failed: exit status, traceback or timeout)")
    return lines
