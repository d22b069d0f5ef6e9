"""``read --json -j N``: the lines made by N processes are the lines one process makes,
byte for byte, to the end of a damaged file; -c and the filter apply as they do to one.

Rounds are made tiny here (``rounds.ROUND``) so that the small captures of the corpus
are dealt out in many rounds; forked workers see the patched value.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.commands import rounds
from capdissect.commands.read import ReadOptions, read_lines
from capdissect.errors import CapdissectError
from tests.e2e.test_read_json import cli
from tests.unit.test_packetjson import ALL_FILES, CAPTURES, CORPUS

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
                        ([path, "-j", "2"], "-j applies to --json"),
                        ([path, "--json", "-j", "0"], "invalid number of jobs 0")):
        status, lines, err = cli(*args)
        assert status == 1 and not lines, args
        assert err.strip().splitlines()[-1].startswith("capdissect: ") and words in err, args
    status, lines, _ = cli(path, "--json", "--jobs", "2", "-c", "4")
    assert status == 0 and len(lines) == 4


def test_the_rounds_are_made_by_the_workers_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

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
