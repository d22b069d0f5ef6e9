"""Capture a scenario with ``tcpdump -i lo -w FILE``, in whatever network namespace the
calling process is in.

Why tcpdump and not capdissect's own capture: the scenarios double as test fixtures for
the reader and the tracker, so the bytes on disk must come from the reference tool.
The capture starts only once tcpdump says ``listening on`` (the BPF filter is attached
then, nothing will be missed) and stops with SIGINT, so tcpdump flushes a complete file.
Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from capdissect.errors import CaptureError, DemoUnavailable

START_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 10.0
_POLL_S: Final = 0.02
SETTLE_TIMEOUT_S: Final = 3.0

_PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": "<",  # little-endian, microseconds
    b"\x4d\x3c\xb2\xa1": "<",  # little-endian, nanoseconds
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
}


def capture_problem() -> str | None:
    """Why this process cannot run tcpdump on lo, or None."""
    if shutil.which("tcpdump") is None and shutil.which("tcpdump", path="/usr/sbin:/sbin") is None:
        return "tcpdump is not installed (apt-get install tcpdump)"
    if os.geteuid() != 0:
        return "live capture needs root (tcpdump -i lo needs CAP_NET_RAW)"
    return None


def count_pcap_records(path: Path) -> int:
    """Number of whole records in the classic pcap file at *path* (tcpdump -w writes one).

    Reads only the 16-byte record headers, so it is cheap on big files.  A record cut
    short at the end (tcpdump still writing) is not counted.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return 0
        order = _PCAP_MAGICS.get(header[:4])
        if order is None:
            raise ValueError(f"{path}: not a classic pcap file")
        record = struct.Struct(order + "IIII")
        count = 0
        offset = 24
        # each iteration consumes one record header (16 bytes) or stops: bounded by size/16
        for _ in range(size // 16 + 1):
            raw = f.read(16)
            if len(raw) < 16:
                break
            _sec, _frac, caplen, _wirelen = record.unpack(raw)
            offset += 16 + caplen
            if offset > size:
                break
            f.seek(offset)
            count += 1
        return count


class TcpdumpCapture:
    """``with TcpdumpCapture(path, "port 30002") as cap: ...make traffic...; cap.stop()``.

    ``stop(expect_packets=N)`` waits (bounded) until the file holds N records before it
    interrupts tcpdump; without N it waits until the file stops growing.  Leaving the
    block stops tcpdump if the caller did not.
    """

    def __init__(
        self,
        path: Path,
        bpf_filter: str | Sequence[str] = (),
        *,
        iface: str = "lo",
        immediate: bool = True,
        buffer_kib: int | None = None,
        tcpdump: str = "tcpdump",
    ) -> None:
        self.path = path
        self.filter = [bpf_filter] if isinstance(bpf_filter, str) else list(bpf_filter)
        self.iface = iface
        self.immediate = immediate
        self.buffer_kib = buffer_kib
        self.tcpdump = tcpdump
        self.stderr_lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        cmd = [self.tcpdump, "-i", self.iface, "-w", str(self.path), "-s", "0", "-U"]
        if self.immediate:
            cmd.append("--immediate-mode")
        if self.buffer_kib is not None:
            cmd += ["-B", str(self.buffer_kib)]
        # tcpdump drops root to user "tcpdump" after opening the device unless told -Z root;
        # the output file is opened after that, so a directory only root can write fails.
        if os.geteuid() == 0:
            cmd += ["-Z", "root"]
        return cmd + self.filter

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:  # ends when tcpdump exits and closes the pipe
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "listening on" in line:
                self._listening.set()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        problem = capture_problem()
        if problem is not None:
            raise DemoUnavailable(problem)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self._proc = proc
        self._reader = threading.Thread(
            target=self._read_stderr, args=(proc,), name="tcpdump-stderr", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._listening.is_set():
            if proc.poll() is not None:
                self._reader.join(1.0)
                message = " | ".join(self.stderr_lines) or f"exit status {proc.returncode}"
                lowered = message.lower()
                if "permission" in lowered or "not permitted" in lowered:
                    raise DemoUnavailable(f"tcpdump cannot capture: {message}")
                raise CaptureError(f"tcpdump exited before capturing: {message}")
            if time.monotonic() > deadline:
                self._terminate()
                raise CaptureError(f"tcpdump did not start listening within {timeout_s:.0f} s")
            self._listening.wait(_POLL_S)

    def records(self) -> int:
        return count_pcap_records(self.path) if self.path.exists() else 0

    def stop(
        self,
        expect_packets: int | None = None,
        settle_timeout_s: float = SETTLE_TIMEOUT_S,
        quiet_s: float = 0.2,
    ) -> int:
        """Wait for the packets to reach the file, stop tcpdump, return the record count.

        Wait until the file holds *expect_packets* records (if given) and has not grown for
        *quiet_s* (tcpdump without --immediate-mode hands packets over in blocks, up to a
        second apart).  The wait ends after *settle_timeout_s* in any case.
        """
        proc = self._proc
        if proc is None:
            raise CaptureError("tcpdump is not running")
        if proc.poll() is None:
            self._settle(expect_packets, settle_timeout_s, quiet_s)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._terminate()
                raise CaptureError("tcpdump did not stop on SIGINT") from None
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._proc = None
        return self.records()

    def _settle(self, expect_packets: int | None, timeout_s: float, quiet_s: float) -> None:
        """Wait until the file holds *expect_packets* (if given) and has stopped growing
        for *quiet_s*: a scenario may send more than its minimum (retransmissions)."""
        deadline = time.monotonic() + timeout_s
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = self.records()
            if count != last:
                last, stable_since = count, time.monotonic()
            elif (expect_packets is None or count >= expect_packets) and (
                time.monotonic() - stable_since >= quiet_s
            ):
                return
            time.sleep(_POLL_S)

    def close(self) -> None:
        """Stop tcpdump at once (on an error path): no settling, bounded waits."""
        self._terminate()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._proc = None

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> TcpdumpCapture:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        if exc is None:
            self.stop()
        else:
            self.close()
