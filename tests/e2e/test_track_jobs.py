"""``flows -j N`` and ``timeline -j N``: the report made from N worker processes, each
tracking its share of the connections, is the report one process makes, byte for byte,
in every format, to the end of a damaged file; where the shards cannot follow one
tracker (a refused UDP datagram, a table that may fill) the output is still the same.

Rounds are made tiny here (``rounds.TRACK_ROUND``) so that the small captures of the
corpus are reported in many rounds; forked workers see the patched value.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capdissect.commands import handout, reports, rounds
from capdissect.errors import CapdissectError
from capdissect.report.json.document import events_text
from capdissect.report.timeline.ladder import ladder_text, mermaid_text_after
from capdissect.tracking.shards import Merge
from capdissect.tracking.stream import Totals, finished
from tests.support.compare import capdissect_command, run
from tests.support.shardwatch import capture_file, watch_dealing
from tests.unit.test_packetjson import ALL_FILES, CAPTURES
from tests.unit.test_shards import lingering_capture

DAMAGED = Path(__file__).parents[1] / "damaged"
FLOWS = ("json", "csv", "table")
TIMELINES = ("json", "text", "mermaid", "svg")


@pytest.fixture(autouse=True)
def tiny_rounds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rounds, "TRACK_ROUND", 3)
    yield


def flows(path: Path, fmt: str, jobs: int) -> str:
    return "".join(reports.flows(path, fmt, jobs=jobs))  # type: ignore[arg-type]


def timeline(path: Path, fmt: str, jobs: int) -> str:
    return "".join(reports.timeline(path, fmt, jobs=jobs))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_two_processes_report_what_one_reports(path: Path) -> None:
    assert flows(path, "json", 2) == flows(path, "json", 1)
    for fmt in ("json", "text", "mermaid"):  # the formats whose flows the workers write
        assert timeline(path, fmt, 2) == timeline(path, fmt, 1), fmt


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_every_format_of_the_lessons(path: Path) -> None:
    for fmt in FLOWS:
        assert flows(path, fmt, 3) == flows(path, fmt, 1), fmt
    for fmt in TIMELINES:
        assert timeline(path, fmt, 3) == timeline(path, fmt, 1), fmt


@pytest.fixture(scope="module")
def lingering(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/unit/test_shards.py's capture of lessons replayed for 2.5 hours, as a file."""
    return capture_file(tmp_path_factory.mktemp("jobs") / "lingering.pcap", lingering_capture())


def test_flows_that_linger_and_reuse_ports(lingering: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in FLOWS:
        assert flows(lingering, fmt, 2) == flows(lingering, fmt, 1), fmt
    assert timeline(lingering, "json", 3) == timeline(lingering, "json", 1)
    monkeypatch.setattr(rounds, "TRACK_ROUND", 500)
    assert flows(lingering, "json", 2) == flows(lingering, "json", 1)


def test_a_full_table_falls_back_to_one_process(lingering: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The shards give up part-way: the flows given so far are not given twice."""
    monkeypatch.setattr(rounds, "TRACK_ROUND", 20)
    one = flows(lingering, "csv", 1)
    monkeypatch.setattr(rounds, "Merge", functools.partial(Merge, max_open=14))
    assert flows(lingering, "csv", 2) == one
    for fmt in ("text", "json"):  # json: some flows' events made by the workers
        assert timeline(lingering, fmt, 2) == timeline(lingering, fmt, 1), fmt


@pytest.mark.parametrize("fmt", ["json", "text", "mermaid"])
def test_the_workers_make_the_events_text(lingering: Path, fmt: str) -> None:
    """timeline -j in JSON, text and Mermaid: each flow comes with its events as the text
    the workers made and spooled, not as events, and it is the text one process makes
    (the JSON events; the ladder after its title, the diagram after its first two lines:
    those number the flow, which only the parent can)."""
    totals = Totals()
    one = list(finished(reports.steps(lingering), totals, events=True))
    render = reports._worker_text(fmt)  # type: ignore[arg-type]
    assert render is not None and totals.first_ts is not None
    made = list(rounds.sharded_flows(lingering, 2, Totals(), lambda: iter(()), events=True,
                                     render=render))
    assert len(made) == len(one) > 100
    for ours, theirs in zip(made, one, strict=True):
        assert isinstance(ours.text, rounds.Spooled) and ours.events == ()
        expected = (events_text(theirs) if fmt == "json"
                    else ladder_text(theirs, totals.first_ts) if fmt == "text"
                    else mermaid_text_after(theirs, totals.first_ts))
        text = "".join(ours.text)
        assert text == "".join(expected) != ""
        if fmt != "json":  # no title, nothing that numbers the flow
            first = text.split("\n", 1)[0]
            assert not first.startswith("sequenceDiagram"), first
            assert "connection" not in first and "conversation" not in first, first


@pytest.mark.parametrize("found", [True, False])
def test_refused_udp_is_tracked_with_its_refuser_in_one_process(
        found: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """udp-unreachable's ICMP errors: the refusing endpoint is found first and pinned to
    one worker; had it not been found, the shards start again with all of UDP in one.
    The worker processes that made the output say how by their PIDs."""
    workers = watch_dealing(tmp_path / "made", monkeypatch, found=found)
    path = CAPTURES / "udp-unreachable.pcap"
    for fmt in TIMELINES:
        assert timeline(path, fmt, 2) == timeline(path, fmt, 1), fmt
    assert {how for _, how in workers()} == ({"pinned"} if found else {"hash", "alone"})
    assert str(os.getpid()) not in {pid for pid, _ in workers()}


def test_a_damaged_file_gives_the_same_report_and_error(tmp_path: Path) -> None:
    damaged = DAMAGED / "D01_truncated_tcp_basic.pcap"
    for command in (["flows", "--json"], ["timeline"], ["flows", "--csv"]):
        one = run([*capdissect_command(), *command, str(damaged)])
        two = run([*capdissect_command(), *command, str(damaged), "-j", "2"])
        assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout,
                                                            one.stderr)
        assert one.returncode == 1 and one.stdout and "Traceback" not in one.stderr
    with pytest.raises(CapdissectError) as error:
        flows(tmp_path, "json", 2)  # a directory: not a capture, before any output
    assert str(tmp_path) in str(error.value)


def test_jobs_refused_where_they_cannot_work() -> None:
    path = str(CAPTURES / "tcp-basic.pcap")
    for args, words in ((["flows", "-", "-j", "2"], "not a regular file"),
                        (["timeline", path, "-j", "0"], "invalid number of jobs 0"),
                        (["flows", path, "--jobs", "-1"], "invalid number of jobs -1"),
                        (["flows", path, "-j", "65"], "invalid number of jobs 65 (1 to 64)")):
        result = run([*capdissect_command(), *args])
        assert result.returncode == 1 and not result.stdout, args
        assert result.stderr.strip().splitlines()[-1].startswith("capdissect: "), args
        assert words in result.stderr, args
    two = run([*capdissect_command(), "flows", path, "--csv", "-j", "2"])
    one = run([*capdissect_command(), "flows", path, "--csv"])
    assert two.returncode == 0 and two.stdout == one.stdout != ""


def test_a_spool_that_cannot_be_written_is_one_error_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under the workers' spool files: the error the worker met, as the
    report's error, not a traceback."""
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)  # in the forked workers too
    with pytest.raises(CapdissectError) as error:
        timeline(CAPTURES / "tcp-basic.pcap", "json", 2)
    assert "cannot write a worker's spool file" in str(error.value)
    assert "No space left on device" in str(error.value)


def _flow_count(path: Path) -> int:
    totals = Totals()
    for _ in finished(reports.steps(path), totals):
        pass
    return totals.flows


def _one_flow_both_ways(path: Path, conn: int) -> tuple[object, object]:
    """``handout --conn`` 's packets of flow *conn*, found by one process and by two
    (as frame numbers, the numbering, and the damage), or the error each raised."""
    def seen(find: Callable[[], object]) -> object:
        try:
            packets, numbering, truncated, names = find()  # type: ignore[misc]
        except CapdissectError as exc:
            return type(exc).__name__, str(exc)
        return ([p.raw for p in packets], numbering,
                None if truncated is None else (truncated.after_frame, str(truncated.error)),
                names)
    return (seen(lambda: handout._one_flow(path, conn)),
            seen(lambda: handout._one_flow_jobs(path, conn, 2)  # as write_handout has it
                 or handout._one_flow(path, conn)))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_a_handout_of_one_flow_finds_the_packets_one_process_finds(path: Path) -> None:
    """handout --conn N -j 2: the shards number the flows until N (rounds of 3 frames
    here, so they stop part-way), then one shard that tracks only N's bucket keeps its
    packets.  Every flow of the lessons; the first three and the last elsewhere; and a
    number past the last (the same error)."""
    count = _flow_count(path)
    wanted = range(1, count + 2) if path.parent == CAPTURES else {
        *range(1, min(count, 3) + 1), count, count + 1}
    for conn in sorted(wanted):
        one, two = _one_flow_both_ways(path, conn)
        assert two == one, conn


def test_a_handout_of_one_flow_that_lingers_and_reuses_ports(lingering: Path) -> None:
    count = _flow_count(lingering)
    assert count > 250
    for conn in (1, 2, 3, 5, 8, 50, 150, count // 2, count - 1, count):
        one, two = _one_flow_both_ways(lingering, conn)
        assert two == one and one[0], conn  # type: ignore[index]


def test_handout_j_through_the_cli(tmp_path: Path) -> None:
    """The same file, the same error line and status, for a flow, a damaged file and a
    flow that is not there; -j is refused as flows refuses it."""
    lesson = str(CAPTURES / "udp-connected.pcap")  # two conversations, an ICMP error
    damaged = str(DAMAGED / "D01_truncated_tcp_basic.pcap")
    for path, conn in ((lesson, "1"), (lesson, "2"), (damaged, "1"), (lesson, "99")):
        made = []
        out = tmp_path / "handout.md"  # its name is in the "wrote" line
        for jobs in ((), ("-j", "2")):
            result = run([*capdissect_command(), "handout", path, "--conn", conn, "-o",
                          str(out), *jobs])
            made.append((result.returncode, result.stderr,
                         out.read_text() if out.exists() else None))
            out.unlink(missing_ok=True)
        assert made[1] == made[0], (path, conn)
        assert made[0][0] == (1 if conn == "99" or path == damaged else 0), made[0]
    result = run([*capdissect_command(), "handout", lesson, "--conn", "1", "-o",
                  str(tmp_path / "x.md"), "-j", "0"])
    assert result.returncode == 1 and "invalid number of jobs 0" in result.stderr


def test_a_handout_of_one_flow_gives_way_where_the_shards_do(
        lingering: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows open at once past the table's bounds, while the flow lived: one process
    finds it (one tracker may have retired flows early, which one bucket cannot tell)."""
    monkeypatch.setattr(rounds, "TRACK_ROUND", 20)
    monkeypatch.setattr(rounds, "Merge", functools.partial(Merge, max_open=14))
    for conn in (1, 2, 3, 100, 200):
        one, two = _one_flow_both_ways(lingering, conn)
        assert two == one, conn
    # Flow 3 (data alone, never closed) is numbered in the first rounds and still open
    # at the round that fills; flow 1 is over long before.
    assert handout._one_flow_jobs(lingering, 3, 2) is None
    assert handout._one_flow_jobs(lingering, 1, 2) is not None
