"""``read -j N``'s annotated text: N worker processes each track and word their share of
the connections, and the parent puts the packets back in frame order; the text is the
text one process prints, byte for byte: the conversations numbered as one tracker
numbers them, the loopback checksum note once, -c and the filter as for one, to the end
of a damaged file; where the shards cannot follow one tracker, the text is still the
same.  Rounds are tiny (``rounds.TRACK_ROUND``) so that small captures take many.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.commands import rounds
from capdissect.commands.read import ReadOptions, read_lines
from capdissect.dissect.tcp import ACK
from capdissect.errors import CapdissectError
from capdissect.report.annotate import LOOPBACK_NOTE
from capdissect.tracking.shards import Merge
from tests.e2e.test_read_json import cli
from tests.support.reportwire import Wire, ip, lesson, tcp
from tests.support.shardwatch import apart, capture_file, watch_dealing
from tests.unit.test_packetjson import ALL_FILES, CAPTURES
from tests.unit.test_shards import lingering_capture

DAMAGED = Path(__file__).parents[1] / "damaged"


@pytest.fixture(autouse=True)
def tiny_rounds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rounds, "TRACK_ROUND", 3)
    yield


def text(path: Path, jobs: int | None, **options: object) -> str:
    """What ``read`` writes, and the error it ends with, if any, after it."""
    pieces: list[str] = []
    try:
        pieces.extend(f"{piece}\n" for piece in read_lines(
            path, ReadOptions(jobs=jobs, **options)))  # type: ignore[arg-type]
    except CapdissectError as exc:
        pieces.append(f"error: {exc}\n")
    return "".join(pieces)


def same(path: Path, *, jobs: tuple[int, ...] = (2,), **options: object) -> str:
    one = text(path, None, **options)
    for count in jobs:
        assert text(path, count, **options) == one, (count, options)
    return one


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_two_processes_print_what_one_prints(path: Path) -> None:
    same(path, n=2)
    same(path, n=1, v=1, x=1)


@pytest.fixture(scope="module")
def lingering(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lessons replayed for 2.5 hours (tests/unit/test_shards.py): connections in every
    worker, reused ports, 90 UDP conversations on 7 client ports."""
    return capture_file(tmp_path_factory.mktemp("read") / "lingering.pcap", lingering_capture())


def test_conversations_are_numbered_as_one_tracker_numbers_them(lingering: Path) -> None:
    printed = same(lingering, jobs=(2, 3), n=2)
    named = {int(conv) for conv in re.findall(r"of conversation ([0-9]+)", printed)}
    assert len(named) == 90 and min(named) == 4 and max(named) == 279  # after TCP's ids
    assert "\x01" not in printed
    assert printed.count("udp: ") > 90


def test_the_checksum_note_once(lingering: Path) -> None:
    printed = same(lingering, jobs=(2, 3), n=2, v=1)
    assert printed.count(LOOPBACK_NOTE) == 1


@pytest.mark.parametrize("count", [1, 5, 40, 1000, 100_000])
@pytest.mark.parametrize("expression", [None, "udp", "tcp[tcpflags] & tcp-syn != 0"])
def test_count_and_filter_as_one_process(count: int, expression: str | None,
                                         lingering: Path) -> None:
    same(lingering, n=2, count=count, expression=expression)


def test_later_rounds_and_a_table_that_fills(lingering: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds, "TRACK_ROUND", 500)
    one = same(lingering, n=2)
    monkeypatch.setattr(rounds, "TRACK_ROUND", 20)
    monkeypatch.setattr(rounds, "Merge", functools.partial(Merge, max_open=14))
    assert text(lingering, 2, n=2) == one
    assert text(lingering, 2, n=2, count=700) == text(lingering, None, n=2, count=700)


@pytest.mark.parametrize("found", [True, False])
def test_a_connected_udp_socket_found_by_its_icmp_error(
        found: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workers = watch_dealing(tmp_path / "made", monkeypatch, found=found)
    printed = same(CAPTURES / "udp-connected.pcap", n=2)
    assert "connect()ed to" in printed and "(conversation " in printed
    assert {how for _, how in workers()} == ({"pinned"} if found else {"hash", "alone"})


def test_an_icmp_error_quoting_a_tcp_segment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With -v the ICMP error (worker 0) prints the segment it quotes with the
    relative sequence numbers of a connection another worker holds: the capture is
    printed by one process, and the packets given before are not given twice."""
    w = Wire()
    client, server = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    lesson(w, client, server)
    segment = ip(client[0], server[0], 6, tcp(client[1], server[1], 1012, 5012, ACK))
    # The whole segment quoted, as Linux quotes it (RFC 1812 4.3.2.3), not 8 bytes.
    w.add(ip("10.0.0.9", client[0], 1, struct.pack("!BBHI", 3, 3, 0, 0) + segment))
    lesson(w, ("10.0.0.1", 40001), server)
    w.udp(("10.1.0.1", 5000), ("10.1.1.1", 53), b"q")
    path = apart(w, tmp_path, monkeypatch)  # the connections in worker 1
    printed = same(path, n=2, v=1)
    assert "ICMP 10.0.0.2 tcp port 80 unreachable" in printed
    assert "10.0.0.1.40000 > 10.0.0.2.80: Flags [.], cksum 0x0000 (incorrect -> 0xe7b9), ack 12," \
        in printed  # relative: the connection's first ack was 5001


def test_a_damaged_file(tmp_path: Path) -> None:
    damaged = DAMAGED / "D01_truncated_tcp_basic.pcap"
    for count in (None, 3, 7, 8):
        printed = same(damaged, jobs=(2, 3), n=2, count=count)
        assert ("error: " in printed) == (count in (None, 8))
    data = (CAPTURES / "udp-connected.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-20])
    assert "\nerror: " in same(cut, n=2)


def test_the_cli() -> None:
    path = str(CAPTURES / "tcp-simultaneous-close.pcap")
    for args in ([path, "-n"], [path, "-nn", "-v", "-c", "5"], [path, "-tttt", "-e"],
                 [path, "-n", "--color", "always"],
                 [str(DAMAGED / "D01_truncated_tcp_basic.pcap"), "-nn"]):
        assert cli(*args, "-j", "2") == cli(*args), args
    for args, words in (([path, "--plain", "-j", "2"], "--plain is printed by one process"),
                        ([path, "-ttt", "-j", "2"], "-j cannot print -ttt or -ttttt"),
                        (["-", "-j", "2"], "not a regular file")):
        status, lines, err = cli(*args)
        assert status == 1 and not lines, args
        assert err.strip().splitlines()[-1].startswith("capdissect: ") and words in err, args


def _punches_holes() -> bool:
    """Whether the temporary directory's file system frees what ``_release`` gives back."""
    with tempfile.TemporaryFile() as probe:
        probe.write(b"x" * (1 << 20))
        probe.flush()
        rounds._release(probe.fileno(), 0, 1 << 20)
        return os.fstat(probe.fileno()).st_blocks * 512 < 1 << 19


def test_a_spool_gives_back_what_was_read() -> None:
    if not _punches_holes():
        pytest.skip("the temporary directory's file system keeps released bytes")
    data = b"0123456789abcdef" * (1 << 16)  # 1 MiB
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        spool.flush()
        fd = spool.fileno()
        assert rounds._spooled(fd, 1000, 300_000) == data[1000:300_000].decode()
        assert os.fstat(fd).st_size == len(data)  # the size stays
        assert os.pread(fd, 1000, 0) == data[:1000]  # only the range read is given back
        assert os.pread(fd, 10, 300_000) == data[300_000:300_010]
        assert os.pread(fd, 4096, 8192) == bytes(4096)
        freed = len(data) - os.fstat(fd).st_blocks * 512
        assert 300_000 - 8192 <= freed <= 300_000


def test_the_spools_hold_only_what_the_parent_has_not_read(
        lingering: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _punches_holes():
        pytest.skip("the temporary directory's file system keeps released bytes")
    monkeypatch.setattr(rounds, "TRACK_ROUND", 200)
    spooled = rounds._spooled
    reads: list[tuple[int, int]] = []  # (fd, stop)

    def watched(fd: int, start: int, stop: int) -> str:
        text = spooled(fd, start, stop)
        reads.append((fd, stop))
        stat = os.fstat(fd)  # at most the bytes not read yet, and a block a round edge
        assert stat.st_blocks * 512 <= stat.st_size - stop + 4096 * (len(reads) + 2)
        return text

    monkeypatch.setattr(rounds, "_spooled", watched)
    same(lingering, n=2)
    assert len({fd for fd, _ in reads}) == 2 and max(stop for _, stop in reads) > 200_000
