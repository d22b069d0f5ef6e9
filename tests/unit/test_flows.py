"""``flows``: the SPEC §4 JSON, the CSV and the table, on the bundled captures and on
hand-made packets; and the stream underneath (id order, packed events, spooled UDP)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from capdissect import __version__
from capdissect.commands import reports as analyze
from capdissect.dissect.tcp import ACK, PSH, SYN
from capdissect.report.json.document import json_document
from capdissect.report.tables.flows import table_lines
from capdissect.tracking.stream import Finished, IdOrder, Totals, finished, track
from capdissect.tracking.tracker import Tracker
from capdissect.tracking.udp import UdpConversation
from tests.support.reportwire import Wire, lesson

CAPTURES = Path(__file__).parents[2] / "captures"
TCP_BASIC = CAPTURES / "tcp-basic.pcap"
UDP_BASIC = CAPTURES / "udp-basic.pcap"

C, S = ("127.0.0.1", 40000), ("127.0.0.1", 30002)


def run(fn_output: object) -> str:
    assert not isinstance(fn_output, str)
    return "".join(fn_output)  # type: ignore[call-overload]


def flows_json(path: Path) -> dict[str, object]:
    doc = json.loads(run(analyze.flows(path, "json")))
    assert isinstance(doc, dict)
    return doc


def test_lesson_json_is_spec_section_4() -> None:
    doc = flows_json(TCP_BASIC)
    assert list(doc) == ["capdissect", "file", "tcp", "udp", "packets", "icmp_unreachable"]
    assert doc["capdissect"] == __version__
    assert doc["file"] == str(TCP_BASIC)
    assert (doc["packets"], doc["icmp_unreachable"], doc["udp"]) == (11, 0, [])
    (conn,) = doc["tcp"]  # type: ignore[misc]
    assert conn["id"] == 1
    assert conn["client"].startswith("127.0.0.1:")
    assert conn["server"] == "127.0.0.1:30002"
    expected = {
        "open": "three-way", "close": "normal", "closer": "client", "packets": 11,
        "payload": {"client": 11, "server": 11},
        "final": {"client": "TIME_WAIT", "server": "CLOSED"},
        "path": {"client": ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                            "TIME_WAIT"],
                 "server": ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT",
                            "LAST_ACK", "CLOSED"]},
        "conn_state": "SF", "history": "ShADadFf", "completeness": 31,
    }
    assert {k: conn[k] for k in expected} == expected
    assert "events" not in conn  # flows --json leaves them out (SPEC §4 allows it)


def test_udp_json_and_payload_each_way() -> None:
    doc = flows_json(UDP_BASIC)
    assert doc["tcp"] == []
    (conv,) = doc["udp"]  # type: ignore[misc]
    assert conv["b"] == "127.0.0.1:10001"
    assert (conv["datagrams"], conv["payload"], conv["conn_state"]) == (2, 22, "SF")
    rows = list(csv.DictReader(io.StringIO(run(analyze.flows(UDP_BASIC, "csv")))))
    assert [(r["proto"], r["payload_client"], r["payload_server"]) for r in rows] == [
        ("udp", "11", "11")]


def test_csv_has_a_header_and_one_row_per_flow() -> None:
    text = run(analyze.flows(TCP_BASIC, "csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["open"], row["close"], row["closer"], row["final_client"],
            row["final_server"], row["conn_state"], row["history"], row["completeness"]) == (
        "three-way", "normal", "client", "TIME_WAIT", "CLOSED", "SF", "ShADadFf", "31")


def test_table_row() -> None:
    lines = run(analyze.flows(TCP_BASIC, wide=True)).splitlines()
    assert lines[0].split()[:4] == ["id", "proto", "client", "server"]
    cells = lines[2].split()
    assert cells[0:2] == ["1", "tcp"]
    assert cells[4:7] == ["11", "11", "11"]  # packets, bytes each way
    assert "TIME_WAIT/CLOSED" in cells and "ShADadFf" in cells and "three-way" in cells


def test_narrow_table_gives_client_then_server() -> None:
    lines = run(analyze.flows(TCP_BASIC)).splitlines()
    assert lines[0].split() == ["id", "proto", "client/server", "pkts", "bytes",
                                "open/close", "final"]
    client, server = lines[2].split(), lines[3].split()
    assert client[:6] == ["1", "tcp", "127.0.0.1:59370", "11", "11", "three-way"]
    assert client[6] == "TIME_WAIT" and server == ["127.0.0.1:30002", "11", "normal", "CLOSED"]
    assert max(map(len, lines)) <= 80


def test_table_is_printed_in_chunks_with_a_header_each() -> None:
    w = Wire()
    for port in range(40000, 40005):
        w.tcp(("127.0.0.1", port), S, SYN, 1)
    lines = list(table_lines(finished(track(w.packets), Totals()), chunk=2))
    assert sum(line.startswith("  id") for line in lines) == 3
    ids = [int(line.split()[0]) for line in lines if line[:4].strip().isdigit()]
    assert ids == [1, 2, 3, 4, 5]


def test_empty_capture_says_so() -> None:
    assert list(table_lines(iter([]))) == ["no TCP connections or UDP conversations"]


def test_flows_come_out_in_id_order_within_the_window() -> None:
    order = IdOrder(window=3)

    def item(flow_id: int) -> Finished:
        return Finished(UdpConversation(flow_id, (bytes(4), 1), (bytes(4), 2), 0.0),
                        (), (0, 0))

    out = []
    for flow_id in (2, 3, 1, 5, 6, 7):
        out += [x.flow.id for x in order.push(item(flow_id))]
    assert out == [1, 2, 3]  # 5, 6 and 7 wait for 4
    out += [x.flow.id for x in order.push(item(9))]
    assert out == [1, 2, 3, 5, 6, 7]  # past the window: give up on 4 and move on
    assert [x.flow.id for x in order.flush()] == [9]


def test_tcp_before_udp_with_udp_spooled_and_totals_last() -> None:
    w = Wire()
    w.udp(("127.0.0.1", 5000), ("127.0.0.1", 53), b"q")  # id 1, before any TCP
    lesson(w, C, S)  # id 2
    opened: list[io.StringIO] = []

    def spool() -> io.StringIO:
        opened.append(io.StringIO())
        return opened[-1]

    totals = Totals()
    text = "".join(json_document(finished(track(w.packets), totals), "x.pcap", "9",
                                 totals, events=False, spool=spool))
    doc = json.loads(text)
    assert [c["id"] for c in doc["tcp"]] == [2]
    assert [c["id"] for c in doc["udp"]] == [1]
    assert (doc["packets"], doc["file"], doc["capdissect"]) == (12, "x.pcap", "9")
    assert len(opened) == 1 and opened[0].closed


def test_long_flow_events_stream_as_valid_json() -> None:
    """More events than one write chunk: still one valid object, every event in order."""
    w = Wire()
    w.tcp(C, S, SYN, 0)
    w.tcp(S, C, SYN | ACK, 0, 1)
    for i in range(2500):
        w.tcp(C, S, PSH | ACK, 1 + i, 1, b"x")
    totals = Totals()
    doc = json.loads("".join(json_document(finished(track(w.packets), totals, events=True),
                                           "f", "v", totals, events=True)))
    events = doc["tcp"][0]["events"]
    assert [e["frame"] for e in events] == list(range(1, 2503))
    assert events[-1]["seq"] == 2500 and events[-1]["len"] == 1


def test_packed_events_replay_exactly_what_the_tracker_keeps() -> None:
    """The compact event log gives back the tracker's own events, simultaneous open too
    (where the tracker swaps roles after the fact)."""
    hi, lo = ("127.0.0.1", 50000), ("127.0.0.1", 40000)
    w = Wire()
    w.tcp(hi, lo, SYN, 1)
    w.tcp(lo, hi, SYN, 7)  # the SYNs crossed
    w.tcp(hi, lo, SYN | ACK, 1, 8)
    w.tcp(lo, hi, SYN | ACK, 7, 2)
    w.tcp(lo, hi, PSH | ACK, 8, 2, b"hi")
    lesson(w, C, S)
    keeping = Tracker(keep_events=True)
    for frame, pkt in enumerate(w.packets, 1):
        keeping.feed(frame, pkt)
    want = {conn.id: conn.events for conn in keeping.tcp.close()}
    got = {item.flow.id: [seg.event for seg in item.events]  # type: ignore[union-attr]
           for item in finished(track(w.packets), Totals(), events=True)}
    assert got == want
    assert got[1][0].sender == "server"  # hi sent the first SYN; lo is the client


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_not_a_capture_is_a_capdissect_error(tmp_path: Path, fmt: str) -> None:
    from capdissect.errors import CapdissectError

    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CapdissectError):
        run(analyze.flows(bad, fmt))  # type: ignore[arg-type]


def test_a_bad_file_fails_before_any_output(tmp_path: Path) -> None:
    from capdissect.errors import CapdissectError

    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CapdissectError, match="not a pcap or pcapng"):
        analyze.flows(bad, "json")  # raises on the call: nothing was yielded yet
