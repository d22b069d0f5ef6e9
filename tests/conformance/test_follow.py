"""`capdissect follow` (issue #18) against Wireshark's Follow TCP Stream.

For every TCP connection of every corpus capture and lesson capture, ``follow --raw``
must print, line for line and byte for byte, the data lines of
``tshark -q -z follow,tcp,raw,N`` for the stream holding the connection's first packet
(tshark numbers streams from 0 over TCP only; capdissect numbers flows of both
protocols), gaps marked as tshark marks them, and a segment sent in IP fragments put
back together as tshark does.  Every tshark stream that carries data must
be one of capdissect's connections.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from capdissect.dissect.stack import decode
from capdissect.errors import CapdissectError
from capdissect.report.follow import follow, raw_lines, segments
from capdissect.sources.files import open_capture

ROOT: Final = Path(__file__).resolve().parents[2]
FILES: Final = sorted(p for folder in ("tests/corpus", "tests/corpus-extra", "captures")
                      for p in (ROOT / folder).iterdir()
                      if p.suffix in (".pcap", ".pcapng", ".cap"))
pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")]
ENV: Final = {**os.environ, "WIRESHARK_CONFIG_DIR": "/nonexistent-capdissect-test"}


def tshark(*args: str) -> str:
    done = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True,
                          timeout=300, env=ENV, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def tshark_streams(path: Path) -> dict[int, int]:
    """frame -> tcp.stream, for the frames whose outermost TCP header has one."""
    out = {}
    for line in tshark("-r", str(path), "-T", "fields", "-e", "frame.number",
                       "-e", "tcp.stream").splitlines():
        frame, stream = [*line.split("\t"), ""][:2]
        if stream:
            out[int(frame)] = int(stream.split(",")[0])
    return out


def tshark_follow(path: Path, streams: list[int]) -> dict[int, list[str]]:
    """stream -> the data lines tshark's follow,tcp,raw prints for it."""
    args = [a for s in streams for a in ("-z", f"follow,tcp,raw,{s}")]
    text = tshark("-r", str(path), "-q", *args)
    found: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("Filter: tcp.stream eq "):
            current = found.setdefault(int(line.rsplit(" ", 1)[1]), [])
        elif line.startswith(("Node ", "Follow:")) or not line:
            continue
        elif line.startswith("====="):
            current = None
        elif current is not None:
            current.append(line)
    return found


def connections(path: Path) -> dict[int, int]:
    """capdissect's TCP connection id -> the frame of its first whole segment (IP
    fragments put back together, as tshark numbers the reassembled one)."""
    first: dict[int, int] = {}
    with open_capture(path) as capture:
        for frame, conn, _ in segments(decode(raw) for raw in capture):
            first.setdefault(conn.id, frame)
    return first


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_follow_raw_is_tsharks(path: Path) -> None:
    try:
        ours = connections(path)
    except CapdissectError:
        pytest.skip("capdissect cannot read it")
    streams = tshark_streams(path)
    by_stream = {streams[frame]: conn for conn, frame in ours.items() if frame in streams}
    theirs = tshark_follow(path, sorted(set(streams.values())))
    for stream, lines in sorted(theirs.items()):
        if not lines:
            continue
        assert stream in by_stream, f"tshark stream {stream} is no capdissect connection"
        with open_capture(path) as capture:
            got = list(raw_lines(follow((decode(r) for r in capture), by_stream[stream])))
        assert got == lines, f"stream {stream} (connection {by_stream[stream]})"
    for frame in ours.values():
        assert frame in streams, f"frame {frame}: capdissect follows TCP tshark does not see"


def test_follow_cli_formats() -> None:
    path = ROOT / "captures" / "tcp-basic.pcap"

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "capdissect", "follow", str(path),
                               "--conn", "1", *args], capture_output=True, text=True,
                              check=True, timeout=60).stdout

    assert run("--raw") == "68656c6c6f20776f726c64\n\t77686f2061726520796f75\n"
    assert "hello world" in run() and "who are you" in run()
    assert "hello" not in run("--direction", "server", "--hex")
    assert "7768 6f20" in run("--direction", "server", "--hex")
