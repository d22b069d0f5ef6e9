"""``timeline --svg``'s document of ladders (SPEC §3.3) drawn in process: the library call,
the tracker's own notes (forced to hold markup) escaped, and a flow too long to draw.

The document is parsed with xml.etree (so it is well-formed XML in the SVG namespace).
The readers of the picture defined here serve tests/e2e/test_timeline_svg.py too, which
runs the command on every bundled capture, checks it against ``timeline --json`` and opens
it in Chromium.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Final
from xml.etree import ElementTree as ET

import pytest

from capdissect.commands import reports as analyze
from capdissect.dissect.tcp import ACK, SYN
from capdissect.report.timeline import svg as timeline_svg
from capdissect.report.timeline.svg import svg_document
from capdissect.tracking.eventlog import DRAWN_MAX, Replay, Segment
from capdissect.tracking.stream import Finished, Totals, finished, track
from capdissect.tracking.tcp import Finding, TcpConnection
from tests.support.reportwire import Wire, lesson

CAPTURES: Final = Path(__file__).parents[2] / "captures"
NS: Final = "http://www.w3.org/2000/svg"
S: Final = {"s": NS}
# Every element our SVG may hold: anything else (script, foreignObject, image...) came
# from a capture.
ALLOWED_TAGS: Final = frozenset(f"{{{NS}}}{t}" for t in (
    "svg", "title", "rect", "g", "text", "line", "defs", "marker", "path"))
MARKUP: Final = (b"<script>alert(1)</script>", b"<img src=x onerror=alert(1)>",
                 b"</svg><svg onload=alert(1)>", b"]]><![CDATA[", b"<!--", b"&amp;&#0;",
                 b"\x1b[31mRED\x1b[0m", b"\x1b]0;title\x07", b"\x00\x0b\x9b2J", b'"\'')
HOSTILE: Final = b" ".join(MARKUP)


def parse_document(text: str) -> ET.Element:
    """The root of *text*, checked as a standalone, well-formed SVG document."""
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{{{NS}}}svg"
    width, height = int(root.attrib["width"]), int(root.attrib["height"])
    assert width >= 800 and height > 0
    assert root.attrib["viewBox"] == f"0 0 {width} {height}"
    assert control_chars(text) == []
    # ids are unique and every url(#id) finds its element (each ladder has its own markers)
    ids = [e.attrib["id"] for e in root.iter() if "id" in e.attrib]
    assert len(ids) == len(set(ids)), ids
    assert set(re.findall(r"url\(#([^)]+)\)", text)) <= set(ids)
    return root


def control_chars(text: str) -> list[str]:
    """Characters XML 1.0 forbids or a terminal acts on: C0 (but newline), DEL, C1."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F})


# ----- reading the picture -------------------------------------------------------------------
def flows_of(root: ET.Element) -> list[ET.Element]:
    return root.findall("s:g[@class='flow']", S)


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{{{NS}}}text")]


def arrows(flow: ET.Element, cls: str) -> list[ET.Element]:
    return list(flow.iterfind(f".//s:g[@class='{cls}']", S))


def test_library_call_writes_the_same_document(tmp_path: Path) -> None:
    written = analyze.write_timeline_svg(CAPTURES / "udp-basic.pcap", tmp_path / "u.svg")
    assert written == tmp_path / "u.svg"
    pieces = "".join(analyze.timeline(CAPTURES / "udp-basic.pcap", "svg"))
    assert written.read_text(encoding="utf-8") == pieces


# ----- nothing from a capture becomes markup ---------------------------------------------------
def assert_inert(text: str) -> ET.Element:
    root = parse_document(text)
    tags = {e.tag for e in root.iter()}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    attributes = {a for e in root.iter() for a in e.attrib}
    assert not {a for a in attributes if a.lower().startswith("on") or "href" in a}
    # "onerror" may be there, as text; a "<" that did not become "&lt;" may not.
    for needle in ("<script", "<img", "<![CDATA[", "<!--", "]]>", "\x1b"):
        assert needle not in text
    return root


def test_tracker_notes_are_escaped_too() -> None:
    """Notes, findings and anomalies hold only capdissect's words today; were a capture's
    bytes ever to reach them, they would still be text."""
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    w.udp(("::1", 5000), ("::1", 53), HOSTILE)
    totals = Totals()
    hostile = HOSTILE.decode("latin-1") + "\u202e\ufffe"
    forged = []
    for item in finished(track(w.packets), totals, events=True):
        if not isinstance(item.flow, TcpConnection):
            forged.append(item)
            continue
        item.flow.note_anomaly(hostile)
        events = tuple(Segment(s.event._replace(analysis=(Finding("retransmission", hostile),)),
                               (hostile,)) for s in item.events if isinstance(s, Segment))
        forged.append(Finished(item.flow, events, item.udp_payload))
    text = "".join(svg_document(forged, hostile, "0", totals, spool=io.StringIO))
    root = assert_inert(text)
    words = " ".join(texts(root))
    assert "<script>alert(1)</script>" in words and "anomaly: " in words
    assert "retransmission: " in words


# ----- a flow too long to draw (issue 21, D5) ------------------------------------------------
def test_a_huge_flow_is_drawn_to_its_first_items_then_a_note() -> None:
    """Past DRAWN_MAX items a flow's drawing stops with a line saying what it left out;
    only the drawn items are logged, so memory does not follow the connection's length."""
    extra = 300
    w = Wire()
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 30002)
    lesson(w, client, server)  # 11 segments, then the client sends on (after its FIN)
    for i in range(DRAWN_MAX + extra - 11):
        w.tcp(client, server, ACK, 1013, 5013 + i)
    for _ in range(DRAWN_MAX + extra):
        w.udp(("127.0.0.1", 5000), ("127.0.0.1", 53), b"q")
    text = "".join(analyze.timeline_of(lambda: iter(w.packets), "long.pcap", "svg"))
    root = parse_document(text)
    tcp, udp = flows_of(root)
    assert len(arrows(tcp, "segment")) == DRAWN_MAX
    assert len(arrows(udp, "datagram")) == DRAWN_MAX
    last_tcp = DRAWN_MAX + extra  # the TCP flow's last frame
    assert (f"\u2026 {extra} more segments (frames {DRAWN_MAX + 1} to {last_tcp}) are not "
            f"drawn: a drawing shows the first {DRAWN_MAX} of a flow (the text and JSON "
            "timelines have them all)") in texts(tcp)
    first_udp = DRAWN_MAX + extra + DRAWN_MAX + 1
    assert (f"\u2026 {extra} more datagrams (frames {first_udp} to {2 * (DRAWN_MAX + extra)}) "
            f"are not drawn: a drawing shows the first {DRAWN_MAX} of a flow (the text and "
            "JSON timelines have them all)") in texts(udp)
    # The text timeline is not cut: every segment has its line.
    doc = json.loads("".join(analyze.timeline_of(lambda: iter(w.packets), "long.pcap",
                                                 "json")))
    assert [len(f["events"]) for f in doc["tcp"]] == [DRAWN_MAX + extra]


def test_past_drawn_flows_the_rest_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan or a flood is not drawn flow by flow without end: past DRAWN_FLOWS (made
    small here) one line counts the others."""
    monkeypatch.setattr(timeline_svg, "DRAWN_FLOWS", 3)
    w = Wire()
    for i in range(7):
        w.tcp((f"10.0.0.{i + 1}", 1024 + i), ("127.0.0.1", 80), SYN, i)
    root = parse_document("".join(analyze.timeline_of(lambda: iter(w.packets), "scan.pcap",
                                                      "svg")))
    assert [f.attrib["data-flow"] for f in flows_of(root)] == ["1", "2", "3"]
    assert ("\u2026 4 more flows (4 packets, ids 4 to 7) are not drawn: a timeline drawing "
            "shows the first 3 flows (--conn N draws one)") in texts(root)


def test_a_limited_log_still_takes_revisions_of_what_it_kept() -> None:
    """The tracker rewrites recent events when a crossing shows up; a log at its limit
    still applies that to the items it kept, and counts the rest."""
    w = Wire()
    a, b = ("127.0.0.1", 40000), ("127.0.0.1", 30002)
    w.tcp(a, b, SYN, 100)
    w.tcp(b, a, SYN, 300)  # the SYNs cross: a simultaneous open, states rewritten
    w.tcp(a, b, SYN | ACK, 100, 301)
    w.tcp(b, a, SYN | ACK, 300, 101)
    whole = [s for item in finished(track(w.packets), Totals(), events=True)
             for s in item.events]
    for limit in (1, 2, 3):
        [item] = finished(track(w.packets), Totals(), events=True, limit=limit)
        assert isinstance(item.events, Replay)
        assert list(item.events) == whole[:limit]
        assert item.events.left_out == (4 - limit, limit + 1, 4, limit)

