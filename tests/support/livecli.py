"""``capdissect live`` as a child process for the live tests: start it, wait until it
listens, stop it with -c, a signal or a deadline, and read what it printed.

stdout and stderr go to files, not pipes, so a test that stops reading can never block
the child.  Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tests.support.compare import capdissect_command, fixed_env, split_blocks

START_TIMEOUT_S: Final = 20.0
EXIT_TIMEOUT_S: Final = 30.0
ANNOTATION: Final = "    | "
BACKENDS: Final = ("scapy", "tshark")


def live_problem(backend: str, tcpdump: bool = True) -> str | None:
    """Why this machine cannot run a live test of *backend*, or None."""
    if os.geteuid() != 0:
        return "live capture needs root (CAP_NET_RAW)"
    if tcpdump and shutil.which("tcpdump") is None:
        return "tcpdump is not installed (apt-get install tcpdump)"
    if backend == "tshark" and shutil.which("dumpcap") is None:
        return "dumpcap is not installed (apt-get install tshark)"
    return None


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel calls free for *kind* on *host* right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def free_port_both() -> int:
    """A port free for TCP and UDP on 127.0.0.1 and ::1 (bounded tries)."""
    for _ in range(50):
        port = free_port()
        try:
            for host in ("127.0.0.1", "::1"):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    with socket.socket(family, kind) as probe:
                        probe.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for TCP and UDP on both loopback addresses")


class LiveCommand:
    """``capdissect live ARGS`` running in the background."""

    def __init__(self, args: Sequence[str], workdir: Path, name: str = "live",
                 prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, *capdissect_command(), "live", *args]
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> LiveCommand:
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=fixed_env())
        if wait:
            self.wait_for_stderr("listening on")
        return self

    def wait_for_stderr(self, needle: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.stderr:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"capdissect live exited ({self.proc.returncode}) before "
                                     f"{needle!r}:\n{self.stderr}")
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"capdissect live did not print {needle!r} within "
                             f"{timeout_s:.0f} s:\n{self.stderr}")

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"capdissect live did not end within {timeout_s:.0f} s:\n"
                                 f"{self.stderr}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(EXIT_TIMEOUT_S)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="latin-1") if self.out_path.exists() else ""

    @property
    def stderr(self) -> str:
        return (self.err_path.read_text(encoding="utf-8", errors="replace")
                if self.err_path.exists() else "")


def packet_part(stdout: str) -> str:
    """live's stdout before the summary (which follows an empty line), or all of it while
    live runs."""
    head, blank, _summary = stdout.partition("\n\n")
    return head + "\n" if blank else stdout


def packet_blocks(stdout: str) -> list[str]:
    """The packet blocks live printed, without annotation lines."""
    text = "".join(line for line in packet_part(stdout).splitlines(keepends=True)
                   if not line.startswith(ANNOTATION))
    return split_blocks(text)
