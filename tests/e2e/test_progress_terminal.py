"""The progress bar of long commands as a person sees it: real processes, stderr on a
pseudo-terminal or a pipe (the bar itself is in tests/unit/test_progress.py).
"""

from __future__ import annotations

import os
import pty
import subprocess
import time
from pathlib import Path

import pytest

from capdissect.commands import progress
from tests.support.compare import capdissect_command

CAPTURES = Path(__file__).parents[2] / "captures"


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    run = subprocess.run([*capdissect_command(), "flows", str(CAPTURES / "tcp-basic.pcap")],
                         capture_output=True, timeout=60, check=True)
    assert b"\x1b" not in run.stderr and b"\r" not in run.stderr


def test_bar_on_a_terminal_is_erased_before_the_error_line(tmp_path: Path) -> None:
    """A big file that turns out damaged: the bar shows while reading (about 340,000
    packets take seconds to track, well past the bar's first half second however fast
    the tracker gets), then goes, and the error is one clean line."""
    whole = (CAPTURES / "tcp-basic.pcap").read_bytes()
    body = whole[24:]
    big = whole[:24] + body * (progress.MIN_SIZE // len(body) * 6)
    path = tmp_path / "big-cut.pcap"
    path.write_bytes(big + body[:20])  # a record cut short at the end
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="80")
    started = time.monotonic()
    proc = subprocess.Popen([*capdissect_command(), "flows", str(path)],
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty closes when the child exits
            break
        if not chunk or time.monotonic() - started > 120:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 1
    text = seen.decode()
    assert "truncated" in text.splitlines()[-1]
    assert "%" in text and "MB\x1b[K" in text
    assert text.rstrip("\r\n").split("\r\x1b[K")[-1].startswith("capdissect: ")


def test_export_bars_on_a_terminal(tmp_path: Path) -> None:
    """export: the file's own bar while a big capture is read, the overall bar after each
    file (n/N files), all erased before the summary line; nothing of it in a pipe."""
    pytest.importorskip("pyarrow")
    whole = (CAPTURES / "tcp-basic.pcap").read_bytes()
    body = whole[24:]
    # About 400,000 packets: with the packets table alone export reads about 180,000 a
    # second, so the file's bar (drawn after half a second) has seconds to show.
    (tmp_path / "big.pcap").write_bytes(whole[:24] + body * (progress.MIN_SIZE // len(body) * 8))
    (tmp_path / "small.pcap").write_bytes(whole)
    args = [*capdissect_command(), "export", str(tmp_path / "big.pcap"),
            str(tmp_path / "small.pcap"), "-o", str(tmp_path / "out"), "--tables", "packets"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower,
                            env=dict(os.environ, COLUMNS="100"))
    os.close(follower)
    seen = b""
    started = time.monotonic()
    while time.monotonic() - started < 120:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    text = seen.decode()
    assert "MB\x1b[K" in text  # the file's bar
    assert "1/2 files" in text and "2/2 files" in text  # the overall bar
    assert text.rstrip("\r\n").split("\r\x1b[K")[-1].startswith("exported ")
    piped = subprocess.run([*args[:-2], "--tables", "flows"], capture_output=True,
                           timeout=120, check=True)
    assert b"\x1b" not in piped.stderr and b"\r" not in piped.stderr
