"""``capdissect live``'s command line without capturing: the dumpcap backend against a
stand-in dumpcap, and the one-line user and usage errors.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from capdissect.commands.read import ReadOptions, read_lines
from capdissect.sources.files import open_capture
from tests.unit.test_live import LESSON

CLI = [str(Path(sys.executable).with_name("capdissect"))]


# ----- the tshark backend, with a stand-in for dumpcap -------------------------------------
def fake_dumpcap(directory: Path, script: str) -> dict[str, str]:
    """PATH with a `dumpcap` that runs *script* (sh) instead of capturing."""
    tool = directory / "dumpcap"
    tool.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{directory}:/usr/bin:/bin", "TZ": "UTC"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                          env=env or {**os.environ, "TZ": "UTC"}, check=False)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("said", "expected"), [
    ('dumpcap: You do not have permission to capture on device "lo".\n'
     "(socket: Operation not permitted)", "setcap cap_net_raw,cap_net_admin=eip"),
    ('dumpcap: There is no device named "lo".\n(No such device exists)', "no such interface: lo"),
    ('dumpcap: Invalid capture filter "x" for interface \'lo\'.\n\nThat string isn\'t a valid '
     "capture filter (syntax error).", "capdissect: syntax error"),
])
def test_dumpcap_errors_become_one_line(tmp_path: Path, said: str, expected: str) -> None:
    env = fake_dumpcap(tmp_path, f"echo \"Capturing on 'lo'\" >&2\ncat >&2 <<'EOF'\n{said}\nEOF\n"
                                 "exit 2\n")
    assert expected in one_line(run_cli("live", "--backend", "tshark", env=env))


def test_missing_dumpcap_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    assert "apt-get install tshark" in one_line(run_cli("live", "--backend", "tshark", env=env))


def test_tshark_backend_reads_dumpcaps_pcap_stream(tmp_path: Path) -> None:
    """dumpcap's output is read as a stream: live prints it, writes it, summarises it."""
    copy = tmp_path / "lesson.pcap"
    shutil.copyfile(LESSON, copy)
    env = fake_dumpcap(tmp_path, f"cat '{copy}'\nexec sleep 30\n")
    out = tmp_path / "out.pcapng"
    proc = run_cli("live", "--backend", "tshark", "-nn", "-c", "11", "-w", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    expected = list(read_lines(LESSON, ReadOptions(n=2)))
    assert proc.stdout.startswith("\n".join(expected) + "\n\n")
    assert "three-way" in proc.stdout.split("\n\n", 1)[1]
    assert proc.stderr.splitlines()[0].startswith("listening on lo, link-type EN10MB")
    with open_capture(out) as written, open_capture(LESSON) as original:
        assert [p.data for p in written] == [p.data for p in original]


@pytest.mark.parametrize(("args", "message"), [
    (("-c", "0"), "invalid packet count 0"),
    (("-i", "nosuch0"), "no such interface: nosuch0"),
    (("--backend", "tshark", "-i", "nosuch0"), "no such interface: nosuch0"),
])
def test_live_user_errors(args: tuple[str, ...], message: str) -> None:
    line = one_line(run_cli("live", *args))
    assert line.startswith("capdissect: ") and message in line


def test_live_usage_errors_exit_2() -> None:
    proc = run_cli("live", "--proto", "icmp")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
