"""Golden conformance over the core corpus: ``capdissect read FILE --plain OPTIONS`` against
what ``tcpdump -r FILE OPTIONS`` (4.99.3) printed, packet block by packet block.

Each file must not crash (exit 0, no traceback) and must print what tcpdump printed,
block for block: a differing file fails with its first differing block, unless
known_differences.toml lists it with the reason (none is today): then it is an expected
failure, strict, so a fixed difference fails the run until its entry goes.  A listed
file that crashes still fails.  ``test_golden_share`` also tallies the share of identical
blocks per option set, printed at the end of the run (conftest.pytest_terminal_summary).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.golden import (
    MIN_SHARE,
    OPTION_SETS,
    RESULTS,
    CorpusFile,
    GoldenRuns,
    core_files,
    needs_netns,
    netns_prefix,
)


def known_differences() -> dict[tuple[str, str], str]:
    """(file, option set) -> why capdissect's text differs from tcpdump's there."""
    with (Path(__file__).parent / "known_differences.toml").open("rb") as f:
        entries = tomllib.load(f).get("golden", [])
    known = {(entry["file"], entry["options"]): entry["reason"] for entry in entries}
    cases = {(item.name, option_set) for item in core_files() for option_set in OPTION_SETS}
    stale = sorted(set(known) - cases)
    assert not stale, f"known_differences.toml names no golden case: {stale}"
    assert all(known.values()), "every known difference needs its reason"
    return known


KNOWN = known_differences()

# A listed case fails on its first differing block (an AssertionError): expected, strictly.
# A crash goes through pytest.fail, which no xfail here excuses.
CASES = [
    pytest.param(item, option_set, id=f"{item.name}-{option_set}", marks=[
        pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN[item.name, option_set])
    ] if (item.name, option_set) in KNOWN else [])
    for item in core_files()
    for option_set in OPTION_SETS
]


def runnable(item: CorpusFile) -> bool:
    return not needs_netns(item) or netns_prefix() is not None


@pytest.fixture(scope="session")
def golden_runs(request: pytest.FixtureRequest) -> Iterator[GoldenRuns]:
    """Start every capdissect run this session needs at once, in parallel."""
    runs = GoldenRuns()
    selected = {item.name for item in request.session.items}
    wanted = [
        (item.name, option_set)
        for item in core_files()
        for option_set in OPTION_SETS
        if runnable(item)
        and (
            any(name.startswith("test_golden_share") for name in selected)
            or f"test_golden_file[{item.name}-{option_set}]" in selected
        )
    ]
    runs.submit(wanted)
    yield runs
    runs.close()


def test_corpus_is_complete() -> None:
    """The manifest and the copied files agree (67 core captures, two outputs each)."""
    items = core_files()
    assert len(items) == 67
    for item in items:
        assert item.path.is_file(), item.path
        for option_set in OPTION_SETS:
            assert item.expected(option_set).is_file(), item.expected(option_set)


@pytest.mark.parametrize(("item", "option_set"), CASES)
def test_golden_file(item: CorpusFile, option_set: str, golden_runs: GoldenRuns) -> None:
    if not runnable(item):
        pytest.skip("LINUX_SLL2 interface names need `unshare -n` (root), unavailable here")
    outcome = golden_runs.get(item.name, option_set)
    RESULTS[item.name, option_set] = outcome
    problem = outcome.run.problem()
    if problem is not None:
        pytest.fail(f"capdissect read {item.name} --plain -{option_set}: {problem}")
    assert outcome.tally.first_diff is None, (
        f"{outcome.tally.same}/{outcome.tally.total} identical; {outcome.tally.first_diff}"
    )


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
def test_golden_share(option_set: str, golden_runs: GoldenRuns) -> None:
    """At least 99 % of all packet blocks of the core corpus are identical to tcpdump's."""
    same = total = 0
    worst: list[tuple[float, str]] = []
    for item in core_files():
        if not runnable(item):
            continue
        outcome = golden_runs.get(item.name, option_set)
        RESULTS[item.name, option_set] = outcome
        same += outcome.tally.same
        total += outcome.tally.total
        if outcome.tally.first_diff is not None:
            share = outcome.tally.same / max(outcome.tally.total, 1)
            worst.append((share, f"{item.name}: {outcome.tally.first_diff}"))
    assert total > 0
    worst.sort(key=lambda pair: pair[0])
    detail = "\n\n".join(text for _share, text in worst[:3])
    assert same / total >= MIN_SHARE, (
        f"-{option_set}: {same}/{total} = {same / total:.2%} identical, need {MIN_SHARE:.0%}; "
        f"{len(worst)} files differ. Worst first:\n{detail}"
    )
