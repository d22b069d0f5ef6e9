"""``capdissect live`` at 20,000 packets/s on loopback for 10 s, against tcpdump (SPEC 5).

    make bench-live                          # = .venv/bin/python benchmarks/live_bench.py --write
    .venv/bin/python benchmarks/live_bench.py --rate 40000 --seconds 5 --backend scapy

For each backend: ``capdissect live --port P -nn -w ours.pcap`` (annotated output to a
file) and ``tcpdump -i lo -w theirs.pcap udp port P`` capture side by side while a
rate-limited UDP sender puts RATE datagrams a second on 127.0.0.1:P for SECONDS
seconds.  Each datagram carries a sequence number.  A bound socket on P receives them
without reading (so no ICMP errors are made; its full buffer drops them silently after
the capture point).  Then:

- every datagram tcpdump saw must be in capdissect's file, in the same order, none
  twice; and capdissect must have printed each one (SPEC 5: keeps up, loses nothing
  that tcpdump saw);
- "catch-up" is how long after the sender finished capdissect's file still grew (0
  when it kept pace); CPU is capdissect's user+system time for the whole run.

A second table measures output latency: single datagrams 50 ms apart, the time from
``sendto`` until capdissect's line arrives on a pipe (stdout not a terminal, so the
batched flushing is what is measured).  ``--scapy-sniff`` adds what scapy's own
``sniff()`` manages, the reason the scapy backend reads a ring instead.

Writes benchmarks/LIVE.md with ``--write``.  Needs root, tcpdump and (for the tshark
row) dumpcap.  Every loop is bounded in packets and in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
sys.path.insert(0, str(ROOT))  # the repository: capdissect and tests.support.livecap
from bench import capdissect_script, machine  # noqa: E402  (benchmarks/ is on the path)

from capdissect.sources.files import open_capture  # noqa: E402
from tests.support.livecap import TcpdumpCapture, count_pcap_records  # noqa: E402

LIVE_MD: Final = HERE / "LIVE.md"
RATE: Final = 20_000
SECONDS: Final = 10.0
PAYLOAD_PAD: Final = b"capdissect-live-bench-pad"  # 8-byte sequence number + this
UDP_PAYLOAD_AT: Final = 14 + 20 + 8  # Ethernet (lo), IPv4 without options, UDP
START_TIMEOUT_S: Final = 15.0
CATCH_UP_LIMIT_S: Final = 120.0
QUIET_S: Final = 3.0
LATENCY_PACKETS: Final = 20


@dataclass
class Row:
    backend: str
    rate: int
    seconds: float
    sent: int
    sent_in_s: float
    tcpdump: int
    ours_file: int
    printed: int
    missing: int
    duplicates: int
    same_order: bool
    kernel_drops: str
    catch_up_s: float
    cpu_s: float
    exit_code: int
    target: bool = True  # False: a headroom run above SPEC 5's rate, for information

    @property
    def ok(self) -> bool:
        return (self.missing == 0 and self.duplicates == 0 and self.same_order
                and self.printed == self.ours_file and self.exit_code == 0)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def blast(port: int, rate: int, seconds: float) -> tuple[int, float]:
    """Send rate*seconds datagrams to 127.0.0.1:port at *rate* a second; (sent, seconds)."""
    total = int(rate * seconds)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        start = time.monotonic()
        sent = 0
        # Each turn sends what is due by now, then sleeps 0.5 ms: bounded by `total`
        # sends and by the deadline (a sender that cannot keep up stops anyway).
        deadline = start + seconds * 3 + 5
        while sent < total and time.monotonic() < deadline:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                tx.sendto(struct.pack("!Q", sent) + PAYLOAD_PAD, ("127.0.0.1", port))
                sent += 1
            time.sleep(0.0005)
        return sent, time.monotonic() - start


def sequence_numbers(path: Path) -> list[int]:
    with open_capture(path) as capture:
        return [struct.unpack_from("!Q", pkt.data, UDP_PAYLOAD_AT)[0] for pkt in capture
                if len(pkt.data) >= UDP_PAYLOAD_AT + 8]


def wait_for_line(path: Path, needle: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"capdissect live exited: {path.read_text(errors='replace')}")
        time.sleep(0.02)
    raise RuntimeError(f"capdissect live did not say {needle!r} within {timeout_s:.0f} s")


def settle(path: Path, want: int) -> float:
    """Wait until *path* holds *want* records or stops growing for QUIET_S; return how
    long it took (bounded by CATCH_UP_LIMIT_S)."""
    start = time.monotonic()
    last, since = -1, start
    while time.monotonic() - start < CATCH_UP_LIMIT_S:
        count = count_pcap_records(path) if path.exists() else 0
        if count >= want:
            return time.monotonic() - start
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > QUIET_S:
            break
        time.sleep(0.02)
    return time.monotonic() - start


def printed_packets(text: str) -> int:
    """Packet blocks in live's stdout: lines before the summary that are not annotations."""
    body = text.split("\n\n", 1)[0]
    return sum(1 for line in body.splitlines() if line and not line.startswith("    | "))


def run_backend(backend: str, rate: int, seconds: float, tmp: Path) -> Row:
    port = free_udp_port()
    ours_pcap, theirs_pcap = tmp / f"ours-{backend}.pcap", tmp / f"theirs-{backend}.pcap"
    out_path, err_path = tmp / f"ours-{backend}.txt", tmp / f"ours-{backend}.err"
    command = [capdissect_script(), "live", "--port", str(port), "-nn", "-w", str(ours_pcap),
               "--backend", backend]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            out_path.open("wb") as out, err_path.open("wb") as err:
        sink.bind(("127.0.0.1", port))  # receives, never reads: no ICMP port unreachable
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            wait_for_line(err_path, "listening on", START_TIMEOUT_S, proc)
            # tcpdump as a user runs it with -w (no --immediate-mode, which costs it a
            # wake-up per packet), with a 64 MiB buffer.
            with TcpdumpCapture(theirs_pcap, f"udp port {port}", buffer_kib=65536,
                                immediate=False) as tcpdump:
                sent, sent_in = blast(port, rate, seconds)
                theirs_count = tcpdump.stop(expect_packets=sent)
            catch_up = settle(ours_pcap, theirs_count)
            proc.send_signal(signal.SIGINT)
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    theirs, ours = sequence_numbers(theirs_pcap), sequence_numbers(ours_pcap)
    mine = set(ours)
    wanted = set(theirs)
    drops = "?"
    for line in err_path.read_text(errors="replace").splitlines():
        if line.endswith("dropped by kernel"):
            drops = line.split()[0]
    return Row(backend, rate, seconds, sent, sent_in, len(theirs), len(ours),
               printed_packets(out_path.read_text(errors="replace")), len(wanted - mine),
               len(ours) - len(mine), [s for s in ours if s in wanted] == theirs, drops,
               catch_up, usage.ru_utime + usage.ru_stime, proc.returncode)


def latency(backend: str, count: int = LATENCY_PACKETS) -> list[float]:
    """Seconds from sendto to capdissect's line on its stdout pipe, per datagram."""
    port = free_udp_port()
    command = [capdissect_script(), "live", "--port", str(port), "-nn", "--plain",
               "--backend", backend]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None and proc.stderr is not None
    seen: list[float] = []
    try:
        _read_until(proc.stderr.fileno(), b"listening on", START_TIMEOUT_S)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            sink.bind(("127.0.0.1", port))
            for i in range(count):
                start = time.monotonic()
                tx.sendto(struct.pack("!Q", i), ("127.0.0.1", port))
                _read_until(proc.stdout.fileno(), b"\n", 5.0)
                seen.append(time.monotonic() - start)
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return seen


def _read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"no {needle!r} within {timeout_s:.0f} s (got {data[-200:]!r})")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"stream ended before {needle!r}: {data[-200:]!r}")
        data += chunk
    return data


def _scapy_sniff_child(port: int, seconds: float, ready: Callable[[], None],
                       result: multiprocessing.connection.Connection) -> None:
    from scapy.all import AsyncSniffer

    counted = [0]

    def count(_pkt: object) -> None:
        counted[0] += 1

    sniffer = AsyncSniffer(iface="lo", filter=f"udp port {port}", prn=count, store=False)
    sniffer.start()
    time.sleep(1.0)  # AsyncSniffer has no "ready" signal: give it time to open its socket
    ready()
    time.sleep(seconds + 2.0)
    sniffer.stop()
    result.send(counted[0])


def scapy_sniff(rate: int, seconds: float) -> tuple[int, int]:
    """Datagrams sent, and packets scapy's sniff() delivered (each is seen twice on lo)."""
    port = free_udp_port()
    context = multiprocessing.get_context("fork")
    started = context.Event()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_scapy_sniff_child, args=(port, seconds, started.set, send))
    child.start()
    try:
        started.wait(15.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(("127.0.0.1", port))
            sent, _took = blast(port, rate, seconds)
        got = receive.recv() if receive.poll(seconds + 20.0) else -1
    finally:
        child.join(10.0)
        if child.is_alive():
            child.kill()
    return sent, int(got)


def markdown(rows: list[Row], latencies: dict[str, list[float]],
             sniffs: list[tuple[int, int, int]], load: tuple[float, float, float]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Live capture benchmark",
        "",
        "Written by `make bench-live` (`benchmarks/live_bench.py --write`); do not edit by "
        "hand.",
        "",
        "**What is measured** (SPEC §5: `live` keeps up with 20,000 packets/s on loopback for",
        "10 s without losing a packet that tcpdump, capturing alongside, saw).",
        "`capdissect live --port P -nn -w ours.pcap` (annotated output into a file) and",
        "`tcpdump -i lo -w theirs.pcap udp port P` capture together while a rate-limited",
        "sender puts numbered UDP datagrams on 127.0.0.1:P. *missing*: datagrams in",
        "tcpdump's file but not in capdissect's; *printed*: packet blocks capdissect wrote",
        "to stdout (must equal its file); *catch-up*: how long capdissect's file still grew",
        "after the sender stopped; *CPU*: capdissect's user+system seconds for the run.",
        "tcpdump runs as `tcpdump -i lo -w FILE -B 65536 -U`; under load it can drop packets",
        "itself (its own count of kernel drops), and the target is about those it saw.",
        "Rows marked *headroom* run the scapy backend above the target rate for 5 s, to",
        "show where it stops keeping up (the kernel counts what the full ring drops).",
        "",
        "| backend | rate (pkt/s) | sent | tcpdump | capdissect file | printed | missing |"
        " duplicates | same order | kernel drops | catch-up (s) | CPU (s) | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.rate:,} ({r.sent / r.sent_in_s:,.0f} achieved) | {r.sent:,} | "
            f"{r.tcpdump:,} | {r.ours_file:,} | {r.printed:,} | {r.missing} | {r.duplicates} | "
            f"{'yes' if r.same_order else 'no'} | {r.kernel_drops} | {r.catch_up_s:.2f} | "
            f"{r.cpu_s:.1f} | {('yes' if r.ok else 'no') if r.target else 'headroom'} |")
    if latencies:
        lines += [
            "",
            "**Output latency**: single datagrams 50 ms apart, from `sendto` until the line",
            "arrives on capdissect's stdout pipe (`live --plain -nn`, batched flushing).",
            "",
            "| backend | packets | median (ms) | max (ms) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for backend, values in latencies.items():
            lines.append(f"| {backend} | {len(values)} | {statistics.median(values) * 1000:.1f} "
                         f"| {max(values) * 1000:.1f} |")
    if sniffs:
        lines += [
            "",
            "**scapy's own `sniff()`** (`AsyncSniffer(iface='lo', filter=..., store=False)`,"
            " a counting callback), for comparison: on `lo` it delivers each packet twice",
            "(outgoing and incoming copy), so a sniffer that keeps up counts 2x sent.",
            "",
            "| rate (pkt/s) | sent | delivered | of 2x sent |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for rate, sent, got in sniffs:
            share = f"{got / (2 * sent):.0%}" if sent and got >= 0 else "?"
            lines.append(f"| {rate:,} | {sent:,} | {got:,} | {share} |")
    lines += ["", "## Machine", "", f"- Date: {now}",
              *(f"- {k}: {v}" for k, v in machine().items()),
              "- Load average (1, 5, 15 min) before the run: "
              + ", ".join(f"{x:.2f}" for x in load) + " (other work on the machine competes"
              " with the sender, tcpdump and capdissect for its CPUs)", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--backend", action="append", choices=("scapy", "tshark"))
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--headroom", action="append", type=int, metavar="RATE",
                        help="also run the scapy backend at RATE for 5 s, for information "
                        "(repeatable)")
    parser.add_argument("--scapy-sniff", action="append", type=int, metavar="RATE",
                        help="also measure scapy's sniff() at RATE (repeatable)")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/LIVE.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("live_bench: needs root (capdissect live and tcpdump capture)", file=sys.stderr)
        return 1
    backends = args.backend or ["scapy", "tshark"]
    load = os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="capdissect-live-bench-") as tmp:
        for backend in backends:
            row = run_backend(backend, args.rate, args.seconds, Path(tmp))
            print(row, file=sys.stderr)
            rows.append(row)
        for rate in args.headroom or []:
            row = run_backend("scapy", rate, 5.0, Path(tmp))
            row.target = False
            print(row, file=sys.stderr)
            rows.append(row)
    latencies = {} if args.no_latency else {b: latency(b) for b in backends}
    for backend, values in latencies.items():
        print(f"latency {backend}: median {statistics.median(values) * 1000:.1f} ms, "
              f"max {max(values) * 1000:.1f} ms", file=sys.stderr)
    sniffs = []
    for rate in args.scapy_sniff or []:
        sent, got = scapy_sniff(rate, 3.0)
        print(f"scapy sniff at {rate}: sent {sent}, delivered {got}", file=sys.stderr)
        sniffs.append((rate, sent, got))
    text = markdown(rows, latencies, sniffs, load)
    if args.write:
        LIVE_MD.write_text(text)
        print(f"wrote {LIVE_MD.relative_to(ROOT)}", file=sys.stderr)
    else:
        print(text)
    return 0 if all(row.ok for row in rows if row.target) else 1


if __name__ == "__main__":
    sys.exit(main())
