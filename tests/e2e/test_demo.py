"""``capdissect demo``: the lesson with real sockets, or the bundled capture when it cannot."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.compare import capdissect_command, fixed_env

LESSON_FLAGS = ["S", "S.", ".", "P.", ".", "P.", ".", "F.", ".", "F.", "."]
FLAGS = re.compile(r"^\S+ IP6? \S+ > \S+: Flags \[([^\]]+)\]", re.MULTILINE)
TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo(*args: str, prefix: tuple[str, ...] = (), cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *capdissect_command(), "demo", *args], capture_output=True,
                          text=True, env=fixed_env(), timeout=TIMEOUT_S, cwd=cwd, check=False)


def assert_lesson(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert FLAGS.findall(out) == LESSON_FLAGS
    for phase in ("handshake 1/3 SYN", "handshake 2/3 SYN-ACK", "handshake 3/3 ACK",
                  "teardown FIN", "teardown ACK"):
        assert phase in out
    assert ": SYN_SENT -> ESTABLISHED" in out and ": LAST_ACK -> CLOSED" in out
    sections = ("-- the timeline --", "-- netstat after each change --")
    assert all(section in out for section in sections)
    netstat = out.split(sections[1])[1]
    for state in ("LISTEN", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2", "TIME_WAIT"):
        assert state in netstat


def test_list_names_every_scenario() -> None:
    proc = demo("--list")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names[0] == "tcp-basic" and "tcp-simultaneous-open" in names
    assert "udp-connected" in names and len(names) == 10


@pytest.mark.live
def test_demo_runs_the_lesson_for_real(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        pytest.skip("capturing the lesson needs root and tcpdump")
    kept = tmp_path / "lesson.pcap"
    proc = demo("tcp-basic", "--port", str(free_port()), "--write", str(kept))
    assert_lesson(proc)
    assert "captured 11 packets of tcp-basic on loopback" in proc.stderr
    assert kept.stat().st_size > 24  # --write kept the capture


@pytest.mark.live
def test_a_port_in_use_is_one_line_suggesting_port() -> None:
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        pytest.skip("capturing the lesson needs root and tcpdump")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = demo("tcp-basic", "--port", str(port))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("capdissect: tcp-basic: port ") and "--port" in lines[-1]
    assert "Errno" not in proc.stderr and "OSError" not in proc.stderr
    assert "attempt 2" not in proc.stderr


def test_demo_without_privilege_replays_the_bundled_capture(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("dropping privilege to user nobody needs root and setpriv")
    drop = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    probe = subprocess.run([*drop, *capdissect_command(), "--version"], capture_output=True,
                           env=fixed_env(), timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run capdissect here: {probe.stderr[-300:]!r}")
    os.chmod(tmp_path, 0o777)
    proc = demo("tcp-basic", prefix=drop, cwd=tmp_path)
    assert_lesson(proc)
    notices = [line for line in proc.stderr.splitlines() if line.startswith("capdissect demo")]
    assert len(notices) == 1 and "replaying" in notices[0]
    assert notices[0].endswith("captures/tcp-basic.pcap")
