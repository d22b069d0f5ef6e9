"""``timeline --svg`` as a command: one standalone SVG document of ladders (SPEC §3.3),
checked against ``timeline --json`` for the same capture.

Flow by flow, the picture must say what the JSON says: one ladder per connection or
conversation, one arrow per packet (same frames, same direction), labels with the flags,
relative seq/ack, length and phase, and state boxes that follow each endpoint's states
event by event.  A crafted capture with markup and terminal escapes in its payloads,
comments and interface name must not get a tag or a control character into the file.
With Chromium installed, the file is opened the way a browser shows it: no console
message, and a screenshot with the ladders' colours on it.  The drawing in process is in
tests/unit/test_timeline_svg.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from xml.etree import ElementTree as ET

import pytest

from capdissect.commands.handout import CHROMIUM_FLAGS, find_chromium
from capdissect.report.handout.svg import CLIENT_COLOUR, SERVER_COLOUR
from tests.support.compare import capdissect_command
from tests.unit.test_timeline_svg import (
    CAPTURES,
    HOSTILE,
    S,
    arrows,
    assert_inert,
    flows_of,
    parse_document,
    texts,
)

BUNDLED: Final = sorted(p.name for p in CAPTURES.glob("*.pcap"))

SPEC_STATES: Final = frozenset({
    "CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
    "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"})

CHROMIUM: Final = find_chromium()

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(Debian: apt-get install chromium)")


# ----- running the command -----------------------------------------------------------------
def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*capdissect_command(), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def write_svg(capture: Path, out: Path, *extra: str) -> ET.Element:
    """``timeline CAPTURE --svg OUT``, checked as a standalone SVG document; its root."""
    done = run("timeline", str(capture), "--svg", str(out), *extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == f"wrote {out}\n"
    return parse_document(out.read_text(encoding="utf-8"))


def timeline_json(capture: Path, *extra: str) -> dict[str, Any]:
    done = run("timeline", str(capture), "--json", *extra)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def boxes(flow: ET.Element, colour: str) -> list[str]:
    """The state boxes on one lifeline (by their colour), top to bottom."""
    found = []
    for box in flow.iterfind(".//s:g[@class='state']", S):
        rect = box.find("s:rect", S)
        assert rect is not None
        if rect.attrib["stroke"] == colour:
            found.append("".join(texts(box)))
    return found


def runs(states: list[str]) -> list[str]:
    """*states* without consecutive repeats: where a box is drawn."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def rightward(arrow: ET.Element) -> bool:
    line = arrow.find("s:line", S)
    assert line is not None
    return float(line.attrib["x1"]) < float(line.attrib["x2"])


def check_tcp(flow: ET.Element, conn: dict[str, Any]) -> None:
    events = conn["events"]
    segments = arrows(flow, "segment")
    assert len(segments) == conn["packets"] == len(events)
    assert [int(a.attrib["data-frame"]) for a in segments] == [e["frame"] for e in events]
    for arrow, event in zip(segments, events, strict=True):
        assert rightward(arrow) == (event["from"] == "client")
        frame, _time, label, note = texts(arrow)
        assert frame == f"#{event['frame']}"
        flags, seq, ack, length = event["flags"], event["seq"], event["ack"], event["len"]
        assert label.split(" ")[0] == flags
        if ack is not None:
            assert f"ack {ack}" in label
        if length:
            assert f"{seq}:{seq + length} " in label and f"({length} byte" in label
        elif seq is not None and flags != ".":
            assert f"seq {seq}" in label
        assert note.split(" ")[0] == event["phase"]
    title = texts(flow)[0]
    assert title == f"TCP connection {conn['id']}: client {conn['client']}, server " \
                    f"{conn['server']}"
    flow_texts = texts(flow)
    for role, colour in (("client", CLIENT_COLOUR), ("server", SERVER_COLOUR)):
        drawn = boxes(flow, colour)
        shown = [e["states"][role] for e in events if e["states"][role] is not None]
        endpoint = conn[role]
        if not shown:  # a refused SYN's server: no socket, no state (SPEC §4)
            assert drawn == ["no socket"] and conn["path"][role] == []
            assert f"{role} {endpoint}: - (no socket)" in flow_texts
            continue
        assert set(drawn) <= SPEC_STATES, drawn
        # A box where the state changes, starting from the state before the first segment.
        assert drawn == runs(drawn[:1] + shown), role
        assert drawn[-1] == conn["final"][role]
        # The path SPEC §4 lists is written under the ladder.
        assert f"{role} {endpoint}: {' -> '.join(conn['path'][role])}" in flow_texts


def check_udp(flow: ET.Element, conv: dict[str, Any]) -> None:
    events = conv["events"]
    datagrams, icmp = arrows(flow, "datagram"), arrows(flow, "icmp")
    assert len(datagrams) == conv["datagrams"] and len(icmp) == conv["icmp_unreachable"]
    assert [int(a.attrib["data-frame"]) for a in datagrams] == \
        [e["frame"] for e in events if "len" in e]
    assert [int(a.attrib["data-frame"]) for a in icmp] == \
        [e["frame"] for e in events if "icmp" in e]
    for arrow, event in zip(datagrams, [e for e in events if "len" in e], strict=True):
        assert rightward(arrow) == (event["from"] == "a")
        assert texts(arrow)[2] == f"{event['len']} bytes"
    for arrow, event in zip(icmp, [e for e in events if "icmp" in e], strict=True):
        assert "ICMP port unreachable" in texts(arrow)
        assert f"answers #{event['answers_frame']}" in texts(arrow)
    assert texts(flow)[0] == f"UDP conversation {conv['id']}: {conv['a']} <-> {conv['b']}"
    assert texts(flow).count("(no state)") == 2
    assert not flow.findall(".//s:g[@class='state']", S)


def check_against_json(root: ET.Element, doc: dict[str, Any]) -> None:
    """One ladder per flow of the JSON, in id order, each saying what the JSON says."""
    expected = sorted([("tcp", f) for f in doc["tcp"]] + [("udp", f) for f in doc["udp"]],
                      key=lambda pair: int(pair[1]["id"]))
    drawn = flows_of(root)
    assert [(f.attrib["data-proto"], int(f.attrib["data-flow"])) for f in drawn] == \
        [(proto, f["id"]) for proto, f in expected]
    for flow, (proto, item) in zip(drawn, expected, strict=True):
        ladders = flow.findall(".//s:svg", S)
        assert len(ladders) == 1  # one ladder per flow
        assert not flow.findall(".//s:a", S)  # no links to packet sections this file lacks
        if proto == "tcp":
            check_tcp(flow, item)
        else:
            check_udp(flow, item)


# ----- bundled captures ----------------------------------------------------------------------
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_capture_matches_timeline_json(name: str, tmp_path: Path) -> None:
    capture = CAPTURES / name
    root = write_svg(capture, tmp_path / "out.svg")
    doc = timeline_json(capture)
    assert len(flows_of(root)) == len(doc["tcp"]) + len(doc["udp"]) >= 1
    check_against_json(root, doc)


def test_lesson_ladder_reads_like_the_text_timeline(tmp_path: Path) -> None:
    root = write_svg(CAPTURES / "tcp-basic.pcap", tmp_path / "tcp-basic.svg")
    (flow,) = flows_of(root)
    assert boxes(flow, CLIENT_COLOUR) == ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1",
                                          "FIN_WAIT_2", "TIME_WAIT"]
    assert boxes(flow, SERVER_COLOUR) == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED",
                                          "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    labels = {int(a.attrib["data-frame"]): texts(a)[2:] for a in arrows(flow, "segment")}
    assert labels[1] == ["S seq 0", "handshake SYN"]
    assert labels[2] == ["S. seq 0 ack 1", "handshake SYN-ACK"]
    assert labels[4] == ["P. 1:12 ack 1 (11 bytes)", "data"]
    assert labels[8] == ["F. seq 12 ack 12", "teardown FIN"]
    assert "open three-way, close normal by the client; 11 packets in 0.200509 s" in texts(flow)
    title = root.find("s:title", S)
    assert title is not None and title.text == f"capdissect timeline of {CAPTURES}/tcp-basic.pcap"


def test_crossing_fins_note_and_retransmissions_under_their_arrows(tmp_path: Path) -> None:
    root = write_svg(CAPTURES / "tcp-simultaneous-close.pcap", tmp_path / "close.svg")
    words = texts(root)
    assert any(w.startswith("the FINs crossed:") for w in words)
    assert "a simultaneous close" in " ".join(words)  # the note is wrapped, not clipped
    assert sum(w.startswith("retransmission: seq 12:12") for w in words) == 2
    assert boxes(flows_of(root)[0], SERVER_COLOUR)[-2:] == ["CLOSING", "TIME_WAIT"]


def concatenated(names: list[str], out: Path) -> Path:
    """One classic pcap of several bundled ones, each shifted to start 10 s after the
    last packet before it (all are little-endian microsecond pcaps of the same link type)."""
    header = b""
    records: list[bytes] = []
    clock = 0.0
    for name in names:
        data = (CAPTURES / name).read_bytes()
        header = header or data[:24]
        assert data[:24] == header
        offset, shift = 24, None
        while offset < len(data):
            sec, usec, incl, orig = struct.unpack_from("<IIII", data, offset)
            ts = sec + usec / 1e6
            if shift is None:
                shift = (clock + 10 - ts) if clock else 0.0
            ts += shift
            clock = ts
            whole, frac = int(ts), round((ts - int(ts)) * 1e6)
            records.append(struct.pack("<IIII", whole, frac, incl, orig)
                           + data[offset + 16: offset + 16 + incl])
            offset += 16 + incl
    out.write_bytes(header + b"".join(records))
    return out


def test_several_flows_stack_one_ladder_each_and_conn_selects_one(tmp_path: Path) -> None:
    capture = concatenated(["tcp-basic.pcap", "udp-connected.pcap",
                            "tcp-simultaneous-close.pcap", "udp-unreachable.pcap"],
                           tmp_path / "mixed.pcap")
    root = write_svg(capture, tmp_path / "mixed.svg")
    doc = timeline_json(capture)
    assert [f.attrib["data-proto"] for f in flows_of(root)] == ["tcp", "udp", "udp", "tcp",
                                                                "udp"]
    check_against_json(root, doc)
    # Stacked: each flow starts below the one before it.
    tops = [int(re.findall(r"\d+", f.attrib["transform"])[1]) for f in flows_of(root)]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert int(root.attrib["height"]) > tops[-1] + 100
    for conn in (2, 4):
        only = write_svg(capture, tmp_path / f"conn{conn}.svg", "--conn", str(conn))
        assert [f.attrib["data-flow"] for f in flows_of(only)] == [str(conn)]
        check_against_json(only, timeline_json(capture, "--conn", str(conn)))


def test_a_capture_without_flows_is_a_valid_svg_saying_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes((CAPTURES / "tcp-basic.pcap").read_bytes()[:24])
    root = write_svg(empty, tmp_path / "empty.svg")
    assert flows_of(root) == []
    assert "no TCP connections or UDP conversations" in texts(root)


# ----- the command line ----------------------------------------------------------------------
def test_svg_is_exclusive_with_json_and_mermaid(tmp_path: Path) -> None:
    for other in ("--json", "--mermaid"):
        done = run("timeline", str(CAPTURES / "tcp-basic.pcap"), "--svg",
                   str(tmp_path / "x.svg"), other)
        assert done.returncode == 2
        assert f"{other} and --svg cannot be used together" in done.stderr
    assert not (tmp_path / "x.svg").exists()


@pytest.mark.parametrize("case", ["no-such-dir", "a-directory", "no-such-conn",
                                  "not-a-capture"])
def test_errors_are_one_line_and_leave_no_file(case: str, tmp_path: Path) -> None:
    capture, out, extra = CAPTURES / "tcp-basic.pcap", tmp_path / "out.svg", []
    if case == "no-such-dir":
        out = tmp_path / "missing" / "out.svg"
    elif case == "a-directory":
        out = tmp_path
    elif case == "no-such-conn":
        extra = ["--conn", "9"]
    else:
        capture = tmp_path / "notes.txt"
        capture.write_text("not a capture\n")
    done = run("timeline", str(capture), "--svg", str(out), *extra)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capdissect: "), done.stderr
    assert {"no-such-dir": "No such file or directory", "a-directory": "Is a directory",
            "no-such-conn": "no connection or conversation 9",
            "not-a-capture": "not a pcap or pcapng capture"}[case] in lines[0]
    assert not out.is_file()


def test_hostile_pcapng_injects_nothing(tmp_path: Path) -> None:
    from tests.support.handoutwire import hostile_pcapng

    hostile_text = HOSTILE.decode("latin-1")
    # A file name with markup and an escape too: it is the document's title.
    name = "evil<img src=x onerror=alert(1)>&\x1b[31m.pcapng"
    capture = hostile_pcapng(tmp_path / name, HOSTILE, comment="comment " + hostile_text,
                             iface="lo</svg><script>x")
    out = tmp_path / "hostile.svg"
    done = run("timeline", str(capture), "--svg", str(out))
    assert done.returncode == 0, done.stderr
    root = assert_inert(out.read_text(encoding="utf-8"))
    check_against_json(root, timeline_json(capture))
    title = root.find("s:title", S)
    assert title is not None
    # The escape became ".", the markup is the title's text.
    assert title.text == (f"capdissect timeline of {tmp_path}/"
                          "evil<img src=x onerror=alert(1)>&.[31m.pcapng")


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def png_pixels(png: bytes) -> Iterator[tuple[int, int, int]]:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (Chromium's screenshots),
    decoded with zlib and the five PNG filters (PNG spec §9), so no imaging library is needed."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, ihdr = 8, b"", b""
    while offset < len(png):
        (length,), kind = struct.unpack_from(">I", png, offset), png[offset + 4: offset + 8]
        body = png[offset + 8: offset + 8 + length]
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prior = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1: start + 1 + stride])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up, corner = prior[i], (prior[i - bpp] if i >= bpp else 0)
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                near = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[i] = (row[i] + near) & 0xFF
        for x in range(0, stride, bpp):
            yield row[x], row[x + 1], row[x + 2]
        prior = row


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.chromium
@needs_chromium
def test_chromium_displays_the_ladders(tmp_path: Path) -> None:
    svg = tmp_path / "close.svg"
    root = write_svg(CAPTURES / "tcp-simultaneous-close.pcap", svg)
    dom = chromium("--dump-dom", svg.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    assert "parsererror" not in dom.stdout  # Chromium's page for XML it cannot parse
    assert dom.stdout.count('class="segment"') == 13
    shot = tmp_path / "close.png"
    width, height = root.attrib["width"], root.attrib["height"]
    done = chromium("--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={shot}", svg.as_uri(), profile=tmp_path / "profile-shot")
    assert shot.exists(), done.stderr[-2000:]
    pixels = list(png_pixels(shot.read_bytes()))
    ink = sum(1 for p in pixels if p != (255, 255, 255))
    client = sum(1 for p in pixels if p == rgb(CLIENT_COLOUR))
    server = sum(1 for p in pixels if p == rgb(SERVER_COLOUR))
    # Not blank: text, lines and boxes cover a few percent of the page, and both
    # directions' arrows and state boxes are drawn in their colours.
    assert ink > len(pixels) // 100, (ink, len(pixels))
    assert client > 500 and server > 500, (client, server)
    keep = os.environ.get("CAPDISSECT_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / "timeline-svg.png")
