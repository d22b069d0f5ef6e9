"""Live conformance: real lesson traffic on loopback, captured by tcpdump, then printed by
``tcpdump -r`` and ``capdissect read --plain`` with the same options.  Every packet block
must be identical (SPEC 3.2).

Needs root and tcpdump (skipped otherwise, with the reason).  Each capture uses a port the
kernel just handed out as free, so parallel runs and other traffic do not get in.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from capdissect.demo import tcp_lesson, udp_exchange
from tests.support.compare import capdissect_command, compare_blocks, run, split_blocks
from tests.support.livecap import pytest_capture

pytestmark = pytest.mark.live

FAMILIES = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]
OPTION_SETS = [
    pytest.param(("-nn",), id="nn"),
    pytest.param(("-nn", "-v", "-X"), id="nn-v-X"),
]
_FLAGS = re.compile(r"Flags \[([^\]]*)\]")


def free_port(host: str, kind: socket.SocketKind) -> int:
    """A port on *host* that is free for *kind* right now (the kernel's choice)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, kind) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError as exc:
        pytest.skip(f"cannot bind {host} on this machine: {exc}")


def capture(tmp: Path, host: str, kind: socket.SocketKind, expect_packets: int) -> Path:
    port = free_port(host, kind)
    proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
    # .pcap name: Debian's AppArmor profile for tcpdump only lets it write such names
    path = tmp / f"{proto}-{port}.pcap"
    with pytest_capture(path, f"{proto} port {port}") as cap:
        if kind == socket.SOCK_STREAM:
            tcp_lesson(host, port)
        else:
            udp_exchange(host, port)
        count = cap.stop(expect_packets=expect_packets)
    assert count > 0, f"tcpdump captured nothing: {cap.stderr_lines}"
    return path


@pytest.fixture(scope="module", params=FAMILIES)
def tcp_lesson_pcap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return capture(tmp_path_factory.mktemp("live"), request.param, socket.SOCK_STREAM, 11)


@pytest.fixture(scope="module", params=FAMILIES)
def udp_exchange_pcap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return capture(tmp_path_factory.mktemp("live"), request.param, socket.SOCK_DGRAM, 2)


def assert_same_output(path: Path, options: tuple[str, ...], expect_blocks: set[int]) -> None:
    reference = run(["tcpdump", "-r", str(path), *options])
    assert reference.problem() is None, reference.problem()
    ours = run([*capdissect_command(), "read", str(path), "--plain", *options])
    assert ours.problem() is None, ours.problem()

    want, have = split_blocks(reference.stdout), split_blocks(ours.stdout)
    assert len(want) in expect_blocks, f"capture has {len(want)} packets:\n{reference.stdout}"
    tally = compare_blocks(want, have)
    assert tally.first_diff is None, f"{tally.same}/{tally.total} identical; {tally.first_diff}"
    assert ours.stdout == reference.stdout  # blocks equal, so this checks only the very end


@pytest.mark.parametrize("options", OPTION_SETS)
def test_tcp_lesson_matches_tcpdump(tcp_lesson_pcap: Path, options: tuple[str, ...]) -> None:
    assert_same_output(tcp_lesson_pcap, options, {10, 11})


def test_tcp_lesson_has_the_lesson_shape(tcp_lesson_pcap: Path) -> None:
    """The capture itself is the lesson: handshake, two data segments, a 4-way close."""
    reference = run(["tcpdump", "-r", str(tcp_lesson_pcap), "-nn"])
    flags = _FLAGS.findall(reference.stdout)
    assert flags[:3] == ["S", "S.", "."], flags
    assert flags.count("P.") == 2, flags
    assert flags.count("F.") == 2, flags
    assert flags[-1] == ".", flags
    assert reference.stdout.count("length 11") == 2


@pytest.mark.parametrize("options", OPTION_SETS)
def test_udp_exchange_matches_tcpdump(udp_exchange_pcap: Path, options: tuple[str, ...]) -> None:
    assert_same_output(udp_exchange_pcap, options, {2})
