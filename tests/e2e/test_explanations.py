"""Issue #13: the explanation of each lesson, end to end through the command line.

The lesson captures are real (captures/README.md says how they were made); the
simultaneous open and close are also made fresh (live), and their ladder, JSON and
handout must show exactly SPEC §4's paths.
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.livecap import pytest_scenario

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "capdissect", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def notes(path: Path, *options: str) -> list[str]:
    proc = cli("read", path, *options)
    assert proc.returncode == 0, proc.stderr
    return [line[6:] for line in proc.stdout.splitlines() if line.startswith("    | ")]


def timeline_json(path: Path) -> dict[str, Any]:
    proc = cli("timeline", path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_data_lines_quote_the_lesson_payload() -> None:
    lines = notes(CAPTURES / "tcp-basic.pcap", "-n")
    assert 'data: 11 bytes from the client: "hello world"' in lines
    assert 'data: 11 bytes from the server: "who are you"' in lines


def test_annotations_name_endpoints_as_the_packet_line_does() -> None:
    named = cli("read", CAPTURES / "tcp-basic.pcap").stdout
    assert "IP localhost.59370 > localhost.30002" in named  # /etc/hosts names it
    assert "client localhost.59370: CLOSED -> SYN_SENT" in named
    numeric = notes(CAPTURES / "tcp-basic.pcap", "-n")
    assert "client 127.0.0.1.59370: CLOSED -> SYN_SENT" in numeric


def test_refused_connect_has_no_server_socket() -> None:
    path = CAPTURES / "tcp-refused.pcap"
    lines = notes(path, "-n")
    assert not any(line.startswith("server ") for line in lines), lines
    assert "reset: the server's kernel refuses the connection with RST" in lines
    assert any(line.startswith("connection refused: nothing listens") for line in lines)
    conn = timeline_json(path)["tcp"][0]
    assert (conn["open"], conn["close"], conn["closer"]) == ("refused", "none", None)
    assert conn["path"] == {"client": ["SYN_SENT", "CLOSED"], "server": []}
    assert all(e["states"]["server"] is None for e in conn["events"])
    # The RST's seq as tcpdump prints it (seq 0), not a number relative to a made-up ISN.
    tcpdump_line = cli("read", path, "--plain", "-nn").stdout.splitlines()[1]
    assert "Flags [R.], seq 0," in tcpdump_line
    ladder = cli("timeline", path).stdout
    assert "R. seq 0 ack 1" in ladder and "[no socket]" in ladder


def test_connected_udp_refusing_a_third_party_is_explained() -> None:
    path = CAPTURES / "udp-connected.pcap"
    icmp = next(line for line in notes(path, "-n") if line.startswith("icmp:"))
    assert ("that socket is connect()ed to 127.0.0.1.10001 (it sent datagrams to that peer "
            "only), so the kernel refuses datagrams from anyone else") in icmp
    assert "nothing listens" not in icmp
    table = cli("sockets", path).stdout.splitlines()
    assert ("udp        0      0 127.0.0.1:10002         127.0.0.1:10001         "
            "ESTABLISHED") in table


def test_half_close_is_remarked_on_each_late_data_segment() -> None:
    lines = notes(CAPTURES / "tcp-half-close.pcap", "-n")
    late = [line for line in lines if line.startswith("half-close:")]
    assert late and all("the server still sends data after the client's FIN" in line
                        for line in late)


def first_records(path: Path, count: int, out: Path) -> Path:
    data = path.read_bytes()
    offset = 24
    for _ in range(count):
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    out.write_bytes(data[:offset])
    return out


def test_a_socket_left_in_close_wait_gets_the_hint(tmp_path: Path) -> None:
    # The lesson up to the server's ACK of the client's FIN: the server never closes.
    cut = first_records(CAPTURES / "tcp-basic.pcap", 9, tmp_path / "close-wait.pcap")
    conn = timeline_json(cut)["tcp"][0]
    assert conn["final"]["server"] == "CLOSE_WAIT"
    assert conn["hints"] == [
        "the server got the client's FIN at frame 8 but never sent its own: its application "
        "has not called close() (or shutdown()), so the socket stays in CLOSE_WAIT until it "
        "does"]
    assert "hint: the server got the client's FIN at frame 8" in cli("timeline", cut).stdout


SPEC_PATHS = {
    "tcp-simultaneous-close": ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"],
    "tcp-simultaneous-open": ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"],
}


# The segment each side gets from the other in a crossing, and the state it enters then.
CROSSED = {"tcp-simultaneous-close": ("F.", "CLOSING"),
           "tcp-simultaneous-open": ("S", "SYN_RECEIVED")}


def check_receipts_where_the_wire_puts_them(name: str, conn: dict[str, Any]) -> None:
    """On loopback a segment arrives as it is sent, or, when two cross, just after the
    receiver's own.  So each side got the other's SYN (or FIN) no earlier than the copy
    that arrived: the last one sent before the side acknowledged it (a copy sent again was
    not acknowledged, so the one before never arrived), and no earlier than its own last
    copy sent before then (it was sent as if nothing had arrived).  The scenarios drop
    each side's first copy, so the retransmissions are the ones that cross."""
    flags, state = CROSSED[name]
    events = conn["events"]
    for side, other in (("client", "server"), ("server", "client")):
        theirs = [e for e in events if e["from"] == other and e["flags"] == flags]
        acked = next(e["frame"] for e in events
                     if e["from"] == side and e["ack"] is not None
                     and e["ack"] > theirs[0]["seq"])
        arrived = max(e["frame"] for e in theirs if e["frame"] < acked)
        sent = max(e["frame"] for e in events
                   if e["from"] == side and e["flags"] == flags and e["frame"] < acked)
        entered = next(e["frame"] for e in events if e["states"][side] == state)
        assert entered == max(arrived, sent), (side, entered, arrived, sent)


@pytest.mark.parametrize("name", sorted(CROSSED))
def test_crossing_receipts_follow_the_copy_that_arrived(name: str) -> None:
    check_receipts_where_the_wire_puts_them(
        name, timeline_json(CAPTURES / f"{name}.pcap")["tcp"][0])


@pytest.mark.live
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("name", sorted(SPEC_PATHS))
def test_fresh_crossing_captures_show_spec_paths(name: str, family: int,
                                                 tmp_path: Path) -> None:
    run = pytest_scenario(name, family, tmp_path)
    want = SPEC_PATHS[name]
    conn = timeline_json(run.path)["tcp"][0]
    check_receipts_where_the_wire_puts_them(name, conn)
    ladder = cli("timeline", run.path).stdout
    handout = tmp_path / "handout.html"
    assert cli("handout", run.path, "-o", handout).returncode == 0
    page = handout.read_text()
    for role in ("client", "server"):
        path = conn["path"][role]
        if name == "tcp-simultaneous-close":
            assert path[-3:] == want, (role, path)
        else:
            assert path[:3] == want, (role, path)
        spelled = " -> ".join(path)
        assert re.search(rf"^{role} \S+: {re.escape(spelled)}$", ladder, re.M), ladder
        assert html.escape(f"{role}: {spelled}") in page


@pytest.mark.parametrize("options,noted", [("-v", False), ("-vv", True), ("-vvK", False)])
def test_udp_checksum_note_only_where_tcpdump_prints_a_verdict(options: str,
                                                                noted: bool) -> None:
    path = CAPTURES / "udp-basic.pcap"
    verdict = "bad udp cksum" in cli("read", path, "--plain", "-nn",
                                      *options.replace("K", "").split(),
                                      *(["-K"] if "K" in options else [])).stdout
    lines = notes(path, "-n", *options.replace("K", "").split(),
                  *(["-K"] if "K" in options else []))
    assert verdict == noted
    assert any(line.startswith("checksum: 'incorrect' on loopback") for line in lines) == noted


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_handout_answers_agree_with_the_timeline_json(path: Path) -> None:
    from capdissect.dissect.stack import decode
    from capdissect.report.handout.lesson import build_lesson
    from capdissect.sources import open_capture

    lesson = build_lesson([decode(raw) for raw in open_capture(path)], path.name)
    doc = timeline_json(path)
    texts = [q.text for q in lesson.questions]
    assert len(texts) == len(set(texts)), texts
    assert lesson.questions, path
    states = {(e["frame"], role): e["states"][role]
              for conn in doc["tcp"] for e in conn["events"] for role in ("client", "server")}
    for q in lesson.questions:
        asked = re.search(r"What state is the (client|server) in after packet (\d+)\?", q.text)
        if asked:
            role, frame = asked.group(1), int(asked.group(2))
            want = states[(frame, role)] or "no socket"
            assert q.answer.startswith(f"{want}."), (q, want)
        if q.text.endswith("Which side ends in TIME_WAIT, and why does it wait there?"):
            conn = doc["tcp"][0]
            ending = [r for r in ("client", "server") if conn["final"][r] == "TIME_WAIT"]
            assert q.answer.startswith("Both" if len(ending) == 2 else f"The {ending[0]}")
        if q.text.endswith("Who closed the connection first, and how can you tell?"):
            closer = doc["tcp"][0]["closer"]
            assert q.answer.startswith("Both" if closer == "both" else f"The {closer}")
