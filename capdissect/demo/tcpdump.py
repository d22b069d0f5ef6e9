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
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

from capdissect.capture import open_capture
from capdissect.demo.errors import DemoUnavailable
from capdissect.errors import CaptureError

START_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 10.0
_POLL_S: Final = 0.02


def capture_problem() -> str | None:
    """Why this process cannot run tcpdump on lo, or None."""
    if shutil.which("tcpdump") is None and shutil.which("tcpdump", path="/usr/sbin:/sbin") is None:
        return "tcpdump is not installed (apt-get install tcpdump)"
    if os.geteuid() != 0:
        return "live capture needs root (tcpdump -i lo needs CAP_NET_RAW)"
    return None


def count_records(path: Path) -> int:
    """Whole packets in *path* so far; a record tcpdump is still writing does not count."""
    count = 0
    try:
        with open_capture(path) as cap:
            for _ in cap:
                count += 1
    except CaptureError:  # empty (header not written yet) or a record cut short
        pass
    return count


class Tcpdump:
    """``with Tcpdump(path, "tcp port 30002") as cap: ...traffic...; cap.stop(min_packets)``.

    Leaving the block after an error kills tcpdump without waiting for packets.
    """

    def __init__(self, path: Path, bpf_filter: str = "", iface: str = "lo") -> None:
        self.path = path
        self.filter = bpf_filter
        self.iface = iface
        self.stderr_lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin")
        # -U --immediate-mode: each packet reaches the file at once, so "the file stopped
        # growing" means the traffic is over (TPACKET_V3 would otherwise hold packets for up
        # to a second).  -Z root: tcpdump drops to user "tcpdump" before it opens the file.
        cmd = [tcpdump or "tcpdump", "-i", self.iface, "-w", str(self.path), "-s", "0", "-U",
               "--immediate-mode", "-Z", "root"]
        return cmd + ([self.filter] if self.filter else [])

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        problem = capture_problem()
        if problem is not None:
            raise DemoUnavailable(problem)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._proc = proc
        self._reader = threading.Thread(target=self._read_stderr, args=(proc,),
                                        name="tcpdump-stderr", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._listening.wait(_POLL_S):
            if proc.poll() is not None:
                self._reader.join(1.0)
                message = " | ".join(self.stderr_lines) or f"exit status {proc.returncode}"
                self._proc = None
                if "permission" in message.lower() or "not permitted" in message.lower():
                    raise DemoUnavailable(f"tcpdump cannot capture: {message}")
                raise CaptureError(f"tcpdump exited before capturing: {message}")
            if time.monotonic() > deadline:
                self.close()
                raise CaptureError(f"tcpdump did not start listening within {timeout_s:.0f} s")

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:  # ends when tcpdump exits and closes the pipe
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "listening on" in line:
                self._listening.set()

    def stop(self, min_packets: int = 1, quiet_s: float = 0.2, timeout_s: float = 3.0) -> int:
        """Wait until the file holds *min_packets* and has not grown for *quiet_s* (at most
        *timeout_s*), stop tcpdump, and return the number of packets written."""
        proc = self._proc
        if proc is None:
            raise CaptureError("tcpdump is not running")
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = count_records(self.path)
            if count != last:
                last, since = count, time.monotonic()
            elif count >= min_packets and time.monotonic() - since >= quiet_s:
                break
            time.sleep(_POLL_S)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.close()
            raise CaptureError("tcpdump did not stop on SIGINT") from None
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._proc = None
        return count_records(self.path)

    def close(self) -> None:
        """Stop tcpdump at once (an error path): no waiting for packets."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> Tcpdump:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.close()
        elif self._proc is not None:
            self.stop()
