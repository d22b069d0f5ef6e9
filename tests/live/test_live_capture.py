"""``capdissect live`` against tcpdump on real loopback traffic (SPEC 3.1), both backends.

- The lesson's TCP connection, a UDP exchange over ::1 and a few datagrams to a bound
  socket, captured at once by ``capdissect live --port P -c N -w out.pcap --plain -nn``
  and by tcpdump with the same filter: live's printed packets, ``tcpdump -r out.pcap``
  and ``tcpdump -r`` of tcpdump's own file are the same packets in the same order, each
  once (on ``lo`` a naive sniffer shows every packet twice).
- ``--port P`` also catches the ICMP and ICMPv6 port unreachable that quote port P.
- SIGINT and SIGTERM end a capture in order: exit 0, the summary, and a file that
  tcpdump reads, holding exactly the packets shown (pcap and pcapng).
- Without capture privilege: one line naming the fix, exit 1, no traceback.
- The Python API: ``capdissect.capture()`` around real sockets gives the lesson's
  timeline (open three-way, close normal by the client) and netstat sequence.

Needs root, tcpdump and (for the tshark backend) dumpcap; skipped with the reason
otherwise.  Each test uses ports the kernel just called free.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import capdissect
from capdissect.demo import tcp_lesson, udp_exchange
from capdissect.sources.live.selection import build_expression
from capdissect.tracking.tcp import TcpConnection
from tests.support.compare import fixed_env, run, split_blocks
from tests.support.livecap import TcpdumpCapture
from tests.support.livecli import (
    BACKENDS,
    LiveCommand,
    free_port,
    free_port_both,
    live_problem,
    packet_blocks,
)

pytestmark = pytest.mark.live

SETTLE_S = 5.0  # how long tcpdump may take to write what it caught
TOTAL = 16  # packets in the comparison run: the lesson, a UDP exchange, then fillers


def need(backend: str, tcpdump: bool = True) -> None:
    problem = live_problem(backend, tcpdump)
    if problem is not None:
        pytest.skip(problem)


def wait_for_blocks(live: LiveCommand, want: int, timeout_s: float = 10.0) -> int:
    """Wait (bounded) until live has printed *want* packets; return how many it has."""
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = len(packet_blocks(live.stdout))
        if count >= want:
            break
        time.sleep(0.02)
    return count


def wait_until_quiet(cap: TcpdumpCapture, quiet_s: float = 0.4) -> int:
    """tcpdump's record count once it has not grown for *quiet_s* (bounded)."""
    deadline = time.monotonic() + SETTLE_S
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = cap.records()
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.02)
    return last


def untimed(blocks: list[str]) -> list[str]:
    """Packet blocks without their leading timestamp."""
    return [block.split(" ", 1)[1] for block in blocks]


def tcpdump_read(path: Path, *options: str) -> list[str]:
    result = run(["tcpdump", "-r", str(path), *options])
    assert result.problem() is None, result.problem()
    return split_blocks(result.stdout)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_packets_as_tcpdump_each_once(backend: str, tmp_path: Path) -> None:
    need(backend)
    port = free_port_both()
    ours_file = tmp_path / "out.pcap"
    live = LiveCommand(["--port", str(port), "-c", str(TOTAL), "-w", str(ours_file),
                        "--plain", "-nn", "--backend", backend, "--duration", "60"],
                       tmp_path).start()
    try:
        expression = build_expression([port])
        assert expression is not None
        with TcpdumpCapture(tmp_path / "tcpdump.pcap", expression) as tcpdump, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            tcp_lesson("127.0.0.1", port)
            udp_exchange("::1", port)
            sink.bind(("127.0.0.1", port))  # fillers land here (no ICMP error)
            so_far = wait_until_quiet(tcpdump)
            assert 12 <= so_far < TOTAL, f"the lesson and the exchange made {so_far} packets"
            for number in range(TOTAL - so_far):
                sink.sendto(b"filler %d" % number, ("127.0.0.1", port))
            theirs = tcpdump.stop(expect_packets=TOTAL)
        assert theirs == TOTAL
        assert live.wait() == 0, live.stderr
    finally:
        live.kill()
    assert "Traceback" not in live.stderr

    reference = tcpdump_read(tmp_path / "tcpdump.pcap", "-nn")
    shown = split_blocks(live.stdout)  # --plain: stdout is tcpdump's text, nothing else
    written = tcpdump_read(ours_file, "-nn")
    assert len(reference) == TOTAL
    # Each capture socket gets its own kernel timestamp (a microsecond or two apart, as
    # for two tcpdumps), so tcpdump's capture is compared without the time field.
    assert untimed(shown) == untimed(reference), "live printed other packets than tcpdump"
    assert written == shown, "live's file holds other packets than it printed"
    assert len(set(shown)) == len(shown), "a packet was shown twice"
    # --plain sends the summary to stderr, with tcpdump's closing count.
    assert "three-way" in live.stderr and "TIME_WAIT" in live.stderr
    assert f"{TOTAL} packets captured" in live.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_port_includes_icmp_errors_quoting_it(backend: str, tmp_path: Path) -> None:
    need(backend, tcpdump=False)
    port = free_port_both()  # free: nothing listens, so each datagram is answered by ICMP
    live = LiveCommand(["--port", str(port), "-c", "4", "-nn", "--backend", backend,
                        "--duration", "60"], tmp_path).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4, \
                socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:
            v4.sendto(b"anyone?", ("127.0.0.1", port))
            v6.sendto(b"anyone?", ("::1", port))
        assert live.wait() == 0, live.stderr
    finally:
        live.kill()
    blocks = packet_blocks(live.stdout)
    assert len(blocks) == 4, live.stdout
    assert f"ICMP 127.0.0.1 udp port {port} unreachable" in blocks[1]
    assert f"unreachable port, ::1 udp port {port}" in blocks[3]
    assert "nothing listens on port" in live.stdout  # the annotation links the two


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_capture_in_order(backend: str, signum: signal.Signals,
                                      tmp_path: Path) -> None:
    need(backend)
    port = free_port()
    suffix = ".pcap" if signum == signal.SIGINT else ".pcapng"  # both writers
    ours_file = tmp_path / f"out{suffix}"
    live = LiveCommand(["--port", str(port), "-nn", "-w", str(ours_file), "--backend", backend,
                        "--duration", "60"], tmp_path).start()
    try:
        tcp_lesson("127.0.0.1", port)
        assert wait_for_blocks(live, 10) >= 10, live.stdout
        live.signal(signum)
        assert live.wait() == 0, live.stderr
    finally:
        live.kill()
    assert "Traceback" not in live.stderr
    shown = packet_blocks(live.stdout)
    assert len(shown) >= 10, live.stdout
    assert tcpdump_read(ours_file, "-nn") == shown, "the file is not what was shown"
    # The summary: the lesson's connection, as `flows` words it.
    summary = live.stdout.split("\n\n", 1)[1]
    assert "open/close" in summary and "three-way" in summary and "normal" in summary
    assert f"{len(shown)} packets captured" in live.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_unprivileged_user_gets_one_line(backend: str, tmp_path: Path) -> None:
    need(backend, tcpdump=False)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    drop = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*drop, sys.executable, "-c", "import capdissect"], capture_output=True,
                           cwd=tmp_path, env=fixed_env(), timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run capdissect here: {probe.stderr[-300:]!r}")
    os.chmod(tmp_path, 0o777)  # nobody's working directory
    live = LiveCommand(["--port", "30002", "-c", "1", "--backend", backend], tmp_path,
                       prefix=drop).start(wait=False)
    assert live.wait() == 1
    lines = live.stderr.splitlines()
    assert len(lines) == 1, live.stderr
    assert "Traceback" not in live.stderr
    assert "setcap cap_net_raw,cap_net_admin=eip" in lines[0]
    assert ("dumpcap" if backend == "tshark" else "interpreter") in lines[0]
    assert live.stdout == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_capture_api_gives_the_lesson_timeline(backend: str) -> None:
    need(backend, tcpdump=False)
    port = free_port_both()
    with capdissect.capture(port=port, backend=backend, duration=60) as cap:
        tcp_lesson("127.0.0.1", port)
        udp_exchange("::1", port)
    packets = cap.packets
    assert len(packets) in (12, 13), str(packets)
    conn, conv = cap.connections
    assert isinstance(conn.flow, TcpConnection)
    assert (conn.open, conn.close, conn.closer) == ("three-way", "normal", "client")
    assert (conn.client.state.value, conn.server.state.value) == ("TIME_WAIT", "CLOSED")
    assert conv.datagrams == 2

    timeline = str(cap.timeline())
    assert "open three-way, close normal by the client" in timeline
    assert ("client 127.0.0.1:" in timeline and
            "SYN_SENT -> ESTABLISHED -> FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT" in timeline)
    assert "LISTEN -> SYN_RECEIVED -> ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSED" in timeline
    # netstat between the steps, as the lessons show it
    netstat = str(cap.sockets())
    order = [netstat.find(state) for state in ("LISTEN", "ESTABLISHED", "FIN_WAIT1",
                                                  "FIN_WAIT2", "TIME_WAIT")]
    assert -1 not in order and order == sorted(order), netstat
    # text everywhere, HTML in a notebook
    assert "Flags [S]" in str(cap) and "handshake 1/3 SYN" in str(packets)
    assert repr(cap).startswith(f"capture on lo (port {port}), stopped: ")
    page = cap._repr_html_()
    assert "<svg" in page and "-&gt;" in page and "TIME_WAIT" in page
    ladders = cap.timeline()._repr_html_()  # the SVG ladder, with the state boxes
    assert ladders.count("<svg") == 3 and ">SYN_SENT</text>" in ladders  # + RFC figure
    # while a capture runs, netstat's table is the one so far
    with capdissect.capture(port=port, backend=backend, duration=60) as running:
        tcp_lesson("127.0.0.1", port)
        assert running.wait(11)
        snapshot = str(running.sockets(every=False))
        assert "so far" in snapshot and "end of the capture" not in snapshot
        assert " so far" in repr(running).splitlines()[0]
    assert "<table>" in capdissect.track(packets)._repr_html_()


def test_capture_api_raises_capture_error_for_a_bad_interface() -> None:
    cap = capdissect.capture(port=1, iface="nosuch0")
    with pytest.raises(capdissect.CaptureError, match="no such interface: nosuch0"):
        cap.start()
