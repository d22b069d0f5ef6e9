"""``capdissect live`` under faults (issue #9): one line on stderr, the right exit status,
and a ``-w`` file that tcpdump reads to its last whole packet.

- The interface deleted mid-capture (both backends, pcap and pcapng): exit 1 and
  ``capdissect: IFACE: the interface disappeared (captured N packets)``; the file holds
  the N packets shown.  Taken down and up again it is no error (as for tcpdump): the
  capture waits, without spinning, and goes on.
- ``-w`` on a full disk (a 64 KiB tmpfs): exit 1 and ``capdissect: FILE: No space left on
  device (wrote N packets)``; the file holds the N packets shown, whole records only, so
  ``tcpdump -r`` ends without "truncated dump file".  stdout on the full disk: one line too.
- ``capdissect live ... | head -1``: exit 0, nothing but the "listening on" line on
  stderr, dumpcap not left behind, the file readable.
- No privilege needed: the writer, whose write cut short (RLIMIT_FSIZE) leaves whole
  records as a full disk does; a flush that fails while the capture waits.

Isolation: each interface lives in a network namespace the test creates and always
deletes (``capd-fault-<random>``); the full disk is a tmpfs mounted in a private mount
namespace (``unshare --mount``), seen by nothing outside the test.  The main namespace's
interfaces and firewall are never touched.  Traffic is a bounded number of UDP
datagrams; every wait is bounded.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pytest

from capdissect.commands.live import Flusher
from tests.support.compare import capdissect_command, fixed_env, run, split_blocks
from tests.support.livecli import BACKENDS, LiveCommand, free_port, live_problem

ERROR_LINE: Final = re.compile(r"capdissect: \S.*")
IFACE: Final = "capf0"
ADDRESS: Final = "10.77.0.1/24"
PEER: Final = "10.77.0.2"  # a static neighbour: datagrams to it leave through IFACE at once
PEER_MAC: Final = "02:00:00:00:00:02"
DISK_SIZE: Final = "64k"
WAIT_S: Final = 15.0
SUFFIXES: Final = ("pcap", "pcapng")


def need(backend: str, *tools: str) -> None:
    problem = live_problem(backend)
    if problem is None:
        missing = [tool for tool in tools if shutil.which(tool) is None]
        problem = f"{', '.join(missing)} not installed" if missing else None
    if problem is not None:
        pytest.skip(problem)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


@contextmanager
def namespace_with_interface() -> Iterator[str]:
    """A fresh network namespace holding IFACE (dummy, else a veth pair), up, with an
    address and a static neighbour; deleted afterwards whatever happened."""
    name = f"capd-fault-{secrets.token_hex(4)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        if ip("-n", name, "link", "add", IFACE, "type", "dummy", check=False).returncode:
            # No dummy driver (a kernel without the module): a veth pair does as well.
            ip("-n", name, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE + "p")
            ip("-n", name, "link", "set", IFACE + "p", "up")
        ip("-n", name, "link", "set", IFACE, "up")
        ip("-n", name, "addr", "add", ADDRESS, "dev", IFACE)
        add_neighbour(name)
        yield name
    finally:
        ip("netns", "del", name, check=False)


def add_neighbour(namespace: str) -> None:
    # Taking the interface down flushes neighbours, so this is also done after "up".
    ip("-n", namespace, "neigh", "replace", PEER, "lladdr", PEER_MAC, "dev", IFACE,
       "nud", "permanent")


def send_in(namespace: str, count: int, tag: str) -> None:
    """*count* UDP datagrams to PEER through IFACE, sent from inside *namespace*."""
    script = ("import socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"for i in range({count}):\n"
              f"    s.sendto(b'{tag} %d' % i, ('{PEER}', 9))\n")
    subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", script],
                   check=True, timeout=30, capture_output=True)


def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def the_error_line(stderr: str) -> str:
    """stderr of a run that failed: "listening on", then exactly one error line."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("listening on "), stderr
    assert ERROR_LINE.fullmatch(lines[1]), stderr
    return lines[1]


def read_back(path: Path) -> list[str]:
    """The packet blocks of *path* as tcpdump reads them; capdissect reads the same, and
    neither finds a truncated record."""
    theirs = run(["tcpdump", "-r", str(path), "-nn"])
    assert theirs.returncode == 0 and "truncated" not in theirs.stderr, theirs.stderr
    ours = run([*capdissect_command(), "read", str(path), "--plain", "-nn"])
    assert ours.problem() is None, ours.problem()
    assert split_blocks(ours.stdout) == split_blocks(theirs.stdout)
    return split_blocks(theirs.stdout)


def cpu_seconds(pid: int) -> float:
    """User + system time of *pid* (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----- the interface goes away -------------------------------------------------------------
@pytest.mark.live
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_interface_deleted_mid_capture(backend: str, suffix: str, tmp_path: Path) -> None:
    need(backend, "ip")
    out_file = tmp_path / f"out.{suffix}"
    sent = 5
    with namespace_with_interface() as namespace:
        live = LiveCommand(["-i", IFACE, "-nn", "--plain", "-w", str(out_file), "--backend",
                            backend, "--duration", "60", "udp"], tmp_path,
                           prefix=["ip", "netns", "exec", namespace]).start()
        try:
            send_in(namespace, sent, "before")
            # Shown first: what dumpcap (libpcap) has not read when the interface goes
            # is lost with it, as for tcpdump.
            assert wait_for(lambda: len(split_blocks(live.stdout)) >= sent), live.stdout
            ip("-n", namespace, "link", "del", IFACE)
            assert live.wait() == 1, live.stderr
        finally:
            live.kill()
    line = the_error_line(live.stderr)
    assert line == f"capdissect: {IFACE}: the interface disappeared (captured {sent} packets)"
    shown = split_blocks(live.stdout)
    assert len(shown) == sent
    assert read_back(out_file) == shown


@pytest.mark.live
@pytest.mark.parametrize("backend", BACKENDS)
def test_interface_down_and_up_again_is_waited_for(backend: str, tmp_path: Path) -> None:
    need(backend, "ip")
    with namespace_with_interface() as namespace:
        live = LiveCommand(["-i", IFACE, "-nn", "--plain", "--backend", backend,
                            "--duration", "60", "udp"], tmp_path,
                           prefix=["ip", "netns", "exec", namespace]).start()
        try:
            send_in(namespace, 2, "before")
            assert wait_for(lambda: len(split_blocks(live.stdout)) >= 2), live.stdout
            assert live.proc is not None
            ip("-n", namespace, "link", "set", IFACE, "down")
            used = cpu_seconds(live.proc.pid)
            time.sleep(1.0)
            assert live.proc.poll() is None, f"live ended on a down interface:\n{live.stderr}"
            # Waiting for the interface is polling it, not spinning.
            assert cpu_seconds(live.proc.pid) - used < 0.5
            ip("-n", namespace, "link", "set", IFACE, "up")
            add_neighbour(namespace)
            send_in(namespace, 2, "after")
            assert wait_for(lambda: len(split_blocks(live.stdout)) >= 4), live.stdout
            live.signal(signal.SIGINT)
            assert live.wait() == 0, live.stderr
        finally:
            live.kill()
    assert "capdissect:" not in live.stderr and "Traceback" not in live.stderr, live.stderr
    assert len(split_blocks(live.stdout)) == 4


# ----- the disk fills ------------------------------------------------------------------------
# In a private mount namespace: a small tmpfs on $1, then capdissect ("$@" after the two
# directories) with -w into it or stdout onto it ($3), then what it wrote is copied to $2,
# outside the tmpfs, which goes away with the namespace.
FULL_DISK_SCRIPT: Final = """
mount -t tmpfs -o size={size} tmpfs "$1" || exit 99
disk=$1 keep=$2 target=$3
shift 3
if [ "$target" = stdout ]; then "$@" > "$disk/out.txt"; else "$@"; fi
status=$?
cp "$disk"/* "$keep"/
exit $status
"""


def on_full_disk(args: list[str], tmp_path: Path, target: str) -> tuple[LiveCommand, Path]:
    disk, keep = tmp_path / "disk", tmp_path / "keep"
    disk.mkdir()
    keep.mkdir()
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              FULL_DISK_SCRIPT.format(size=DISK_SIZE), "sh", str(disk), str(keep), target]
    return LiveCommand(args, tmp_path, prefix=prefix), keep


def fill_until_done(live: LiveCommand, port: int, payload_len: int) -> None:
    """Datagrams to *port* on loopback until live ends (bounded in count and time)."""
    assert live.proc is not None
    deadline = time.monotonic() + 30.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sink.bind(("127.0.0.1", port))  # so no ICMP error answers them
        for number in range(5000):
            if live.proc.poll() is not None or time.monotonic() > deadline:
                return
            sender.sendto(b"%06d" % number + b"x" * payload_len, ("127.0.0.1", port))
            time.sleep(0.002)


@pytest.mark.live
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_full_disk_stops_with_whole_records(backend: str, suffix: str, tmp_path: Path) -> None:
    need(backend, "unshare")
    port = free_port(kind=socket.SOCK_DGRAM)
    written = tmp_path / "disk" / f"cap.{suffix}"
    live, keep = on_full_disk(["--port", str(port), "-nn", "--plain", "-w", str(written),
                               "--backend", backend, "--duration", "60"], tmp_path, "file")
    live.start()
    try:
        fill_until_done(live, port, 1000)
        assert live.wait() == 1, live.stderr
    finally:
        live.kill()
    line = the_error_line(live.stderr)
    found = re.fullmatch(rf"capdissect: {re.escape(str(written))}: No space left on device "
                         r"\(wrote (\d+) packets\)", line)
    assert found, line
    shown = split_blocks(live.stdout)
    assert int(found.group(1)) == len(shown) > 10
    kept = keep / written.name
    assert kept.stat().st_size > 48 * 1024  # the disk was filled, not the run cut short
    assert read_back(kept) == shown


@pytest.mark.live
def test_full_disk_under_stdout_is_one_line(tmp_path: Path) -> None:
    need("scapy", "unshare")
    port = free_port(kind=socket.SOCK_DGRAM)
    live, keep = on_full_disk(["--port", str(port), "-nn", "-X", "--duration", "60"],
                              tmp_path, "stdout")
    live.start()
    try:
        fill_until_done(live, port, 1000)
        assert live.wait() == 1, live.stderr
    finally:
        live.kill()
    line = the_error_line(live.stderr)
    assert line == "capdissect: standard output: No space left on device"
    assert (keep / "out.txt").stat().st_size > 48 * 1024


# ----- the reader goes away ------------------------------------------------------------------
def dumpcaps_for(port: int) -> list[int]:
    """dumpcap processes whose filter names *port* (ours: the port is fresh)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"dumpcap") and any(b"port %d" % port in a for a in argv):
            found.append(int(entry.name))
    return found


@pytest.mark.live
@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_pipe_is_quiet(backend: str, tmp_path: Path) -> None:
    need(backend, "bash", "head")
    port = free_port(kind=socket.SOCK_DGRAM)
    out_file, err_file, head_file = (tmp_path / "out.pcap", tmp_path / "live.err",
                                     tmp_path / "head.out")
    command = shlex.join([*capdissect_command(), "live", "--port", str(port), "-nn", "--plain",
                          "-w", str(out_file), "--backend", backend, "--duration", "60"])
    # pipefail: the status is capdissect's, not head's.
    script = (f"set -o pipefail; {command} 2>{shlex.quote(str(err_file))} "
              f"| head -1 >{shlex.quote(str(head_file))}")
    pipeline = subprocess.Popen(["bash", "-c", script], env=fixed_env(),
                                stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (err_file.exists() and "listening on" in err_file.read_text())
                        or pipeline.poll() is not None), "live did not start"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sink.bind(("127.0.0.1", port))
            for number in range(300):  # until the pipeline ends: a packet after head left
                if pipeline.poll() is not None:
                    break
                sender.sendto(b"datagram %d" % number, ("127.0.0.1", port))
                time.sleep(0.05)
        status = pipeline.wait(30)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait(30)
    stderr = err_file.read_text()
    assert status == 0, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("listening on "), stderr
    assert dumpcaps_for(port) == []
    shown = split_blocks(head_file.read_text(encoding="latin-1"))
    assert len(shown) == 1
    written = read_back(out_file)
    assert written and written[0] == shown[0]


# ----- no privilege needed: the writer, the flusher -------------------------------------
WRITE_UNTIL_REFUSED: Final = """
import resource, signal, sys
from capdissect.sources.writer import PacketWriter
from capdissect.errors import OutputError
from capdissect.packets import RawPacket

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death past the limit
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
frame = bytes(12) + b"\\x08\\x00" + bytes(86)  # 100 bytes of Ethernet
with PacketWriter(sys.argv[1], 1, 262144, iface="lo") as writer:
    try:
        for number in range(1000):
            writer.write(RawPacket(1700000000 + number, 0, 1, len(frame), frame))
    except OutputError as exc:
        print(exc)
"""


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_writer_keeps_whole_records_when_a_write_is_cut_short(suffix: str,
                                                              tmp_path: Path) -> None:
    from capdissect.sources.files import open_capture

    path = tmp_path / f"cut.{suffix}"
    limit = 1000  # not a record boundary in either format: the last write is cut short
    done = subprocess.run([sys.executable, "-c", WRITE_UNTIL_REFUSED, str(path), str(limit)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(rf"{re.escape(str(path))}: File too large \(wrote (\d+) packets\)\n",
                         done.stdout)
    assert found, done.stdout
    with open_capture(path) as capture:
        packets = list(capture)  # raises TruncatedFile on a half record
    assert len(packets) == int(found.group(1)) > 0
    assert path.stat().st_size <= limit
    if shutil.which("tcpdump"):
        assert len(read_back(path)) == len(packets)


class ClosedPipe(io.StringIO):
    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_flush_while_waiting_stops_the_capture_and_is_raised_after_it() -> None:
    # The flush runs inside the capture source, whose reader (tshark backend) would word
    # an OSError as a capture error: it is kept, the capture stopped, and raised later.
    stops: list[bool] = []
    flusher = Flusher(ClosedPipe(), interactive=False, on_error=lambda: stops.append(True))
    flusher.idle()
    flusher.idle()  # nothing more is tried once the output failed
    assert stops == [True]
    with pytest.raises(BrokenPipeError):
        flusher.check()
