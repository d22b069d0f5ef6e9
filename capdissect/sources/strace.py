"""Running strace: a command under it, or attached to running processes (the IO edge of
``capdissect trace`` and of ``capdissect.capture(trace=...)``).

strace writes its log (``-o``) to a file, parsed afterwards by tracking/syscalls.py; the
options are the ones that module expects: ``-f`` follows forks, ``-yy`` prints each
socket's addresses, ``-ttt`` stamps each line with the wall clock in microseconds (the
clock packet timestamps use), ``-T`` the time spent inside, so a call's return is known.

**Nothing is left behind.**  strace runs in a session of its own; the command it starts
is in that session too.  When the command ends, strace still waits for whatever the
command started; a short grace later, what is left of the session is killed, and so is
all of it when the run is stopped (Ctrl-C, SIGTERM, ``--duration``) or fails.  Attached
to running processes (``--pid``), stopping means detaching: SIGINT to strace, which
leaves the processes running as they were.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from capdissect.dissect.strace import TRACED, WAITS
from capdissect.errors import TraceError

# What is left of the command's session this long after the command itself ended is killed.
GRACE_S: Final = 1.0
ATTACH_TIMEOUT_S: Final = 5.0
STOP_TIMEOUT_S: Final = 5.0
POLL_S: Final = 0.02
_OPTIONS: Final = ("-f", "-yy", "-ttt", "-T", "-e", "signal=none",
                   "-e", "trace=" + ",".join(TRACED + WAITS))



def log_beside(capture: str | Path) -> Path:
    """Where the calls of a capture are kept: strace's own log, ``F.pcap.strace``
    (``trace -w F.pcap`` and ``demo --write F.pcap`` write it; ``timeline --calls``
    reads it)."""
    return Path(f"{capture}.strace")


@dataclass
class Tracing:
    """How tracing went: ``problem`` is None, or the one line saying why it could not."""

    log: Path
    problem: str | None = None


@contextlib.contextmanager
def tracing_this_process(log: Path) -> Iterator[Tracing]:
    """strace attached to this process (and what it starts) for the block; it detaches
    after.  Where strace cannot run (missing, no ptrace permission) the block runs
    untraced and ``problem`` says why, with no log left behind."""
    status = Tracing(log)
    tracer = Tracer(log, pids=(os.getpid(),))
    try:
        tracer.start()
    except TraceError as exc:
        status.problem = str(exc)
        log.unlink(missing_ok=True)
        yield status
        return
    try:
        yield status
    finally:
        tracer.stop()


def strace_path() -> str:
    path = shutil.which("strace")
    if path is None:
        raise TraceError("strace is not installed (apt-get install strace): "
                         "the socket calls cannot be traced")
    return path


class Tracer:
    """strace running *command*, or attached to *pids*, logging to *log*.

    ``start`` returns once the command runs (or every pid is attached); ``wait`` until
    the command ends; ``stop`` ends the tracing in order.  ``outcome`` is then None or
    one line about how the command ended (not found, exit status, killed).
    """

    def __init__(self, log: str | Path, *, command: Sequence[str] = (),
                 pids: Sequence[int] = (), output: IO[str] | None = None) -> None:
        if bool(command) == bool(pids):
            raise ValueError("give a command or pids, not both")
        self.log = Path(log)
        self.command = tuple(command)
        self.pids = tuple(pids)
        self.output = output  # where the command's stdout goes (default: inherited)
        self.outcome: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._child: int | None = None
        self._stderr_text = ""  # strace's stderr, kept when its file goes

    # ----- starting -------------------------------------------------------------------
    def start(self) -> Tracer:
        strace = strace_path()
        if self.command:
            program = self.command[0]
            if shutil.which(program) is None:
                raise TraceError(f"{program}: command not found")
            # -q, not -qq: the log keeps each process's "+++ exited with N +++".
            argv = [strace, "-q", *_OPTIONS, "-o", str(self.log), "--", *self.command]
        else:
            for pid in self.pids:
                if not Path(f"/proc/{pid}").is_dir():
                    raise TraceError(f"no process {pid} to trace")
            argv = [strace, *_OPTIONS, "-o", str(self.log)]
            for pid in self.pids:
                argv += ["-p", str(pid)]
        self._stderr = open(self.log.with_name(self.log.name + ".err"), "w+b")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if self.pids else None,
                                          stdout=self.output, stderr=self._stderr,
                                          start_new_session=True)
        except OSError as exc:
            self._close_stderr()
            raise TraceError(f"strace: {exc.strerror or exc}") from None
        try:
            if self.pids:
                self._wait_attached()
            else:
                self._child = self._find_child()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_attached(self) -> None:
        """Until strace said "attached" for each pid, or failed (no ptrace permission)."""
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self._messages()
            if self._proc is not None and self._proc.poll() is not None:
                break
            if text.count(" attached") >= len(self.pids):
                return
            time.sleep(POLL_S)
        problem = self._problem() or "strace did not attach in time"
        raise TraceError(problem)

    def _find_child(self) -> int | None:
        """The command's pid, to know when the command itself ends: the child of strace
        that has exec'd (strace also forks short-lived children of its own to test the
        kernel's ptrace features)."""
        assert self._proc is not None
        strace = f"/proc/{self._proc.pid}"
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while time.monotonic() < deadline and self._proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                own = os.readlink(f"{strace}/exe")
                for child in Path(f"{strace}/task/{self._proc.pid}/children").read_text().split():
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{child}/exe") != own:
                            return int(child)
            time.sleep(POLL_S / 4)
        return None

    # ----- waiting and stopping -------------------------------------------------------
    def running(self) -> bool:
        """True while there is something traced (the command, or an attached process)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        if self._child is not None and not _alive(self._child):
            # The command ended; what it started gets a grace, then the session ends.
            deadline = time.monotonic() + GRACE_S
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
            return False
        return True

    def wait(self, until: float | None = None) -> None:
        """Until the command (and strace) ended, or the monotonic time *until*."""
        while self.running() and (until is None or time.monotonic() < until):
            time.sleep(POLL_S)

    def stop(self) -> None:
        """End the tracing: detach from attached pids; kill what is left of the command's
        session.  strace is always reaped.  Sets ``outcome``."""
        proc = self._proc
        if proc is None:
            return
        vanished = bool(self.pids) and proc.poll() is not None  # strace had none left
        asked = proc.poll() is None  # still tracing: ending it is this stop's doing
        if not vanished and self.pids:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # strace detaches, the processes go on
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT_S)
        if not self.pids:
            _kill_session(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.kill()
        proc.wait()
        if not self.pids:
            _kill_session(proc.pid)  # a tracee that strace let go when it died
        self.outcome = self._problem() or self._ending(proc.returncode, vanished, asked)
        self._proc = None
        self._stderr_text = self._messages()
        self._close_stderr()

    def _ending(self, status: int, vanished: bool, asked: bool) -> str | None:
        """One line about how the traced program ended, or None when all went well (or
        the user stopped it)."""
        if vanished:
            which = " and ".join(f"pid {pid}" for pid in self.pids)
            return f"{which} ended while traced"
        if self.pids:
            return None
        name = self.command[0]
        logged = self._logged_end()
        if logged is not None:  # the command's own end, as strace saw it
            kind, value = logged
            if kind == "killed":
                return f"{name} was killed by {value}"
            return None if value == "0" else f"{name} exited with status {value}"
        if asked or status == 0:
            return None  # stopped before it ended (Ctrl-C, --duration)
        if status < 0:
            with contextlib.suppress(ValueError):
                return f"{name} was killed by {signal.Signals(-status).name}"
            return f"{name} was killed by signal {-status}"
        if status > 128:  # strace re-raises the command's signal; seen from here as 128+N
            with contextlib.suppress(ValueError):
                return f"{name} was killed by {signal.Signals(status - 128).name}"
        return f"{name} exited with status {status}"

    def _logged_end(self) -> tuple[str, str] | None:
        """("exited", "3") or ("killed", "SIGKILL") for the command's own process."""
        if self._child is None:
            return None
        end = re.compile(rf"{self._child} +\d+\.\d+ \+\+\+ (exited with (\d+)|"
                         r"killed by (SIG[A-Z0-9]+))")
        for line in reversed(self.log_lines()):
            found = end.match(line)
            if found is not None:
                return ("exited", found[2]) if found[2] else ("killed", found[3])
        return None

    def _messages(self) -> str:
        if self._stderr is None:
            return self._stderr_text
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.seek(0, os.SEEK_END)
        return text

    def _problem(self) -> str | None:
        """strace's own complaint (``strace: ...``), first line, if it made one."""
        for line in self._messages().splitlines():
            if line.startswith("strace: ") and "attached" not in line and (
                    "detached" not in line):
                text = line.removeprefix("strace: ")
                if "Operation not permitted" in text:
                    return ("strace: no permission to trace (ptrace): run as root, or "
                            "allow it with sysctl kernel.yama.ptrace_scope=0")
                return "strace: " + text
        return None

    def program_stderr(self) -> str:
        """What the traced command wrote to stderr (strace's own lines left out); the
        command's stderr is strace's, which goes to a file until the run ends."""
        return "".join(line for line in self._messages().splitlines(keepends=True)
                       if not line.startswith("strace: "))

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            with contextlib.suppress(OSError):
                Path(self._stderr.name).unlink()
            self._stderr = None

    def log_lines(self) -> list[str]:
        """strace's log (empty if it wrote none)."""
        try:
            return self.log.read_text("utf-8", "replace").splitlines()
        except OSError:
            return []


def _alive(pid: int) -> bool:
    """*pid* runs (a zombie, waiting for strace to reap it, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session (and group) *sid*, strace's own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
