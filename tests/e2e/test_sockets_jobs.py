"""``sockets -j N``: the tables made from N worker processes, each tracking its share of
the connections and telling the parent what of its facts may change the table, are the
tables one process makes, byte for byte: after each change, at the end, after a frame
and at a time, to the end of a damaged file; where the shards cannot follow one tracker
the output is still the same.

What one shard cannot see by itself is made here on purpose: a TIME_WAIT socket that
ends, or a connection retired as quiet, at another shard's packet; a SYN whose wait to
settle ends at another shard's packet, by time or by count; a capture clock that steps
back.  Rounds are tiny (``rounds.TRACK_ROUND``) so that small captures take many.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.commands import reports, rounds
from capdissect.dissect.tcp import ACK, SYN
from capdissect.errors import CapdissectError
from capdissect.tracking.shards import Merge
from capdissect.tracking.sockets import MAX_PENDING, PENDING_S, TIME_WAIT_S
from tests.support.compare import capdissect_command, run
from tests.support.reportwire import Wire, lesson
from tests.support.shardwatch import apart, capture_file, watch_dealing
from tests.unit.test_packetjson import ALL_FILES, CAPTURES
from tests.unit.test_shards import lingering_capture

DAMAGED = Path(__file__).parents[1] / "damaged"
SERVER = ("10.0.0.2", 80)


@pytest.fixture(autouse=True)
def tiny_rounds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rounds, "TRACK_ROUND", 3)
    yield


def sockets(path: Path, jobs: int, **options: object) -> str:
    """The report, and the error it ended with, if any, after it."""
    pieces: list[str] = []
    try:
        pieces.extend(reports.sockets(path, jobs=jobs, **options))  # type: ignore[arg-type]
    except CapdissectError as exc:
        pieces.append(f"error: {exc}")
    return "".join(pieces)


def same(path: Path, *, jobs: tuple[int, ...] = (2,), **options: object) -> str:
    one = sockets(path, 1, **options)
    for count in jobs:
        assert sockets(path, count, **options) == one, (count, options)
    return one


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_two_processes_make_the_tables_one_makes(path: Path) -> None:
    same(path, every=True)
    same(path)


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_every_view_of_the_lessons(path: Path) -> None:
    same(path, every=True, jobs=(2, 3))
    for frame in (1, 4, 9, 10_000):
        same(path, after=frame, jobs=(3,))
    for at in ("-1", "0", "0.0001", "0.1", "1e6"):
        same(path, at=at, jobs=(2,))


@pytest.fixture(scope="module")
def lingering(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/unit/test_shards.py's lessons replayed for 2.5 hours: TIME_WAIT sockets end
    and quiet flows retire at other connections' packets, ports are reused, UDP
    endpoints serve several conversations."""
    return capture_file(tmp_path_factory.mktemp("sockets") / "lingering.pcap", lingering_capture())


@pytest.fixture(scope="module")
def stepping(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with a clock that steps back and forth: one packet in eight moved by up
    to 70 s either way, so the packets are no longer in time order."""
    shuffle = random.Random(7)
    moved = []
    for raw in lingering_capture():
        step = shuffle.choice([0, 0, 0, -3, 2, -70, 65, -0.5])
        at = raw.ts + step
        moved.append(raw._replace(ts_sec=int(at), ts_nsec=int((at - int(at)) * 1e9)))
    return capture_file(tmp_path_factory.mktemp("sockets") / "stepping.pcap", moved)


@pytest.mark.parametrize("capture", ["lingering", "stepping"])
def test_time_ends_sockets_at_other_shards_packets(capture: str,
                                                   request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(capture)
    every = same(path, every=True, jobs=(2, 3))
    assert every.count(f"TIME_WAIT -> CLOSE after {TIME_WAIT_S:g} s") > 100
    assert every.count("-> retired (gone from the table)") >= 5  # idle 7,200 s
    assert every.count("-> unused (gone from the table)") > 50
    same(path, jobs=(2, 3))
    for frame in (1, 700, 2097, 2098):
        same(path, after=frame)
    for at in ("-5", "0", "4000", "4000.5", "1e9"):  # +4000 s is a packet's own time
        same(path, at=at)


def test_later_rounds_and_a_table_that_fills(lingering: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds of 500 frames; then shards that give up part-way (``Merge``'s bound made
    tiny): the lines given so far are not given twice."""
    monkeypatch.setattr(rounds, "TRACK_ROUND", 500)
    one = same(lingering, every=True)
    monkeypatch.setattr(rounds, "TRACK_ROUND", 20)
    monkeypatch.setattr(rounds, "Merge", functools.partial(Merge, max_open=14))
    assert sockets(lingering, 2, every=True) == one
    same(lingering, at="3000")


@pytest.mark.parametrize("found", [True, False])
def test_a_connected_udp_socket_found_by_its_icmp_error(
        found: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """udp-connected: the refusing socket is connect()ed, which every datagram its port
    sent tells; it is pinned to one worker, or, not found before, the shards start again
    with all of UDP in one.  The workers that made the tables say how."""
    workers = watch_dealing(tmp_path / "made", monkeypatch, found=found)
    every = same(CAPTURES / "udp-connected.pcap", every=True)
    assert "connected to" in every and "ESTABLISHED" in every
    assert {how for _, how in workers()} == ({"pinned"} if found else {"hash", "alone"})


def _chatter(w: Wire, count: int, dt: float) -> None:
    """*count* datagrams of one conversation, *dt* apart."""
    for _ in range(count):
        w.udp(("10.1.0.1", 5000), ("10.1.1.1", 53), b"q", dt=dt)


@pytest.mark.parametrize("again", [False, True])
def test_a_syns_wait_ends_at_another_shards_packet(again: bool, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A SYN unanswered for more than PENDING_S while another shard's conversation goes
    on: one process stops waiting at the first of its packets past that, so the SYN made
    no listener; the late SYN-ACK makes one just before itself.  *again*: the client
    sends the SYN again first, and the listener appears just before that SYN (a fact
    that changes no state of the connection's own sockets)."""
    w = Wire()
    client = ("10.0.0.1", 40000)
    w.tcp(client, SERVER, SYN, 1)
    _chatter(w, 20, dt=(PENDING_S + 1) / 20)
    if again:
        w.tcp(client, SERVER, SYN, 1, dt=0.5)
    w.tcp(SERVER, client, SYN | ACK, 9, 2, dt=0.5)
    w.tcp(client, SERVER, ACK, 2, 10)
    _chatter(w, 1, dt=0.001)
    every = same(apart(w, tmp_path, monkeypatch), every=True)
    befores = [line for line in every.splitlines() if line.startswith("before")]
    assert len(befores) == 1 and befores[0].startswith("before frame 22 (+"), befores
    assert ("accepts the SYN" if again else "SYN-ACK of frame 22") in befores[0]


def test_a_syns_wait_ends_after_max_pending_frames(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same within a second, past MAX_PENDING frames of the other shard's."""
    w = Wire()
    client = ("10.0.0.1", 40000)
    w.tcp(client, SERVER, SYN, 1)
    _chatter(w, MAX_PENDING + 10, dt=1e-5)
    w.tcp(SERVER, client, SYN | ACK, 9, 2, dt=0.5)
    _chatter(w, 1, dt=0.001)
    every = same(apart(w, tmp_path, monkeypatch), every=True)
    syn_ack = MAX_PENDING + 12
    assert f"before frame {syn_ack} (+" in every and "before frame 1 " not in every


def test_a_clock_that_steps_back_under_a_waiting_syn(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting SYN holds a lesson whose clock stepped back 70 s (its TIME_WAIT is due
    at once), in the same shard; the next packet, the other shard's, comes before the
    wait ends: one process ends the TIME_WAIT socket at that packet."""
    w = Wire(t=1_600_000_100.0)
    w.tcp(("10.0.0.1", 40000), SERVER, SYN, 1)  # nobody answers
    w.t -= 70
    lesson(w, ("10.0.0.3", 41000), ("10.0.0.4", 8080))
    w.t += 70.5
    _chatter(w, 1, dt=0)
    _chatter(w, 1, dt=PENDING_S + 1)
    every = same(apart(w, tmp_path, monkeypatch), every=True)
    expired = [line for line in every.splitlines() if "CLOSE after" in line]
    assert len(expired) == 1 and expired[0].startswith(f"after frame {len(w.packets) - 1} ")


@pytest.mark.parametrize("frames", [3, rounds.TRACK_ROUND])
def test_a_damaged_file_raises_where_one_process_does(
        frames: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file cut after a SYN nobody answered yet: one process settles that SYN's facts
    only at the end, the damage, so a table after it reports the damage too; a table
    after an earlier frame does not read that far, even where the workers sent it all
    in one round (*frames* a round)."""
    monkeypatch.setattr(rounds, "TRACK_ROUND", frames)
    w = Wire()
    lesson(w, ("10.0.0.1", 40000), SERVER)
    w.tcp(("10.0.0.1", 40001), SERVER, SYN, 1)
    _chatter(w, 3, dt=0.01)
    path = capture_file(tmp_path / "cut.pcap", [pkt.raw for pkt in w.packets])
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record cut short
    errors = {}
    for options in ({"after": 11}, {"after": 12}, {"after": 14}, {"at": "0.05"},
                    {"at": "1"}, {}, {"every": True}):
        report = same(path, jobs=(2, 3), **options)
        errors[str(options)] = "\nerror: " in report
        assert report.startswith(("after", "at", "before")), report
    assert errors == {"{'after': 11}": False, "{'after': 12}": True, "{'after': 14}": True,
                      "{'at': '0.05'}": False, "{'at': '1'}": True, "{}": True,
                      "{'every': True}": True}


def test_the_cli_and_a_damaged_file(tmp_path: Path) -> None:
    damaged = DAMAGED / "D01_truncated_tcp_basic.pcap"
    path = str(CAPTURES / "tcp-basic.pcap")
    for args in ([str(damaged), "--every"], [str(damaged)], [str(damaged), "--after", "3"],
                 [path, "--every"],
                 [path, "--after", "4"], [path, "--at", "0.1"]):
        one = run([*capdissect_command(), "sockets", *args])
        two = run([*capdissect_command(), "sockets", *args, "-j", "2"])
        assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout,
                                                            one.stderr), args
        assert one.stdout and "Traceback" not in one.stderr
    for args, words in ((["-", "-j", "2"], "not a regular file"),
                        ([path, "--jobs", "0"], "invalid number of jobs 0")):
        result = run([*capdissect_command(), "sockets", *args])
        assert result.returncode == 1 and not result.stdout, args
        assert words in result.stderr.strip().splitlines()[-1], args
    with pytest.raises(CapdissectError) as error:
        "".join(reports.sockets(tmp_path, jobs=2))  # a directory: before any output
    assert str(tmp_path) in str(error.value)
