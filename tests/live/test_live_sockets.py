"""Live: the TCP lesson on loopback, captured by tcpdump, then ``capdissect sockets --every``
must print the lesson's netstat sequence (issue must-show 3): LISTEN; LISTEN with two
ESTABLISHED; LISTEN, CLOSE_WAIT, FIN_WAIT2; LISTEN and TIME_WAIT, in this order.

Needs root and tcpdump (skipped otherwise, with the reason).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from capdissect.demo import tcp_lesson
from tests.support.livecap import pytest_capture
from tests.support.netstat import LESSON_NETSTAT, contains_in_order, snapshots

pytestmark = pytest.mark.live

LESSON_PACKETS = 11  # S, S., ., P., ., P., ., F., ., F., .
ATTEMPTS = 3


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError as exc:
        pytest.skip(f"cannot bind {host} on this machine: {exc}")


def lesson_capture(tmp: Path, host: str) -> Path:
    """A fresh capture of the lesson with its 11 segments.  The kernel may fold the ACK of
    the client's FIN into the server's FIN (10 segments, no FIN_WAIT2 to see): then the
    lesson is run again, a bounded number of times."""
    count = 0
    for attempt in range(ATTEMPTS):
        port = free_port(host)
        path = tmp / f"lesson-{attempt}-{port}.pcap"  # .pcap: tcpdump's AppArmor profile
        with pytest_capture(path, f"tcp port {port}") as cap:
            tcp_lesson(host, port)
            count = cap.stop(expect_packets=LESSON_PACKETS)
        if count == LESSON_PACKETS:
            return path
    pytest.fail(f"no {LESSON_PACKETS}-segment lesson in {ATTEMPTS} attempts (last: {count})")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_fresh_lesson_prints_the_netstat_sequence(tmp_path: Path, host: str) -> None:
    path = lesson_capture(tmp_path, host)
    proc = subprocess.run([sys.executable, "-m", "capdissect", "sockets", str(path), "--every"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    got = snapshots(proc.stdout.splitlines())
    states = [s for _, s in got]
    assert contains_in_order(states, LESSON_NETSTAT), proc.stdout
    assert states[0] == ["LISTEN"]
    assert states[-1] == ["LISTEN", "TIME_WAIT"]
    proto = "tcp6" if ":" in host else "tcp"
    assert all(line.split()[0] == proto for line in proc.stdout.splitlines()
               if line.startswith("tcp"))
