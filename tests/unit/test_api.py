"""The Python API's objects: what they hold, and how they show themselves (SPEC §3.9)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

import capdissect
from capdissect.commands import reports as analyze
from capdissect.dissect.stack import Packet
from capdissect.tracking.states import TcpState
from tests.support.handoutwire import hostile_pcapng

ROOT = Path(__file__).resolve().parents[2]
TCP_BASIC = ROOT / "captures" / "tcp-basic.pcap"
UDP_CONNECTED = ROOT / "captures" / "udp-connected.pcap"


def test_read_iterates_as_the_old_generator_did() -> None:
    cap = capdissect.read(TCP_BASIC)
    assert isinstance(cap, capdissect.Capture)
    packets = list(cap)
    assert packets == list(analyze.decoded(TCP_BASIC))
    assert all(isinstance(pkt, Packet) for pkt in packets)
    assert list(cap) == packets  # a file can be iterated again
    # and it still feeds track() as before
    assert len(capdissect.track(capdissect.read(TCP_BASIC)).packets) == 11


def test_a_file_that_is_not_a_capture_fails_at_read(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    with pytest.raises(capdissect.CaptureError):
        capdissect.read(bad)


def test_len_indexing_slicing_and_filter() -> None:
    cap = capdissect.read(TCP_BASIC)
    assert len(cap) == 11
    first = cap[0]
    assert first.frame == 1 and "Flags [S]" in first.line
    assert first.notes[0].startswith("handshake 1/3 SYN")
    last = cap[-1]
    assert last.frame == 11 and "LAST_ACK -> CLOSED" in repr(last)
    assert [p.frame for p in cap[2:5]] == [3, 4, 5]
    assert [p.frame for p in cap[::5]] == [1, 6, 11]
    with pytest.raises(IndexError):
        cap[11]
    syns = cap.filter("tcp[tcpflags] & tcp-syn != 0")
    assert len(syns) == 2 and len(syns.filter("tcp[tcpflags] & tcp-ack != 0")) == 1


def test_a_packet_keeps_the_types_a_script_needs() -> None:
    data = capdissect.read(TCP_BASIC)[3]
    assert data.src == ipaddress.ip_address("127.0.0.1") and isinstance(data.time, float)
    assert data.datetime.timestamp() == pytest.approx(data.time)
    assert data.payload == b"hello world" and data.raw.ts == data.time  # the Packet's own
    text = repr(data)
    assert text.splitlines()[0].endswith("length 11")
    assert text.splitlines()[1] == '    | data: 11 bytes from the client: "hello world"'
    page = data._repr_html_()
    assert "<table>" in page and "tcp.flags" in page and "P." in page


def test_capture_repr_is_a_summary_and_the_flows_table() -> None:
    cap = capdissect.read(TCP_BASIC)
    lines = repr(cap).splitlines()
    assert lines[0] == "capture tcp-basic.pcap: 11 packets"
    assert lines[1].split()[:3] == ["id", "proto", "client/server"]
    assert max(map(len, lines)) <= 80
    page = cap._repr_html_()  # small: the flows table and the ladder
    assert "<table>" in page and page.count("<svg") >= 1 and ">TIME_WAIT</text>" in page


def test_a_connection_explains_itself() -> None:
    (conn,) = capdissect.read(TCP_BASIC).connections
    summary = repr(conn).splitlines()
    assert summary[0] == ("TCP connection 1: 127.0.0.1:59370 -> 127.0.0.1:30002, open "
                          "three-way, close normal by the client, 11 packets, final "
                          "TIME_WAIT/CLOSED")
    assert summary[2].startswith("server 127.0.0.1:30002: LISTEN -> SYN_RECEIVED")
    assert conn.client_address == (ipaddress.ip_address("127.0.0.1"), 59370)
    assert conn.final == (TcpState.TIME_WAIT, TcpState.CLOSED)
    assert conn.path[0][0] is TcpState.SYN_SENT and conn.open == "three-way"
    assert conn.duration == pytest.approx(0.200509, abs=1e-6)
    page = conn._repr_html_()
    assert page.count("<svg") == 2  # the ladder, and RFC 9293's figure with the path
    for state in ("SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "CLOSE_WAIT", "LAST_ACK"):
        assert f">{state}</text>" in page


def test_udp_conversations_and_reports() -> None:
    cap = capdissect.read(UDP_CONNECTED)
    first, second = cap.connections
    assert first.proto == "udp" and first.final == (None, None)
    assert "1 ICMP unreachable" in repr(second)
    assert "datagram" in second._repr_html_()
    assert "the end of the capture" in str(cap.sockets(every=False))
    assert "TCP connection" not in str(cap.timeline())


def test_ipython_pretty_prints_the_same_text() -> None:
    pretty = pytest.importorskip("IPython.lib.pretty")
    cap = capdissect.read(TCP_BASIC)
    for obj in (cap, cap[0], cap[:2], cap.connections[0], cap.flows(), cap.timeline()):
        assert pretty.pretty(obj) == repr(obj)


def test_html_escapes_what_came_from_the_capture(tmp_path: Path) -> None:
    evil = b"<script>alert(1)</script><img src=x onerror=alert(2)>"
    path = hostile_pcapng(tmp_path / "evil.pcapng", evil, "<b>comment</b>", "<i>eth0</i>")
    cap = capdissect.read(path)
    pages = [cap._repr_html_(), cap[3]._repr_html_(), cap.connections[0]._repr_html_(),
             cap[:4]._repr_html_(), cap.timeline()._repr_html_()]
    for page in pages:
        assert "<script" not in page and "<img" not in page and "<b>comment" not in page


def test_standard_input_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TCP_BASIC.read_bytes())))
    cap = capdissect.read("-")
    assert len(list(cap)) == 11  # list() asks len() first: stdin must not be spent on it
    with pytest.raises(capdissect.CapdissectError, match="only once"):
        list(cap)


def test_reports_and_handout_of_a_file(tmp_path: Path) -> None:
    cap = capdissect.read(TCP_BASIC)
    assert "frame 1" not in str(cap.timeline(1)).split("\n")[0]
    assert str(cap.timeline(1)).startswith("TCP connection 1: client 127.0.0.1:59370")
    with pytest.raises(capdissect.CapdissectError, match="no connection or conversation 2"):
        str(cap.timeline(2))
    assert str(cap.sockets(at="0.0001")).startswith("at +0.000100 s (after frame 5")
    assert "conn_state" in str(cap.flows(wide=True)) and "conn_state" not in str(cap.flows())
    page = cap.handout(tmp_path / "lesson.html", title="Lesson 1")
    assert page.read_text(encoding="utf-8").count('id="p') >= 11
    with pytest.raises(capdissect.CapdissectError, match="whole file"):
        cap.filter("tcp").handout(tmp_path / "filtered.html")
