"""``read --json -j N``: the lines made by N processes are the lines one process makes,
byte for byte, to the end of a damaged file; -c and the filter apply as they do to one.

Rounds are made tiny here (``rounds.ROUND``) so that the small captures of the corpus
are dealt out in many rounds; forked workers see the patched value.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.commands import rounds
from capdissect.commands.read import ReadOptions, json_maker, read_lines
from capdissect.errors import CapdissectError
from capdissect.sources.writer import PacketWriter
from tests.e2e.test_read_json import cli
from tests.support.compare import capdissect_command, fixed_env
from tests.support.processes import left_behind
from tests.unit.test_packetjson import ALL_FILES, CAPTURES, CORPUS
from tests.unit.test_shards import lingering_capture

DAMAGED = Path(__file__).parents[1] / "damaged"


def output(path: Path, jobs: int | None, **options: object) -> str:
    """Everything ``read --json`` writes, as run_read writes it."""
    texts = read_lines(path, ReadOptions(json=True, jobs=jobs, **options))  # type: ignore[arg-type]
    return "".join(f"{text}\n" for text in texts)


@pytest.fixture
def tiny_rounds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rounds, "ROUND", 3)
    yield


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_two_processes_write_what_one_writes(path: Path, tiny_rounds: None) -> None:
    assert output(path, 2) == output(path, None)


def test_more_processes_than_rounds_and_one_packet_a_round(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    path = CORPUS / "pcpp_tls.pcap"
    one = output(path, None)
    for size, jobs in ((1, 3), (1000, 4), (7, 5)):
        monkeypatch.setattr(rounds, "ROUND", size)
        assert output(path, jobs) == one, (size, jobs)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 50, 10_000])
@pytest.mark.parametrize("expression", [None, "ip6", "tcp[tcpflags] & tcp-syn != 0"])
def test_count_and_filter_as_one_process(count: int, expression: str | None,
                                         tiny_rounds: None) -> None:
    path = CORPUS / "pcpp_tls.pcap"
    options = {"count": count, "expression": expression}
    assert output(path, 3, **options) == output(path, None, **options)


def _cli_output(*args: str) -> tuple[int, list[str], str]:
    status, lines, err = cli(*args)
    return status, lines, err.strip().splitlines()[-1]


@pytest.mark.parametrize("name", ["D01_truncated_tcp_basic.pcap"])
def test_a_damaged_pcap_gives_the_same_lines_and_error(name: str) -> None:
    path = str(DAMAGED / name)
    assert _cli_output(path, "--json", "-j", "2") == _cli_output(path, "--json")
    status, lines, error = _cli_output(path, "--json", "-j", "2")
    assert status == 1 and lines and error.startswith("capdissect: ")


def test_a_cut_pcapng_and_a_gzip_give_the_same_lines_and_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """Cut inside a record: the round it falls in ends there, in every process."""
    monkeypatch.setattr(rounds, "ROUND", 2)
    source = CORPUS / "pcpp_IcmpPackets.pcapng"
    data = source.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 2 // 3])
    zipped = tmp_path / "whole.pcap.gz"
    with (CAPTURES / "tcp-basic.pcap").open("rb") as raw, gzip.open(zipped, "wb") as out:
        shutil.copyfileobj(raw, out)
    one: list[str] = []
    with pytest.raises(CapdissectError) as first:
        one.extend(read_lines(cut, ReadOptions(json=True)))
    two: list[str] = []
    with pytest.raises(CapdissectError) as second:
        two.extend(read_lines(cut, ReadOptions(json=True, jobs=3)))
    assert "\n".join(two) == "\n".join(one) != ""
    assert str(second.value) == str(first.value)
    assert output(zipped, 3) == output(zipped, None) != ""


def test_jobs_refused_where_they_cannot_work() -> None:
    path = str(CAPTURES / "tcp-basic.pcap")
    for args, words in ((["-", "--json", "-j", "2"], "not a regular file"),
                        ([path, "--plain", "-j", "2"], "-j applies to --json"),
                        ([path, "--json", "-j", "0"], "invalid number of jobs 0")):
        status, lines, err = cli(*args)
        assert status == 1 and not lines, args
        assert err.strip().splitlines()[-1].startswith("capdissect: ") and words in err, args
    status, lines, _ = cli(path, "--json", "--jobs", "2", "-c", "4")
    assert status == 0 and len(lines) == 4


def test_the_rounds_are_made_by_the_workers_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(rounds, "ROUND", 2)
    path = CORPUS / "pcpp_tls.pcap"
    texts = rounds.parallel_lines(path, 3, lambda number, raw: f"{number} {os.getpid()}",
                                  keep=None, limit=None)
    made = [line.split() for text in texts for line in text.split("\n")]
    assert [int(number) for number, _ in made] == list(range(1, len(made) + 1))
    makers = [pid for _, pid in made]
    assert len(set(makers)) == 3 and str(os.getpid()) not in makers
    # Rounds of two frames, dealt out in turn: frames 1-2, 7-8... by the same worker.
    assert makers[0] == makers[1] == makers[6] != makers[2] == makers[3] != makers[4]


def test_blocks_go_to_the_sink_or_come_back(tmp_path: Path, tiny_rounds: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With a sink, every whole round is spliced there and none comes back; where there
    is no splice (not Linux), every round comes back to be written."""
    path = CORPUS / "pcpp_tls.pcap"
    one = output(path, None).encode()
    spliced = tmp_path / "spliced"
    with spliced.open("wb") as sink:
        back = list(rounds.parallel_blocks(path, 2, json_maker(), keep=None, limit=None,
                                           sink=sink.fileno()))
    assert back == [] and spliced.read_bytes() == one
    monkeypatch.delattr(os, "splice")
    unused = tmp_path / "unused"
    with unused.open("wb") as sink:
        back = list(rounds.parallel_blocks(path, 2, json_maker(), keep=None, limit=None,
                                           sink=sink.fileno()))
    assert len(back) > 10 and b"".join(back) == one and unused.read_bytes() == b""


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lessons replayed for 2.5 hours (tests/unit/test_shards.py), six times over:
    12,582 packets, 12 MB of JSON, far more than the pipes hold (1 MiB a worker)."""
    path = tmp_path_factory.mktemp("read-jobs") / "replayed-for-read-jobs.pcap"
    raws = lingering_capture()
    with PacketWriter(path, raws[0].linktype, 262144) as writer:
        for copy in range(6):
            for raw in raws:
                writer.write(raw._replace(ts_sec=raw.ts_sec + 10_000 * copy))
    return path


def _stdout_of(args: list[str], out: Path | None, mode: str = "wb") -> bytes:
    """What the CLI writes with *args*: to the file *out* (opened with *mode*), else to
    a pipe."""
    command = [*capdissect_command(), "read", *args]
    if out is None:
        done = subprocess.run(command, env=fixed_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=120, check=True)
        return done.stdout
    with out.open(mode) as sink:
        subprocess.run(command, env=fixed_env(), stdin=subprocess.DEVNULL, stdout=sink,
                       stderr=subprocess.DEVNULL, timeout=120, check=True)
    return out.read_bytes()


def test_the_command_writes_what_one_process_writes_to_a_file_a_pipe_and_an_append(
        replayed: Path, tmp_path: Path) -> None:
    """The CLI moves the workers' blocks to stdout with splice(2): to a file and a pipe
    it can; to a file opened to append (``>>``) it cannot, and writes them itself.
    -c cuts the round it ends in (rounds are 128 packets)."""
    for extra in ([], ["-c", "300"], ["-c", "7", "tcp[tcpflags] & tcp-fin != 0"]):
        one = _stdout_of([str(replayed), "--json", *extra], None)
        assert one.count(b"\n") == {0: 12_582, 2: 300, 3: 7}[len(extra)], extra
        two = [str(replayed), "--json", "-j", "2", *extra]
        assert _stdout_of(two, tmp_path / "out.json") == one, extra
        assert _stdout_of(two, None) == one, extra
        before = tmp_path / "appended.json"
        before.write_bytes(b"already here\n")
        assert _stdout_of(two, before, "ab") == b"already here\n" + one, extra


def test_no_worker_outlives_a_parent_killed_by_sigpipe(replayed: Path) -> None:
    """``read --json -j 2 F | head``: head goes, SIGPIPE ends the command (as it ends
    tcpdump), and its workers end at their next write instead of waiting for ever on
    full pipes (each held its own pipe open for reading once)."""
    proc = subprocess.Popen([*capdissect_command(), "read", str(replayed), "--json", "-j", "2"],
                            env=fixed_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.read(100)
    proc.stdout.close()
    assert proc.wait(timeout=60) == -signal.SIGPIPE
    assert not left_behind(replayed)
