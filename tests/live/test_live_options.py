"""``live`` options checked before a capture starts, and a filter the kernel refuses
(issue #21 D14)."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import capdissect
from capdissect.errors import CaptureError
from tests.support.livecli import LiveCommand, free_port, live_problem

CLI = str(Path(sys.executable).with_name("capdissect"))


@pytest.mark.parametrize(("args", "message"), [
    (("--duration", "nan"), "invalid duration nan"),
    (("--duration", "inf"), "invalid duration inf"),
    (("--duration", "-1"), "invalid duration -1"),
    (("--duration", "0"), "invalid duration 0"),
    (("-B", "99999999999999999999"), "invalid buffer size 99999999999999999999 KiB"),
    (("-B", "2147483647"), "invalid buffer size 2147483647 KiB"),
    (("-B", "10"), "invalid buffer size 10 KiB"),
])
@pytest.mark.parametrize("backend", ["scapy", "tshark"])
def test_bad_options_are_a_usage_error(args: tuple[str, ...], message: str,
                                       backend: str) -> None:
    proc = subprocess.run([CLI, "live", "--backend", backend, *args], capture_output=True,
                          text=True, timeout=30, check=False)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("capdissect: ") and message in lines[0]


@pytest.mark.parametrize("duration", [math.nan, math.inf, 0.0])
def test_api_refuses_a_duration_that_never_ends(duration: float) -> None:
    cap = capdissect.capture(port=free_port(), duration=duration)
    with pytest.raises(CaptureError, match="invalid duration"):
        cap.start()


def test_api_refuses_a_huge_buffer() -> None:
    cap = capdissect.LiveCapture(port=free_port(), buffer_kib=2147483647)
    with pytest.raises(CaptureError, match="invalid buffer size"):
        cap.start()


@pytest.mark.skipif(live_problem("scapy", tcpdump=False) is not None,
                    reason=str(live_problem("scapy", tcpdump=False)))
def test_filter_the_kernel_refuses_runs_in_user_space(tmp_path: Path) -> None:
    """``ip6 protochain 6`` loops backwards, which the kernel's classic BPF refuses; the
    capture still runs and keeps exactly the IPv6 TCP packets, as tcpdump does."""
    port = free_port("::1")
    live = LiveCommand(["-nn", "--duration", "20", "-c", "3", "ip6 protochain 6 and port "
                        f"{port}"], tmp_path).start()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:  # not TCP: dropped
            udp.sendto(b"x", ("::1", port))
        with (socket.create_server(("::1", port), family=socket.AF_INET6) as server,
              socket.create_connection(("::1", port), timeout=5)):
            conn, _ = server.accept()
            conn.close()
        assert live.wait() == 0, live.stderr
    finally:
        live.kill()
    lines = [line for line in live.stdout.splitlines() if " IP6 " in line]
    assert len(lines) == 3, live.stdout
    assert all("Flags [" in line for line in lines)  # the handshake, no UDP
    assert "UDP" not in live.stdout
