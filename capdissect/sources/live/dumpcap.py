"""The ``tshark`` live backend: Wireshark's dumpcap captures, capdissect reads its pcap stream.

tshark itself captures through dumpcap, so we run dumpcap directly:
``dumpcap -i IFACE -f FILTER -s 262144 -B MIB -P -q -w -`` writes a classic pcap stream
to a pipe, and ``capture.files.CaptureFile`` (the streaming reader ``read`` uses) reads
it.  libpcap inside dumpcap gives each loopback packet once, with the kernel's
timestamps, as tcpdump does; the packets are the raw bytes, so printing and annotation
are exactly the ``scapy`` backend's.  (pyshark, the other way to drive tshark, hands
out tshark's dissection rather than the bytes, at milliseconds a packet.)

dumpcap writes its file header as soon as the capture is open and the filter set, and
flushes each packet to the pipe.  So ``DumpcapPipe`` returns once it has read that
header (the capture is live from then on), and an error before it (no privilege, no
such device, a bad filter) is read from dumpcap's stderr and turned into capdissect's
one line.  The interface and the filter are checked first in-process, so both backends
word those errors the same.

**Latency.**  dumpcap has no "immediate mode": libpcap hands it packets when a ring
block is full or its 250 ms read timeout expires, so a lone packet reaches us about
0.2 s after it crossed the interface (measured).  That is above the 0.1 s the ``scapy``
backend keeps; it is dumpcap's, and no option changes it.

Waiting is done in slices of at most 50 ms on the pipe, so ``stop()`` (a flag, safe in
a signal handler) and ``duration`` end the capture promptly; dumpcap is then
terminated and reaped.

**dumpcap stopping on its own.**  We give dumpcap no stop condition, so the end of its
stream is never a normal end: dumpcap has met an error (the interface deleted, which
it reports on stderr and then exits with status 0).  Once the pipe ends, the process is
reaped (bounded) and its last "dumpcap: " line becomes the error, after every whole
packet it wrote; an interface that disappeared is worded as the ``scapy`` backend
words it.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO, Final, cast

from capdissect.errors import CaptureError, TruncatedFile
from capdissect.packets import RawPacket
from capdissect.sources.files import CaptureFile
from capdissect.sources.filter import compile_live_expression
from capdissect.sources.live.common import (
    SNAPLEN,
    CaptureStats,
    capture_failed,
    interface_gone,
    no_such_interface,
    privilege_error,
)

START_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 5.0
WAIT_S: Final = 0.05
PCAP_HEADER_LEN: Final = 24
SIOCGIFHWADDR: Final = 0x8927
_RECEIVED: Final = re.compile(r"received/dropped on interface .*?: (\d+)/(\d+)")
# dumpcap's words when libpcap says "The interface disappeared" (capture_loop in dumpcap.c).
_DETACHED: Final = "is no longer attached"


def dumpcap_path() -> str:
    found = shutil.which("dumpcap")
    if found is None:
        raise CaptureError("the tshark backend needs dumpcap (Wireshark's capture tool), "
                           "which is not installed: apt-get install tshark")
    return found


def check_interface(iface: str) -> int | None:
    """Raise unless *iface* exists; return its pcap link type when we know it."""
    if iface == "any" or iface.isdigit():
        return None  # dumpcap's own names: the "any" device, an interface number
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise no_such_interface(iface) from None
    from capdissect.sources.live.ring import LINKTYPES, hardware_type

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            return LINKTYPES.get(hardware_type(probe, iface))
    except OSError:
        return None


class _Pipe:
    """dumpcap's stdout as a stream for ``CaptureFile``: ``read`` returns what is there.

    *head* (the file header, read while waiting for dumpcap to start) comes first.  A
    read waits in short slices, calling *on_idle* before the first wait, and returns
    ``b""`` (the end) once *stopped* says so or the deadline passes, or when dumpcap
    closed the pipe; only the last sets ``ended``.
    """

    def __init__(self, fd: int, head: bytes, stopped: Callable[[], bool],
                 deadline: float | None, on_idle: Callable[[], None] | None) -> None:
        self._fd = fd
        self._head = head
        self._stopped = stopped
        self._deadline = deadline
        self._on_idle = on_idle
        self.ended = False

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            size = len(self._head) if size < 0 else size
            piece, self._head = self._head[:size], self._head[size:]
            return piece
        if not _readable(self._fd, 0.0):
            if self._on_idle is not None:
                self._on_idle()
            # Bounded by the deadline or stop(); each slice is WAIT_S.
            while not _readable(self._fd, WAIT_S):
                if self._stopped() or (self._deadline is not None
                                       and time.monotonic() >= self._deadline):
                    return b""
        if self._stopped():
            return b""
        data = os.read(self._fd, size if size > 0 else 1 << 20)
        self.ended = not data
        return data

    def close(self) -> None:
        """The process owns the descriptor; DumpcapPipe.close closes it."""


def _readable(fd: int, timeout: float) -> bool:
    ready, _w, _x = select.select([fd], [], [], timeout)
    return bool(ready)


class DumpcapPipe:
    """A capture by dumpcap on *iface*, read as it is written."""

    def __init__(
        self,
        iface: str,
        expression: str | None = None,
        *,
        buffer_kib: int = 32 * 1024,
        duration: float | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.iface = iface
        self.snaplen = SNAPLEN
        self._stopped = False
        self._captured = 0
        self._closed = False
        self._stats: CaptureStats | None = None
        self._stderr: str | None = None  # dumpcap's stderr, read once it has ended
        tool = dumpcap_path()
        linktype = check_interface(iface)
        if expression and linktype is not None:
            compile_live_expression(expression, linktype, SNAPLEN)  # libpcap's own message
        command = [tool, "-i", iface, "-s", str(SNAPLEN), "-B", str(max(buffer_kib // 1024, 1)),
                   "-P", "-q", "-w", "-"]
        if expression:
            command[3:3] = ["-f", expression]
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop dumpcap in
        # order, after the packets it already wrote.
        self._proc: subprocess.Popen[bytes] = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=0, start_new_session=True)
        try:
            head = self._wait_for_header()
        except BaseException:
            self.close()
            raise
        self._deadline = None if duration is None else time.monotonic() + duration
        assert self._proc.stdout is not None
        self._pipe = _Pipe(self._proc.stdout.fileno(), head, lambda: self._stopped,
                           self._deadline, on_idle)
        self._file = CaptureFile(cast(BinaryIO, self._pipe), f"dumpcap on {iface}",
                                 owned=False)
        self.linktype = self._file.linktype

    def _wait_for_header(self) -> bytes:
        proc = self._proc
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        head = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        # Each turn reads at least one byte or ends the wait; bounded by the deadline.
        while len(head) < PCAP_HEADER_LEN:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CaptureError(f"dumpcap did not start capturing on {self.iface} "
                                   f"within {START_TIMEOUT_S:.0f} s")
            if not _readable(fd, min(left, WAIT_S)):
                continue
            chunk = os.read(fd, PCAP_HEADER_LEN - len(head))
            if not chunk:
                raise self._start_error()
            head += chunk
        magic = struct.unpack_from("<I", head)[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1):
            raise CaptureError(f"dumpcap wrote something that is not a pcap stream "
                               f"({head[:4].hex()})")
        return head

    def _start_error(self) -> CaptureError:
        """dumpcap ended before capturing: its stderr says why."""
        try:
            _out, err = self._proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _out, err = self._proc.communicate()
        text = err.decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        said = next((line.removeprefix("dumpcap: ") for line in lines
                     if line.startswith("dumpcap: ")), " ".join(lines[-2:]))
        lowered = text.lower()
        if "permission" in lowered or "not permitted" in lowered:
            return privilege_error(self.iface, "tshark")
        if "no device named" in lowered or "no such device" in lowered:
            return no_such_interface(self.iface)
        reason = re.search(r"valid capture filter \((.*)\)", text)
        if reason:
            return CaptureError(reason.group(1))
        return CaptureError(f"dumpcap cannot capture on {self.iface}: {said or 'no reason given'}"
                            f" (exit status {self._proc.returncode})")

    def __iter__(self) -> Iterator[RawPacket]:
        try:
            for pkt in self._file:
                self._captured += 1
                yield pkt
                if self._stopped:
                    return
        except TruncatedFile:
            # Stopped while dumpcap was writing a packet: that one was never shown.  A
            # dumpcap that died in the middle of a packet is reported below.
            if not (self._pipe.ended or self._stopped or self._timed_out()):
                raise
        if self._pipe.ended and not self._stopped:
            raise self._died()

    def _timed_out(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _died(self) -> CaptureError:
        """dumpcap ended on its own in the middle of the capture: say why."""
        text = self._reap()
        if _DETACHED in text:
            return interface_gone(self.iface, self._captured)
        said = [line.removeprefix("dumpcap: ") for line in text.splitlines()
                if line.startswith("dumpcap: ")]
        why = said[-1] if said else f"exit status {self._proc.returncode}"
        return capture_failed(self.iface, f"dumpcap stopped capturing: {why}", self._captured)

    def _reap(self) -> str:
        """Wait for dumpcap to end (bounded; killed after STOP_TIMEOUT_S) and return its
        stderr, read once and kept for ``close``."""
        if self._stderr is None:
            try:
                _out, err = self._proc.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                _out, err = self._proc.communicate()
            self._stderr = err.decode("utf-8", "replace")
        return self._stderr

    def stop(self) -> None:
        """End the iteration within 50 ms (safe in a signal handler: only a flag)."""
        self._stopped = True

    def stats(self) -> CaptureStats:
        return self._stats or CaptureStats(self._captured, -1, -1)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # dumpcap stops cleanly and reports its counts
        found = _RECEIVED.search(self._reap())
        if found:
            self._stats = CaptureStats(self._captured, int(found.group(1)), int(found.group(2)))
        _close(proc.stdout)
        _close(proc.stderr)


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        stream.close()
