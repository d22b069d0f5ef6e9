"""``sockets``: netstat rebuilt from a capture, after each change, at a moment, at the end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from capdissect import analyze
from capdissect.dissect.tcp import ACK, RST, SYN
from capdissect.errors import CapdissectError
from capdissect.report.flowstream import track
from capdissect.report.sockets import (
    NETSTAT_HEADER,
    PENDING_S,
    TIME_WAIT_S,
    every_lines,
    parse_time,
    snapshot_lines,
)
from tests.reportwire import Wire, lesson

CAPTURES = Path(__file__).parents[2] / "captures"
TCP_BASIC = CAPTURES / "tcp-basic.pcap"
UDP_BASIC = CAPTURES / "udp-basic.pcap"

# The lesson's netstat calls: server started; client connected; client closed; server
# closed.  Each is a snapshot `sockets --every` must print, in this order.
LESSON_NETSTAT = [
    ["LISTEN"],
    ["LISTEN", "ESTABLISHED", "ESTABLISHED"],
    ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"],
    ["LISTEN", "TIME_WAIT"],
]


def snapshots(lines: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(header, states) per snapshot of ``--every`` output."""
    out: list[tuple[str, list[str]]] = []
    for block in "\n".join(lines).strip("\n").split("\n\n"):
        rows = block.splitlines()
        assert rows[2] == NETSTAT_HEADER, block
        out.append((rows[0], [_state(row) for row in rows[3:]]))
    return out


def _state(row: str) -> str:
    # Proto Recv-Q Send-Q Local Foreign [State]: UDP rows have no state
    fields = row.split()
    return fields[5] if len(fields) > 5 else ""


def contains_in_order(seen: list[list[str]], wanted: list[list[str]]) -> bool:
    it = iter(seen)
    return all(any(sorted(s) == sorted(w) for s in it) for w in wanted)


def test_lesson_every_prints_the_netstat_sequence_exactly() -> None:
    """Issue must-show 3, on the bundled capture, through the real command line."""
    proc = subprocess.run([sys.executable, "-m", "capdissect", "sockets", str(TCP_BASIC),
                           "--every"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    got = snapshots(proc.stdout.splitlines())
    assert [states for _, states in got] == [
        ["LISTEN"],
        ["LISTEN", "SYN_SENT"],  # SPEC §4: the server shows it got the SYN by its SYN-ACK
        ["LISTEN", "ESTABLISHED", "SYN_RECV"],
        ["LISTEN", "ESTABLISHED", "ESTABLISHED"],
        ["LISTEN", "FIN_WAIT1", "CLOSE_WAIT"],
        ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"],
        ["LISTEN", "TIME_WAIT", "LAST_ACK"],
        ["LISTEN", "TIME_WAIT"],
    ]
    assert contains_in_order([s for _, s in got], LESSON_NETSTAT)
    headers = [h for h, _ in got]
    assert headers[0].startswith("before frame 1 (+0.000000 s): the server accepts the SYN")
    assert headers[3].startswith("after frame 3 ") and "SYN_RECV -> ESTABLISHED" in headers[3]
    assert "LAST_ACK -> CLOSE (gone from the table)" in headers[-1]


def test_netstat_lines_are_netstats_format() -> None:
    lines = "".join(analyze.sockets(TCP_BASIC, after=3)).splitlines()
    assert lines[0] == "after frame 3 (+0.000035 s)"
    assert lines[1] == "Active Internet connections (servers and established)"
    assert lines[2] == NETSTAT_HEADER
    assert lines[3] == ("tcp        0      0 127.0.0.1:30002         0.0.0.0:*               "
                        "LISTEN")
    assert lines[5].startswith("tcp        0      0 127.0.0.1:30002         127.0.0.1:")
    assert lines[5].endswith("ESTABLISHED")


def test_at_a_time_and_at_the_end() -> None:
    mid = "".join(analyze.sockets(TCP_BASIC, at="0.1")).splitlines()
    assert mid[0] == "at +0.100000 s (after frame 9, +0.040948 s)"
    assert [_state(r) for r in mid[3:]] == ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"]
    end = "".join(analyze.sockets(TCP_BASIC)).splitlines()
    assert end[0].endswith("the end of the capture")
    assert [_state(r) for r in end[3:]] == ["LISTEN", "TIME_WAIT"]
    before = "".join(analyze.sockets(TCP_BASIC, at="-1")).splitlines()
    assert before[0] == "at -1.000000 s, before the first packet" or "before" in before[0]
    assert len(before) == 3  # title and header, no sockets


def test_after_a_frame_past_the_end_is_an_error() -> None:
    with pytest.raises(CapdissectError, match="no frame 12: the capture has 11 packets"):
        "".join(analyze.sockets(TCP_BASIC, after=12))


def test_udp_sockets_have_no_state() -> None:
    lines = "".join(analyze.sockets(UDP_BASIC)).splitlines()
    assert lines[3].startswith("udp        0      0 127.0.0.1:")
    assert lines[3].split()[4] == "0.0.0.0:*" and len(lines[3].split()) == 5
    assert lines[4].split()[3] == "127.0.0.1:10001"


def test_ipv6_spelling() -> None:
    w = Wire()
    lesson(w, ("::1", 40000), ("::1", 30002))
    lines = list(snapshot_lines(track(w.packets), after=3))
    assert lines[3] == ("tcp6       0      0 ::1:30002               :::*                    "
                        "LISTEN")
    assert lines[4].split()[3:] == ["::1:40000", "::1:30002", "ESTABLISHED"]


def test_a_refused_syn_makes_no_listener() -> None:
    w = Wire()
    client, closed = ("127.0.0.1", 40000), ("127.0.0.1", 9)
    w.tcp(client, closed, SYN, 1)
    w.tcp(closed, client, RST | ACK, 0, 2)
    got = [states for _, states in snapshots(every_lines(track(w.packets)))]
    assert got == [["SYN_SENT"], []]


def test_an_unanswered_syn_makes_no_listener_and_a_late_answer_does() -> None:
    w = Wire()
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 30002)
    w.tcp(client, server, SYN, 1)
    w.tcp(client, server, SYN, 1, dt=PENDING_S + 1)  # retransmitted: still no answer
    w.tcp(server, client, SYN | ACK, 9, 2, dt=0.5)
    got = snapshots(every_lines(track(w.packets)))
    assert [states for _, states in got] == [
        ["SYN_SENT"],  # frame 1: nobody answers it, so nothing is inferred from it
        ["LISTEN", "SYN_SENT"],  # just before frame 2, the SYN that was answered
        ["LISTEN", "ESTABLISHED", "SYN_RECV"],  # the SYN-ACK: both sides at once
    ]
    assert got[1][0].startswith("before frame 2 (+4.000000 s): the server accepts the SYN")


def test_time_wait_ends_after_sixty_seconds() -> None:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    w.udp(("127.0.0.1", 5000), ("127.0.0.1", 53), b"late", dt=TIME_WAIT_S + 1)
    got = snapshots(every_lines(track(w.packets)))
    header, states = got[-1]
    assert "TIME_WAIT -> CLOSE after 60 s" in header
    assert states == ["LISTEN", ""]


def test_a_new_connection_reuses_the_listener() -> None:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    lesson(w, ("127.0.0.1", 40001), ("127.0.0.1", 30002))
    got = [states for _, states in snapshots(every_lines(track(w.packets)))]
    assert sum(states == ["LISTEN"] for states in got) == 1  # one listener, inferred once
    assert got[-1] == ["LISTEN", "TIME_WAIT", "TIME_WAIT"]


def test_mid_stream_connection_has_sockets_but_no_listener() -> None:
    w = Wire()
    w.tcp(("127.0.0.1", 40000), ("127.0.0.1", 30002), ACK, 100, 200)
    got = [states for _, states in snapshots(every_lines(track(w.packets)))]
    assert got == [["ESTABLISHED", "ESTABLISHED"]]


@pytest.mark.parametrize(("text", "value"), [
    ("0.25", (0.25, False)),
    ("1589017316.5", (1589017316.5, True)),
    ("2020-05-09T10:21:56+00:00", (1589019716.0, True)),
])
def test_parse_time(text: str, value: tuple[float, bool]) -> None:
    assert parse_time(text) == value


@pytest.mark.parametrize("text", ["soon", "nan", "inf", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(CapdissectError):
        parse_time(text)
