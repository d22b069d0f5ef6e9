"""Every demo scenario runs traced: its socket calls beside the packets, in the timeline
JSON; and without strace (or ptrace permission) the demo says so and shows packets only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from capdissect.demo.scenarios import SCENARIOS
from tests.support.compare import capdissect_command, fixed_env
from tests.support.livecli import free_port_both

TIMEOUT_S = 180
CALL_LINE = re.compile(r"^    \| (client |server |a side |b side )?pid \d+: \w+\(", re.MULTILINE)

needs = None
if os.geteuid() != 0 or shutil.which("tcpdump") is None:
    needs = "capturing the lessons needs root and tcpdump"
elif shutil.which("strace") is None:
    needs = "tracing the lessons needs strace (apt-get install strace)"
pytestmark = [pytest.mark.live, pytest.mark.skipif(needs is not None, reason=needs or "")]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*capdissect_command(), *args], capture_output=True, text=True,
                          env=env or fixed_env(), timeout=TIMEOUT_S, check=False)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_shows_its_calls(name: str, tmp_path: Path) -> None:
    kept = tmp_path / f"{name}.pcap"
    port = free_port_both()
    proc = run("demo", name, "--port", str(port), "--write", str(kept))
    assert proc.returncode == 0, proc.stderr
    if "replaying" in proc.stderr:
        pytest.skip(f"{name} cannot run here: {proc.stderr.strip().splitlines()[-1]}")
    assert "socket calls beside them" in proc.stdout
    assert CALL_LINE.search(proc.stdout), proc.stdout[:2000]
    timeline = proc.stdout.split("-- the timeline --")[1]
    assert re.search(r"\|# pid \d+ \w+\(|pid \d+ \w+\(.*\) = .* #\|", timeline)
    calls = Path(f"{kept}.strace")
    assert calls.exists()
    doc = json.loads(run("timeline", str(kept), "--json", "--calls", str(calls)).stdout)
    flows = doc["tcp"] + doc["udp"]
    assert flows and all(flow["syscalls"] for flow in flows), [f["id"] for f in flows]
    frames = doc["packets"]
    for flow in flows:
        for call in flow["syscalls"]:
            assert 0 <= call["start_frame"] <= call["after_frame"] <= frames
            assert call["side"] in (("client", "server") if "client" in flow else ("a", "b"))


def _failing_strace(tmp_path: Path) -> dict[str, str]:
    """PATH with an strace that fails as the real one does without ptrace permission."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "strace"
    fake.write_text("#!/bin/sh\necho 'strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not "
                    "permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = fixed_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_demo_without_ptrace_shows_packets_only_with_a_notice(tmp_path: Path) -> None:
    proc = run("demo", "tcp-basic", "--port", str(free_port_both()), env=_failing_strace(tmp_path))
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "without the socket calls" in line]
    assert len(notices) == 1 and "no permission to trace (ptrace)" in notices[0]
    assert "Flags [S.]" in proc.stdout
    assert not CALL_LINE.search(proc.stdout)


def test_trace_without_ptrace_is_one_line(tmp_path: Path) -> None:
    proc = run("trace", "--port", "1", "--", "true", env=_failing_strace(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "capdissect: strace: no permission to trace (ptrace): run as root, or allow it with "
        "sysctl kernel.yama.ptrace_scope=0")
    assert "Traceback" not in proc.stderr
