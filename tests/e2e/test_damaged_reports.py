"""Damaged captures in every report (SPEC §4, issues #13 and #21 D1).

A capture cut at any byte gives every report of what came before the cut: the frames
tcpdump prints, the flows still open at the damage, valid JSON with a ``truncated``
member, a visible "cut short" line elsewhere, then one error line and exit status 1.
tcpdump is the oracle for how many frames were whole.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

import capdissect
from capdissect.cli import app

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("capdissect"))
TCP_BASIC = ROOT / "captures" / "tcp-basic.pcap"
# A real pcapng capture (Linux cooked, six TCP segments of one LDAP connection).
PCAPNG = ROOT / "tests" / "corpus" / "zeek_ldap_issue-32.pcapng"
D01 = ROOT / "tests" / "damaged" / "D01_truncated_tcp_basic.pcap"  # #21's reproducer
CUT_SHORT = "cut short: the capture is damaged after frame"

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")


def pcap_records(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset, length) of each record of a classic little-endian pcap file."""
    offset = 24
    while offset + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        yield offset, 16 + caplen
        offset += 16 + caplen


def pcapng_blocks(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset, length, type) of each block of a little-endian pcapng file."""
    offset = 0
    while offset + 8 <= len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        yield offset, length, block_type
        offset += length


def cut_points(path: Path) -> list[int]:
    """Every record (block) boundary after the file's head, and cuts inside each record:
    in its header, in the middle, one byte short."""
    data = path.read_bytes()
    if path.suffix == ".pcapng":
        blocks = list(pcapng_blocks(data))
        first_idb = next(i for i, b in enumerate(blocks) if b[2] == 1)
        records = [(offset, length) for offset, length, _ in blocks[first_idb + 1 :]]
    else:
        records = list(pcap_records(data))
    points = {len(data)}
    for offset, length in records:
        points |= {offset, offset + 5, offset + length // 2, offset + length - 1}
    return sorted(points)


def tcpdump_count(path: Path) -> tuple[int, bool]:
    """How many packets ``tcpdump -r`` prints, and whether it reported damage."""
    proc = subprocess.run(["tcpdump", "-r", str(path), "-nn"], capture_output=True,
                          text=True, timeout=30, check=False)
    return len(proc.stdout.splitlines()), proc.returncode != 0


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def frames_in(document: dict[str, Any]) -> set[int]:
    return {event["frame"] for flow in document["tcp"] + document["udp"]
            for event in flow.get("events", ())}


@pytest.mark.tcpdump
@needs_tcpdump
@pytest.mark.parametrize("capture", [TCP_BASIC, PCAPNG], ids=["pcap", "pcapng"])
def test_every_cut_gives_valid_json_of_the_frames_before_it(tmp_path: Path,
                                                             capture: Path) -> None:
    data = capture.read_bytes()
    points = cut_points(capture)
    damaged = 0
    for point in points:
        cut = tmp_path / f"cut{capture.suffix}"
        cut.write_bytes(data[:point])
        whole, broken = tcpdump_count(cut)
        damaged += broken
        for command in ("flows", "timeline"):
            result = cli(command, str(cut), "--json")
            where = f"{command} cut at byte {point} of {len(data)}"
            document = json.loads(result.stdout)  # valid JSON, whole, at every cut
            assert document["packets"] == whole, where
            assert sum(flow["packets"] for flow in document["tcp"]) == whole, where
            if broken:
                assert result.exit_code == 1, where
                assert document["truncated"]["after_frame"] == whole, where
                assert "truncated capture file" in document["truncated"]["error"], where
                errors = result.stderr.splitlines()
                assert len(errors) == 1 and errors[0].startswith("capdissect: "), where
                assert errors[0] == "capdissect: " + document["truncated"]["error"], where
            else:
                assert result.exit_code == 0, where
                assert "truncated" not in document, where
            if command == "timeline":
                # Every packet here is a TCP segment: each one before the cut is an event.
                assert frames_in(document) == set(range(1, whole + 1)), where
    assert damaged >= 2 * (len(points) // 3)  # most cuts fall inside a record


def test_open_connection_at_the_damage_is_reported_everywhere() -> None:
    """D1: tcpdump prints 7 packets; the connection is still open at the damage."""
    result = cli("flows", str(D01), "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["truncated"]["after_frame"] == 7 and document["packets"] == 7
    [conn] = document["tcp"]
    assert conn["packets"] == 7 and conn["close"] == "none"
    assert conn["final"] == {"client": "ESTABLISHED", "server": "ESTABLISHED"}

    timeline = json.loads(cli("timeline", str(D01), "--json").stdout)
    assert frames_in(timeline) == set(range(1, 8))
    assert timeline["truncated"] == document["truncated"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process: no traceback may reach stderr."""
    proc = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=cwd, env={"PATH": "/usr/bin:/bin", "TZ": "UTC"})
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("capdissect:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    assert "truncated capture file" in errors[0]
    return proc


@pytest.mark.parametrize("args", [
    ("flows",), ("flows", "--csv"), ("timeline",), ("timeline", "--mermaid"),
    ("sockets",), ("sockets", "--every"), ("sockets", "--after", "99"),
    ("sockets", "--at", "10"),
])
def test_text_reports_mark_the_cut(args: tuple[str, ...]) -> None:
    proc = run(args[0], str(D01), *args[1:])
    if args == ("flows", "--csv"):  # CSV has no room for a note: the rows, then the error
        rows = proc.stdout.splitlines()
        assert len(rows) == 2 and rows[1].split(",")[4] == "7"
        return
    assert CUT_SHORT + " 7" in proc.stdout
    if args[0] == "sockets":  # the connection open at the damage is in the table
        assert "127.0.0.1:59370         127.0.0.1:30002         ESTABLISHED" in proc.stdout
    if args == ("timeline",):  # the ladder has an arrow for each of the 7 frames
        frames = [line.split()[0] for line in proc.stdout.splitlines()
                  if "|" in line and line[:5].strip().isdigit()]
        assert frames == [str(n) for n in range(1, 8)]
    if args == ("timeline", "--mermaid"):
        assert proc.stdout.rstrip().splitlines()[-1].startswith("%% " + CUT_SHORT)


def test_svg_timeline_is_written_and_marked(tmp_path: Path) -> None:
    out = tmp_path / "t.svg"
    run("timeline", str(D01), "--svg", str(out))
    root = ElementTree.parse(out).getroot()  # a whole, well-formed document
    texts = "".join(root.itertext())
    assert CUT_SHORT + " 7" in texts


@pytest.mark.parametrize("suffix", [".html", ".md", ".pdf"])
def test_handout_is_written_and_marked(tmp_path: Path, suffix: str) -> None:
    if suffix == ".pdf":
        from capdissect.commands.handout import find_chromium

        if find_chromium() is None:
            pytest.skip("a PDF needs Chromium")
    out = tmp_path / f"lesson{suffix}"
    run("handout", str(D01), "-o", str(out))
    if suffix == ".pdf":
        assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 1000
        return
    text = out.read_text()
    assert "cut short" in text and "damaged after frame 7" in text
    assert "Packet 7" in text and "Packet 8" not in text


def test_annotate_writes_every_whole_packet_and_marks_the_last(tmp_path: Path) -> None:
    out = tmp_path / "a.pcapng"
    run("annotate", str(D01), "-o", str(out))
    comments = [pkt.raw.comment for pkt in capdissect.read(out)]
    assert len(comments) == 7
    assert comments[-1] is not None and CUT_SHORT + " 7" in comments[-1]
    assert all(c is not None and CUT_SHORT not in c for c in comments[:-1])


def test_api_carries_the_truncation() -> None:
    tracked = capdissect.track(capdissect.read(D01))
    assert tracked.truncated is not None and tracked.truncated.after_frame == 7
    assert len(tracked.packets) == 7 and len(tracked.connections) == 1
    for report in (tracked.flows(), tracked.timeline(), tracked.sockets()):
        assert CUT_SHORT + " 7" in str(report)
    assert CUT_SHORT in tracked._repr_html_()
