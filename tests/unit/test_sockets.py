"""``sockets``: netstat rebuilt from a capture, after each change, at a moment, at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from capdissect.commands import reports as analyze
from capdissect.commands.reports import parse_time
from capdissect.dissect.tcp import ACK, RST, SYN
from capdissect.errors import CapdissectError
from capdissect.report.tables.sockets import (
    EVERY_FULL_MAX,
    NETSTAT_HEADER,
    every_lines,
    snapshot_lines,
)
from capdissect.tracking.sockets import PENDING_S, TIME_WAIT_S
from capdissect.tracking.stream import track
from capdissect.tracking.tracker import Tracker
from tests.support.netstat import row_state, snapshots
from tests.support.reportwire import Wire, lesson

CAPTURES = Path(__file__).parents[2] / "captures"
TCP_BASIC = CAPTURES / "tcp-basic.pcap"
UDP_BASIC = CAPTURES / "udp-basic.pcap"


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
    assert [row_state(r) for r in mid[3:]] == ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"]
    end = "".join(analyze.sockets(TCP_BASIC)).splitlines()
    assert end[0].endswith("the end of the capture")
    assert [row_state(r) for r in end[3:]] == ["LISTEN", "TIME_WAIT"]
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


def test_what_time_ends_is_not_said_to_be_the_packets_doing() -> None:
    """The TIME_WAIT socket ends at the first packet 60 s on, here an ACK of another
    connection that changes nothing itself: the heading names no packet's words.  A SYN
    to the listener known already: its words, no moment before it (nothing appears)."""
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    other = (("127.0.0.1", 40001), ("127.0.0.1", 30003))
    w.tcp(*other, ACK, 100, 200)  # mid-stream: its sockets appear now
    w.tcp(*other, ACK, 100, 200, dt=TIME_WAIT_S)
    lesson(w, ("127.0.0.1", 40002), ("127.0.0.1", 30002))
    w.tcp(("127.0.0.1", 40003), ("127.0.0.1", 30002), SYN, 1, dt=TIME_WAIT_S + 1)
    headers = [header for header, _ in snapshots(every_lines(track(w.packets)))]
    assert (f"after frame 13 (+{w.packets[12].raw.ts - w.packets[0].raw.ts:.6f} s): "
            "127.0.0.1:40000 TIME_WAIT -> CLOSE after 60 s (gone from the table)") in headers
    assert headers[-1].startswith("after frame 25 (+")
    assert headers[-1].endswith(": the client sends SYN: 127.0.0.1:40002 TIME_WAIT -> CLOSE "
                                "after 60 s (gone from the table), client 127.0.0.1:40003 "
                                "SYN_SENT")
    assert sum(header.startswith("before") for header in headers) == 1  # the first SYN's


def test_each_time_wait_ends_on_time_when_the_clock_steps_back() -> None:
    """A later lesson's clock is 100 s behind: its TIME_WAIT socket ends 60 s after it
    began, though the first one's is due later still."""
    w = Wire(t=1_600_001_000.0)
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    w.t -= 100
    lesson(w, ("127.0.0.1", 40001), ("127.0.0.1", 30002))
    w.udp(("127.0.0.1", 5000), ("127.0.0.1", 53), b"late", dt=TIME_WAIT_S + 1)
    header, states = snapshots(every_lines(track(w.packets)))[-1]
    assert "40001 TIME_WAIT -> CLOSE after 60 s" in header and "40000" not in header
    assert states == ["LISTEN", "TIME_WAIT", ""]


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


def syn_flood(count: int, dt: float = 0.001) -> Wire:
    """*count* unanswered SYNs from distinct clients to one server (D6's shape)."""
    w = Wire()
    for i in range(count):
        w.tcp((f"10.0.{i // 250}.{i % 250 + 1}", 1024 + i), ("127.0.0.1", 80), SYN, i, dt=dt)
    return w


def test_sockets_leave_with_the_connections_the_tracker_retires() -> None:
    """D6: the table holds what the tracker holds (here 100 open at once), not every
    socket the capture showed; the change says so."""
    w = syn_flood(300)
    lines = list(snapshot_lines(track(w.packets, Tracker(keep_events=False, max_open=100))))
    assert lines[0].startswith("after frame 300 ")
    assert [row_state(row) for row in lines[3:]] == ["SYN_SENT"] * 100
    assert "10.0.0.201:1224 " in lines[3]  # the oldest still open: SYN 201
    every = list(every_lines(track(w.packets, Tracker(keep_events=False, max_open=100)),
                             full_max=1000))
    retired = [line for line in every if "retired" in line]
    assert len(retired) == 200
    assert retired[0].startswith("after frame 101 (+0.")
    assert retired[0].endswith(": the client sends SYN: client 10.0.0.1:1024 SYN_SENT -> "
                               "retired (gone from the table), client 10.0.0.101:1124 SYN_SENT")


def test_a_quiet_connection_is_retired_with_its_sockets() -> None:
    w = Wire()
    w.tcp(("127.0.0.1", 40000), ("127.0.0.1", 30002), SYN, 1)
    # Time passes in steps the tracker counts (a single silent jump of 120 s or more is a
    # paused capture or a clock change, and retires nothing: tracking/table.py).
    w.tcp(("127.0.0.1", 40002), ("127.0.0.1", 30002), SYN, 1, dt=100.0)
    w.tcp(("127.0.0.1", 40001), ("127.0.0.1", 30002), SYN, 1, dt=100.0)  # 40000: past linger
    got = snapshots(every_lines(track(w.packets)))
    assert [states for _, states in got] == [["SYN_SENT"], ["SYN_SENT", "SYN_SENT"],
                                             ["SYN_SENT", "SYN_SENT"]]
    assert got[2][0].endswith("client 127.0.0.1:40000 SYN_SENT -> retired (gone from the "
                              "table), client 127.0.0.1:40001 SYN_SENT")


def test_every_past_the_threshold_prints_only_what_changed() -> None:
    """D6: with more than EVERY_FULL_MAX sockets a snapshot shows the changed rows and a
    count, so the output grows with the packets, not with packets times sockets."""
    count = EVERY_FULL_MAX + 200
    out = "\n".join(every_lines(track(syn_flood(count).packets)))
    blocks = out.split("\n\n")
    assert len(blocks) == count
    full = blocks[EVERY_FULL_MAX - 1].splitlines()
    assert len(full) == 3 + EVERY_FULL_MAX and full[-1].endswith("SYN_SENT")
    last = blocks[-1].splitlines()
    assert last[0].startswith(f"after frame {count} ")
    assert last[1:3] == ["Active Internet connections (servers and established)",
                         NETSTAT_HEADER]
    assert last[3].split()[3:] == [f"10.0.0.{count % 250}:{1023 + count}", "127.0.0.1:80",
                                   "SYN_SENT"]
    assert last[4] == f"(and {count - 1} other sockets, unchanged)"
    assert len(last) == 5
    assert max(len(b.splitlines()) for b in blocks) == 3 + EVERY_FULL_MAX


def test_change_only_form_from_the_start() -> None:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    blocks = "\n".join(every_lines(track(w.packets), full_max=0)).split("\n\n")
    # the SYN-ACK: both rows changed (client ESTABLISHED, server SYN_RECV), the listener not
    assert blocks[2].splitlines()[3:] == [
        "tcp        0      0 127.0.0.1:40000         127.0.0.1:30002         ESTABLISHED",
        "tcp        0      0 127.0.0.1:30002         127.0.0.1:40000         SYN_RECV",
        "(and 1 other socket, unchanged)"]


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

