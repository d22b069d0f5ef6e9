"""Processes a test started, found by the file they name: a test gives its own temporary
file to the command, so a process whose command line names it is the test's (forked
workers share their parent's command line)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def naming(path: Path) -> list[int]:
    """The PIDs of the processes whose command line names *path*."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return found


def left_behind(path: Path, within_s: float = 10.0) -> list[int]:
    """The processes naming *path* still there after *within_s* seconds (none: they all
    ended sooner); those are killed, so that a failing test leaves nothing running."""
    deadline = time.monotonic() + within_s
    while naming(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = naming(path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
