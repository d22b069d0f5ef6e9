"""capdissect's TCP analysis against tshark's, packet by packet (SPEC §4, issue 4 item 2).

For every capture, tshark (default preferences) and capdissect's Tracker each say which
analysis flags every frame gets; per flag, agreement = frames both flag / frames either
flags.  Sources:

- the golden corpus (``tests/corpus``) and three captures with retransmissions from the
  shared corpus (``tests/corpus-extra``, README there);
- crafted connections written here as a pcap: one per rule (zero window probe, window
  full with and without known scaling, keep-alive, ports reused by a SYN-ACK, ...), so
  every flag is checked by tshark, not only by capdissect's own unit tests;
- a real bulk transfer on loopback, captured by tcpdump: the server keeps a small
  receive buffer and reads slowly, so the window fills and closes; plus an idle
  keep-alive connection and a client port reused after a reset (needs root, tcpdump).

The per-flag agreement is printed in the terminal summary (and with ``-s``).  Differences
are listed per file there, so a broken rule shows where it broke.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, NamedTuple

import pytest

from capdissect.tracking.analysis import NAMES
from tests.support.analysis_compare import (
    Agreement,
    capdissect_flags,
    decode_check,
    differences,
    tshark_flags,
    tshark_problem,
)
from tests.support.livecap import CaptureUnavailable, TcpdumpCapture

pytestmark = pytest.mark.tshark

TESTS: Final = Path(__file__).parents[1]
CORPUS_FILES: Final = sorted(
    p for d in (TESTS / "corpus", TESTS / "corpus-extra") for p in d.iterdir()
    if p.suffix in (".pcap", ".pcapng", ".cap")
)
MIN_OVERALL: Final = 0.95
LIVE_DEADLINE_S: Final = 20.0  # every socket wait in the live capture ends by then

if tshark_problem() is not None:
    pytest.skip(tshark_problem() or "", allow_module_level=True)


# ----- the tally and the terminal summary ---------------------------------------------
class Source(NamedTuple):
    name: str
    agreement: Agreement
    differences: dict[str, list[str]]  # file -> frames where the tools differ
    notes: tuple[str, ...] = ()
    asserted: bool = True  # counted in the overall figure the test asserts


class _Summary:
    """A plugin registered at run time: prints the agreement tables at the end."""

    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.sources:
            return
        terminalreporter.write_sep("=", "TCP analysis: capdissect vs tshark (|both| / |either|)")
        for line in summary_lines(self.sources.values()):
            terminalreporter.write_line(line)


def summary_lines(sources: Iterable[Source]) -> list[str]:
    sources = list(sources)
    lines = []
    for source in sources:
        lines.append(f"-- {source.name}")
        lines += ["   " + line for line in source.agreement.lines()]
        for file, diff in source.differences.items():
            lines.append(f"   {file}: {len(diff)} frames differ, first: {diff[0]}")
        lines += ["   " + note for note in source.notes]
    lines.append(f"-- overall (asserted >= {MIN_OVERALL:.0%})")
    lines += ["   " + line for line in overall(sources).lines()]
    return lines


def overall(sources: Iterable[Source]) -> Agreement:
    """The sum over the asserted sources."""
    total = Agreement()
    for source in sources:
        if source.asserted:
            for name in NAMES:
                total.both[name] += source.agreement.both[name]
                total.either[name] += source.agreement.either[name]
    return total


_PLUGIN_NAME: Final = "capdissect-analysis-vs-tshark"


@pytest.fixture(scope="module")
def summary(request: pytest.FixtureRequest) -> _Summary:
    manager = request.config.pluginmanager
    plugin = manager.get_plugin(_PLUGIN_NAME)
    if not isinstance(plugin, _Summary):
        plugin = _Summary()
        manager.register(plugin, _PLUGIN_NAME)
    return plugin


def compare(name: str, paths: Sequence[Path], summary: _Summary,
            notes: Sequence[str] = (), asserted: bool = True) -> Source:
    """Run both tools over *paths* (tshark in parallel) and record the result."""
    agreement = Agreement()
    diffs: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        theirs_all = list(pool.map(tshark_flags, paths))
    for path, theirs in zip(paths, theirs_all, strict=True):
        ours = capdissect_flags(path)
        agreement.add(ours, theirs)
        diff = differences(ours, theirs)
        if diff:
            diffs[path.name] = diff
    source = Source(name, agreement, diffs, tuple(notes), asserted)
    summary.sources[name] = source
    print(f"\n{name}\n" + "\n".join(agreement.lines()))
    return source


# ----- crafted connections ------------------------------------------------------------
A_IP: Final = bytes([10, 0, 0, 1])  # the client of every crafted connection
B_IP: Final = bytes([10, 0, 0, 2])
SERVER_PORT: Final = 80
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


class Step(NamedTuple):
    """One crafted segment: microseconds after the previous one, from client or server."""

    after_us: int
    client: bool
    flags: int
    seq: int
    ack: int = 0
    length: int = 0
    window: int = 1000
    wscale: int | None = None
    cookie: bytes | None = None  # a TCP Fast Open cookie (option 34), 8 bytes


def handshake(client_ws: int | None = None, server_ws: int | None = None,
              server_window: int = 1000) -> list[Step]:
    return [Step(100_000, True, SYN, 100, wscale=client_ws),
            Step(10_000, False, SYN | ACK, 500, 101, window=server_window, wscale=server_ws),
            Step(10_000, True, ACK, 101, 501)]


# One connection per rule; absolute numbers: client ISN 100, server ISN 500.
SCENARIOS: Final[dict[str, list[Step]]] = {
    # already acknowledged data sent again within the out-of-order time: spurious first
    "spurious": [*handshake(), Step(100_000, True, PSH | ACK, 101, 501, 100),
                 Step(100, True, PSH | ACK, 201, 501, 100), Step(200, False, ACK, 501, 301),
                 Step(300, True, PSH | ACK, 101, 501, 100)],
    # a FIN sent again 0.5 ms later: its end (with the FIN's one) is the next expected
    # number, so it is a retransmission, not out-of-order
    "fin-again": [*handshake(), Step(100_000, True, PSH | ACK, 101, 501, 100),
                  Step(100, True, FIN | ACK, 201, 501), Step(500, True, FIN | ACK, 201, 501)],
    # window full: the SYN-ACK's window (100) is not scaled, the next ACK's is (2 << 7)
    "window-full": [*handshake(7, 7, server_window=100),
                    Step(100_000, True, PSH | ACK, 101, 501, 100),
                    Step(10_000, False, ACK, 501, 201, window=2),
                    Step(10_000, True, PSH | ACK, 201, 501, 256)],
    # no SYN seen: the scaling is unknown, so a full window is never reported
    "window-unknown": [Step(100_000, True, PSH | ACK, 1101, 501, 100, window=100),
                       Step(10_000, False, ACK, 501, 1201, window=100),
                       Step(10_000, True, PSH | ACK, 1201, 501, 100)],
    # zero window, two probes and their ACKs, window update, keep-alives and their ACKs
    "zero-window": [*handshake(), Step(100_000, True, PSH | ACK, 101, 501, 100),
                    Step(10_000, False, ACK, 501, 201, window=0),
                    Step(200_000, True, ACK, 201, 501, 1),  # probe
                    Step(10_000, False, ACK, 501, 201, window=0),  # its ACK
                    Step(400_000, True, ACK, 201, 501, 1),
                    Step(10_000, False, ACK, 501, 201, window=0),
                    Step(100_000, False, ACK, 501, 201, window=500),  # update
                    Step(10_000, True, PSH | ACK, 201, 501, 100),
                    Step(10_000, False, ACK, 501, 301),
                    Step(5_000_000, True, ACK, 300, 501),  # keep-alive
                    Step(10_000, False, ACK, 501, 301),  # its ACK
                    Step(5_000_000, True, ACK, 300, 501, 1),  # keep-alive with a byte
                    Step(10_000, False, ACK, 501, 301),
                    Step(10_000, False, ACK, 501, 301)],  # a duplicate ACK
    # a hole, three duplicate ACKs, the fast retransmission, an ACK of unseen data, a
    # plain retransmission, and new data starting one byte below the next expected
    "loss": [*handshake(), Step(100_000, True, PSH | ACK, 101, 501, 100),
             Step(100, True, PSH | ACK, 301, 501, 100), Step(1_000, False, ACK, 501, 201),
             Step(1_000, False, ACK, 501, 201), Step(1_000, False, ACK, 501, 201),
             Step(2_000, True, PSH | ACK, 201, 501, 100), Step(5_000, False, ACK, 501, 401),
             Step(100_000, False, PSH | ACK, 501, 401, 50), Step(10_000, True, ACK, 401, 651),
             Step(1_000_000, True, PSH | ACK, 401, 651, 100),
             Step(500_000, True, PSH | ACK, 401, 651, 100),
             Step(10_000, True, PSH | ACK, 500, 651, 10)],
    # a SYN-ACK with a new number, a normal close, then the ports reused by a new SYN
    "reuse": [*handshake(), Step(100_000, False, SYN | ACK, 900, 101),
              Step(100_000, True, FIN | ACK, 101, 501), Step(10_000, False, FIN | ACK, 501, 102),
              Step(10_000, True, ACK, 102, 502), Step(1_000_000, True, SYN, 7000),
              Step(10_000, False, SYN | ACK, 8000, 7001), Step(10_000, True, ACK, 7001, 8001)],
    # a retransmitted SYN: a retransmission, not reused ports
    "syn-again": [Step(100_000, True, SYN, 100), Step(1_000_000, True, SYN, 100),
                  Step(10_000, False, SYN | ACK, 500, 101), Step(10_000, True, ACK, 101, 501)],
    # out of order: below the next expected number, within the handshake RTT (20 ms)
    "reordered": [Step(100_000, True, SYN, 100), Step(10_000, False, SYN | ACK, 500, 101),
                  Step(10_000, True, ACK, 101, 501),
                  Step(100_000, True, PSH | ACK, 201, 501, 100),
                  Step(10_000, True, PSH | ACK, 101, 501, 100)],
    # TCP Fast Open: a SYN with a cookie and 10 bytes, whose SYN-ACK acks them ...
    "fast-open": [Step(100_000, True, SYN, 100, length=10, cookie=bytes(range(8))),
                  Step(10_000, False, SYN | ACK, 500, 111), Step(10_000, True, ACK, 111, 501)],
    # ... and one whose SYN-ACK acks only the SYN: the data is sent again
    "fast-open-ignored": [Step(100_000, True, SYN, 100, length=10, cookie=bytes(range(8))),
                          Step(10_000, False, SYN | ACK, 500, 101),
                          Step(10_000, True, PSH | ACK, 101, 501, 10)],
}


def _packet(step: Step, client_port: int) -> bytes:
    """Ethernet + IPv4 + TCP for *step* (checksums 0: tshark does not check them)."""
    ips = (A_IP, B_IP) if step.client else (B_IP, A_IP)
    ports = (client_port, SERVER_PORT) if step.client else (SERVER_PORT, client_port)
    options = b"" if step.wscale is None else bytes([3, 3, step.wscale, 1])  # wscale, nop
    if step.cookie is not None:
        options += bytes([34, 2 + len(step.cookie)]) + step.cookie + bytes([1, 1])  # nop nop
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", *ports, step.seq, step.ack, offset << 4, step.flags,
                      step.window, 0, 0) + options + b"x" * step.length
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, *ips)
    return bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + ip + tcp


def write_scenarios(path: Path) -> None:
    """All scenarios in one classic pcap, each on its own client port, in time order."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    now_us = 1_600_000_000 * 1_000_000
    for number, steps in enumerate(SCENARIOS.values()):
        for step in steps:
            now_us += step.after_us
            data = _packet(step, 40000 + number)
            out.append(struct.pack("<IIII", now_us // 1_000_000, now_us % 1_000_000,
                                   len(data), len(data)) + data)
        now_us += 10_000_000
    path.write_bytes(b"".join(out))


# ----- real loopback traffic ----------------------------------------------------------
def _bulk_transfer(port: int, total: int = 100_000) -> None:
    """Client sends *total* bytes; the server's 4 KB buffer is drained 16 KB at a time,
    with a 0.3 s pause after each, so the window fills, closes and reopens."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited on accept
        listener.settimeout(LIVE_DEADLINE_S)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(LIVE_DEADLINE_S)
                deadline = time.monotonic() + LIVE_DEADLINE_S
                time.sleep(0.3)
                since_pause = 0
                while time.monotonic() < deadline:
                    data = conn.recv(4096)
                    if not data:
                        return
                    since_pause += len(data)
                    if since_pause >= 16384:
                        since_pause = 0
                        time.sleep(0.3)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        with socket.create_connection(("127.0.0.1", port), timeout=LIVE_DEADLINE_S) as client:
            client.sendall(b"x" * total)
            client.shutdown(socket.SHUT_WR)
            client.recv(1)  # the server's FIN, after it read everything
        server.join(LIVE_DEADLINE_S)


def _keep_alive(port: int, idle_s: float = 1.6) -> None:
    """An idle connection whose client probes after 1 s (TCP_KEEPIDLE), then closes."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(LIVE_DEADLINE_S)
        with socket.create_connection(("127.0.0.1", port), timeout=LIVE_DEADLINE_S) as client:
            conn, _ = listener.accept()
            with conn:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
                client.sendall(b"hello")
                conn.recv(5)
                time.sleep(idle_s)


def _reused_port(port: int) -> None:
    """Two connections from the same client port: the first ends with RST (SO_LINGER 0,
    so no TIME_WAIT), the second starts with a SYN of a new ISN."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(LIVE_DEADLINE_S)
        local = 0
        for _ in range(2):
            client = socket.socket()
            client.settimeout(LIVE_DEADLINE_S)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            client.bind(("127.0.0.1", local))
            local = client.getsockname()[1]
            client.connect(("127.0.0.1", port))
            conn, _ = listener.accept()
            client.sendall(b"ping")
            conn.recv(4)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # RST
            conn.close()
            time.sleep(0.05)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def capture_live(path: Path) -> None:
    bulk, idle, reuse = _free_ports(3)
    bpf = f"tcp port {bulk} or tcp port {idle} or tcp port {reuse}"
    cap = TcpdumpCapture(path, bpf)
    try:
        cap.start()
    except CaptureUnavailable as exc:
        pytest.skip(str(exc))
    with cap:
        errors: list[BaseException] = []

        def guarded(job: Callable[[int], None], port: int) -> threading.Thread:
            def body() -> None:
                try:
                    job(port)
                except BaseException as exc:  # reported below, in the test's thread
                    errors.append(exc)
            return threading.Thread(target=body, daemon=True)

        jobs = [guarded(_bulk_transfer, bulk), guarded(_keep_alive, idle),
                guarded(_reused_port, reuse)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(LIVE_DEADLINE_S)
        assert not errors, errors
        cap.stop()


# ----- the tests ----------------------------------------------------------------------
class Split(NamedTuple):
    """The corpus files with TCP, and apart those where tshark gets other segments."""

    same: list[Path]
    other: dict[Path, str]  # file -> why tshark analyzes other segments
    without_tcp: list[Path]


@pytest.fixture(scope="module")
def decode_split() -> Split:
    checks = {path: decode_check(path) for path in CORPUS_FILES}
    return Split([p for p, c in checks.items() if c.tcp and c.differs is None],
                 {p: c.differs for p, c in checks.items() if c.differs is not None},
                 [p for p, c in checks.items() if not c.tcp])


@pytest.fixture(scope="module")
def corpus_source(summary: _Summary, decode_split: Split) -> Source:
    # Files in which capdissect decodes no TCP segment are left out (tshark finds TCP in
    # none of them but a segment quoted by an ICMP error, which it does not analyze).
    skipped = f"{len(decode_split.without_tcp)} files without TCP segments not run"
    return compare("corpus + corpus-extra", decode_split.same, summary, [skipped])


@pytest.fixture(scope="module")
def decode_differs_source(summary: _Summary, decode_split: Split) -> Source:
    """Compared and shown, not asserted: the difference is in decoding, before analysis
    (tshark reassembles IP fragments and cuts an IP length that overruns the frame)."""
    other = decode_split.other
    notes = [f"{path.name}: {why}" for path, why in other.items()]
    return compare("corpus files tshark decodes to other segments (not asserted)",
                   list(other), summary, notes, asserted=False)


@pytest.fixture(scope="module")
def crafted_source(summary: _Summary, tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("analysis") / "crafted.pcap"
    write_scenarios(path)
    return compare("crafted connections", [path], summary)


@pytest.fixture(scope="module")
def live_source(summary: _Summary, tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("analysis") / "bulk.pcap"  # .pcap: AppArmor lets tcpdump
    capture_live(path)
    return compare("live loopback (bulk, keep-alive, reused port)", [path], summary)


def test_crafted_connections_agree_on_every_frame(crafted_source: Source) -> None:
    assert crafted_source.differences == {}
    assert crafted_source.agreement.share() == 1.0
    flagged = {name for name in NAMES if crafted_source.agreement.either[name]}
    assert flagged == set(NAMES), "a scenario lost its flag"


@pytest.mark.live
def test_live_transfer_agrees(live_source: Source) -> None:
    shown = {n for n in NAMES if live_source.agreement.either[n]}
    assert {"zero_window", "window_full", "window_update", "keep_alive",
            "reused_ports"} <= shown
    assert live_source.agreement.share() >= MIN_OVERALL, live_source.differences


def test_overall_agreement(corpus_source: Source, crafted_source: Source,
                           decode_differs_source: Source,
                           request: pytest.FixtureRequest) -> None:
    sources = [corpus_source, crafted_source, decode_differs_source]
    # The live capture counts too, unless live tests are deselected (-m "not live") or
    # this machine cannot capture; the files count either way.
    if "not live" not in (request.config.getoption("markexpr") or ""):
        with contextlib.suppress(pytest.skip.Exception):
            sources.append(request.getfixturevalue("live_source"))
    print("\n" + "\n".join(summary_lines(sources)))
    assert overall(sources).share() >= MIN_OVERALL, summary_lines(sources)


def test_every_name_is_wiresharks() -> None:
    """The names are exactly tshark's tcp.analysis labels (FT_NONE fields)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    fields = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True,
                            check=True, timeout=120).stdout
    labels = {cells[2].removeprefix("tcp.analysis.") for cells in
              (line.split("\t") for line in fields.splitlines())
              if len(cells) > 3 and cells[2].startswith("tcp.analysis.")
              and cells[3] == "FT_NONE"}
    assert set(NAMES) == labels - {"flags"}
    assert len(NAMES) == len(set(NAMES))
