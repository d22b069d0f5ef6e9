"""``timeline``: the text ladder, Mermaid and the SPEC §4 JSON with events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from capdissect.commands import reports as analyze
from capdissect.dissect.tcp import ACK, RST, SYN
from capdissect.report.text import clean
from capdissect.report.timeline.ladder import _layout, mermaid_lines, mermaid_text, text_lines
from capdissect.tracking.stream import Totals, finished, track
from capdissect.tracking.udp import Datagram
from tests.support.reportwire import Wire, lesson

CAPTURES = Path(__file__).parents[2] / "captures"
TCP_BASIC = CAPTURES / "tcp-basic.pcap"
UDP_BASIC = CAPTURES / "udp-basic.pcap"


def text(pieces: Iterable[str]) -> str:
    return "".join(pieces)


def ladder(w: Wire) -> list[str]:
    totals = Totals()
    return list(text_lines(finished(track(w.packets), totals, events=True), totals))


def arrow_rows(lines: list[str]) -> dict[int, str]:
    """frame -> its arrow row."""
    return {int(m.group(1)): line for line in lines
            if (m := re.match(r"\s*(\d+)\s+\d+\.\d{6}\s+\|", line))}


def test_lesson_ladder_arrows_labels_and_phases() -> None:
    lines = text(analyze.timeline(TCP_BASIC)).splitlines()
    assert lines[0].startswith("TCP connection 1: client 127.0.0.1:")
    assert "open three-way, close normal by the client" in lines[1]
    rows = arrow_rows(lines)
    assert sorted(rows) == list(range(1, 12))
    rightward = {n for n, row in rows.items() if "->|" in row}
    leftward = {n for n, row in rows.items() if "|<-" in row}
    assert rightward == {1, 3, 4, 7, 8, 11} and leftward == {2, 5, 6, 9, 10}
    assert " S seq 0 " in rows[1] and rows[1].endswith("handshake SYN")
    assert " S. seq 0 ack 1 " in rows[2] and rows[2].endswith("handshake SYN-ACK")
    assert " P. 1:12 ack 1 (11 bytes) " in rows[4] and rows[4].endswith("data")
    assert " F. seq 12 ack 12 " in rows[8] and rows[8].endswith("teardown FIN")
    assert rows[1].startswith("    1  0.000000   |")  # frame and time since the first packet


def test_state_boxes_sit_on_the_lifelines() -> None:
    lines = text(analyze.timeline(TCP_BASIC)).splitlines()
    row1 = next(i for i, line in enumerate(lines) if line.lstrip().startswith("1 "))
    left = lines[row1].index("|")
    right = lines[row1].rindex("|")
    initial, after_syn = lines[row1 - 1], lines[row1 + 1]
    assert initial[left:].startswith("[CLOSED]") and initial.endswith("[LISTEN]")
    assert len(initial) == right + 1  # the server's box ends on its lifeline
    # SPEC §4: the server shows it got the SYN with its SYN-ACK, so it is still LISTEN.
    assert after_syn[left:].startswith("[SYN_SENT]") and after_syn.endswith("|")
    boxes = [b for line in lines for b in re.findall(r"\[([A-Z_0-9]+)\]", line)]
    assert boxes == ["CLOSED", "LISTEN", "SYN_SENT", "ESTABLISHED", "SYN_RECEIVED",
                     "ESTABLISHED", "FIN_WAIT_1", "CLOSE_WAIT", "FIN_WAIT_2", "TIME_WAIT",
                     "LAST_ACK", "CLOSED"]


def test_udp_ladder_has_no_state_and_links_the_icmp_error() -> None:
    w = Wire()
    datagram = w.udp(("127.0.0.1", 42616), ("127.0.0.1", 10001), b"hello world")
    w.unreachable("127.0.0.1", "127.0.0.1", datagram)
    lines = ladder(w)
    assert "(no state)" in "\n".join(lines)
    rows = arrow_rows(lines)
    assert "11 bytes" in rows[1] and "->|" in rows[1]
    assert "ICMP port unreachable" in rows[2] and "|<." in rows[2]
    assert "answers frame 1: nothing listens on port 10001" in rows[2]


def test_bundled_udp_capture() -> None:
    lines = text(analyze.timeline(UDP_BASIC)).splitlines()
    assert lines[0].startswith("UDP conversation 1: 127.0.0.1:")
    rows = arrow_rows(lines)
    assert "->|" in rows[1] and "|<-" in rows[2]


def test_findings_and_notes_go_under_their_arrow() -> None:
    w = Wire()
    w.tcp(("127.0.0.1", 40000), ("127.0.0.1", 9), SYN, 1)
    w.tcp(("127.0.0.1", 9), ("127.0.0.1", 40000), RST | ACK, 0, 2)
    lines = ladder(w)
    row = next(i for i, line in enumerate(lines) if line.lstrip().startswith("2 "))
    assert "connection refused" in lines[row + 1]
    assert "open refused, close none;" in lines[1]  # SPEC §4: no server socket existed


def test_timeline_json_is_spec_section_4_with_events() -> None:
    doc = json.loads(text(analyze.timeline(TCP_BASIC, "json")))
    assert list(doc) == ["capdissect", "file", "tcp", "udp", "packets", "icmp_unreachable"]
    conn = doc["tcp"][0]
    events = conn["events"]
    assert len(events) == 11
    first = dict(events[0])
    assert isinstance(first.pop("ts"), float)
    assert first == {"frame": 1, "from": "client", "flags": "S", "seq": 0, "ack": None,
                     "len": 0, "phase": "handshake", "label": "SYN",
                     "states": {"client": "SYN_SENT", "server": "LISTEN"},
                     "analysis": []}
    assert [e["from"] for e in events] == ["client", "server", "client", "client", "server",
                                           "server", "client", "client", "server", "server",
                                           "client"]
    assert events[-1]["states"] == {"client": "TIME_WAIT", "server": "CLOSED"}
    assert [e["phase"] for e in events].count("teardown") == 4


def test_udp_json_events_merge_datagrams_and_icmp_in_frame_order() -> None:
    w = Wire()
    a, b = ("127.0.0.1", 42616), ("127.0.0.1", 10001)
    first = w.udp(a, b, b"x")
    w.unreachable("127.0.0.1", "127.0.0.1", first)
    w.udp(a, b, b"yy")
    totals = Totals()
    from capdissect.report.json.document import json_document

    doc = json.loads("".join(json_document(finished(track(w.packets), totals, events=True),
                                           "f", "v", totals, events=True)))
    conv = doc["udp"][0]
    assert [e["frame"] for e in conv["events"]] == [1, 2, 3]
    assert conv["events"][1] == {"frame": 2, "ts": conv["events"][1]["ts"],
                                 "icmp": "port unreachable", "answers_frame": 1}
    assert (conv["icmp_unreachable"], doc["icmp_unreachable"]) == (1, 1)


def test_conn_selects_one_flow_and_a_missing_one_is_an_error() -> None:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    lesson(w, ("127.0.0.1", 40001), ("127.0.0.1", 30002))
    totals = Totals()
    only = list(finished(track(w.packets), totals, events=True, only=2))
    assert [item.flow.id for item in only] == [2]
    assert len(only[0].events) == 11
    from capdissect.errors import CapdissectError

    with pytest.raises(CapdissectError, match="no connection or conversation 7"):
        text(analyze.timeline(TCP_BASIC, conn=7))
    assert text(analyze.timeline(TCP_BASIC, conn=1)).startswith("TCP connection 1:")


def test_mermaid_lesson() -> None:
    lines = text(analyze.timeline(TCP_BASIC, "mermaid")).splitlines()
    assert lines[0] == "sequenceDiagram"
    assert lines[2].startswith("    participant C as client 127.0.0.1:")
    assert lines[3] == "    participant S as server 127.0.0.1:30002"
    assert "    C->>S: 1 S seq 0 (handshake SYN)" in lines
    assert "    S->>C: 2 S. seq 0 ack 1 (handshake SYN-ACK)" in lines
    notes = [line.split(": ", 1)[1] for line in lines if line.startswith("    Note over")]
    assert notes[:4] == ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED"]
    assert sum(line.startswith("    C->>S") or line.startswith("    S->>C")
               for line in lines) == 11


def test_mermaid_neutralises_what_could_break_the_syntax() -> None:
    hostile = 'x;y#z%%\nNote over C: <b>"end"</b>\r`'
    safe = mermaid_text(hostile)
    # Mermaid turns #NN; entities into placeholders before it parses; outside them only
    # letters, digits and harmless punctuation remain (no ; # % newline < > quotes).
    assert re.fullmatch(r"[A-Za-z0-9 .,:_()/+='-]*", re.sub(r"#\d+;", "", safe))
    assert "#59;" in safe and "#10;" in safe and "#60;" in safe
    assert mermaid_text("client 127.0.0.1:40000") == "client 127.0.0.1:40000"
    assert mermaid_text("[::1]:30002") == "#91;::1#93;:30002"
    w = Wire()
    w.udp(("::1", 5000), ("::1", 53), b"q")
    lines = list(mermaid_lines(finished(track(w.packets), Totals(), events=True)))
    assert "    participant A as #91;::1#93;:5000" in lines
    assert all("\n" not in line for line in lines)


def test_text_output_has_no_control_characters() -> None:
    assert clean("ok\x1b[2J\x07\u202eevil\n") == "ok.[2J..evil."
    lines = text(analyze.timeline(TCP_BASIC)).splitlines()
    assert all(line.isprintable() for line in lines)


def test_fast_event_json_matches_the_general_encoder() -> None:
    """document.item_json_text writes common events with f-strings: same text as json."""
    from capdissect.report.json.document import item_json, item_json_text
    from capdissect.tracking.eventlog import Segment
    from capdissect.tracking.tcp import Finding

    w = Wire()
    lesson(w, ("::1", 40000), ("::1", 30002))
    w.tcp(("::1", 40001), ("::1", 30002), ACK, 5, 7)  # mid-stream: no ISN seen
    datagram = w.udp(("127.0.0.1", 42616), ("127.0.0.1", 10001), b'"quoted"\n')
    w.unreachable("127.0.0.1", "127.0.0.1", datagram)
    items = [x for f in finished(track(w.packets), Totals(), events=True) for x in f.events]
    assert len(items) == 14
    segment = items[0]
    assert isinstance(segment, Segment)
    with_finding = Segment(segment.event._replace(
        analysis=(Finding("retransmission", 'seq "1:12"\tbelow 12'),)), ())
    for item in [*items, with_finding]:
        assert item_json_text(item) == json.dumps(item_json(item))
        json.loads(item_json_text(item))


def test_templated_event_json_matches_event_by_event() -> None:
    """Replay.json_texts (templates per kind of segment) == the general encoder, also
    after a simultaneous open swapped the roles and for UDP with an ICMP error."""
    from capdissect.dissect.tcp import PSH
    from capdissect.report.json.document import item_json_text
    from capdissect.tracking.eventlog import Replay

    hi, lo = ("127.0.0.1", 50000), ("127.0.0.1", 40000)
    w = Wire()
    w.tcp(hi, lo, SYN, 1)
    w.tcp(lo, hi, SYN, 7)  # the SYNs crossed: the tracker swaps the roles
    w.tcp(hi, lo, SYN | ACK, 1, 8)
    w.tcp(lo, hi, SYN | ACK, 7, 2)
    for i in range(5):
        w.tcp(lo, hi, PSH | ACK, 8 + i, 2, b"x")
        w.tcp(hi, lo, ACK, 2, 9 + i)
    lesson(w, ("127.0.0.1", 40001), ("127.0.0.1", 30002))
    datagram = w.udp(("127.0.0.1", 42616), ("127.0.0.1", 10001), b"q")
    w.unreachable("127.0.0.1", "127.0.0.1", datagram)
    w.udp(("127.0.0.1", 10001), ("127.0.0.1", 42616), b"100%")
    flows = list(finished(track(w.packets), Totals(), events=True))
    assert len(flows) == 3
    for item in flows:
        assert isinstance(item.events, Replay)
        want = [item_json_text(x) for x in item.events]
        assert list(item.events.json_texts(item_json_text)) == want
        assert [json.loads(t)["frame"] for t in want] == sorted(x.frame for x in item.events)


@given(st.lists(st.tuples(st.integers(1, 10**9),
                          st.floats(-1e7, 1e7, allow_nan=False) | st.sampled_from(
                              [9.9999995, 9.9999994, 99.9999995, -0.0000005, -9.9999995])),
                min_size=1, max_size=30),
       st.floats(-10.0, 10.0, allow_nan=False))
@example([(1, 0.0), (1, -0.0)], 0.0)  # found by this test: -0.0 is as small as 0.0
def test_gutter_widths_fit_every_frame_and_time(rows: list[tuple[int, float]],
                                                first_ts: float) -> None:
    """The layout takes its widths from the largest frame and the earliest and latest
    times only: a number spelt wider than those would break a ladder's columns."""
    items = [Datagram(frame, ts, "a", 1) for frame, ts in rows]
    layout = _layout(items, first_ts, ("a", "b"))
    assert layout.frame_w == max(5, *(len(str(frame)) for frame, _ in rows))
    assert layout.time_w == max(8, *(len(f"{ts - first_ts:.6f}") for _, ts in rows))
    for frame, ts in rows:
        assert len(layout.gutter(frame, ts - first_ts)) == layout.left
