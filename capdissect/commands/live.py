"""``live``: capture on an interface, print each packet as ``read`` would, as it arrives.

The IO edge of live capture, shared by the CLI and the Python API (``capdissect.capture``):

- ``LiveRun`` joins a ``LiveSource`` (sources/live/__init__.py: the scapy or the tshark backend)
  to ``reader.packet_lines``, the per-packet loop of ``read`` (filter → tcpdump's text
  → annotations), with ``-w`` in between: each packet is written to the file *before*
  it is printed, so the file holds exactly the packets shown, whatever stops the run.
- The tracker behind the annotations also collects the flows it retires, so that the
  end of a run prints the per-connection summary that ``flows`` prints for a file.

The kernel (or dumpcap) filters; nothing is filtered again here.

**Faults end the run in order.**  Whatever stops a run (``-c``, a signal, the interface
deleted, ``-w`` meeting a full disk, stdout closed by ``| head``), the capture is closed
(dumpcap stopped and reaped) and the file closed holding whole records only.  A capture
error is one CaptureError and an output error one OutputError, each printed by the CLI as
one line; a closed stdout is a BrokenPipeError, on which the CLI leaves quietly, as
tcpdump does.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final, TextIO

from capdissect.commands.read import ReadOptions, packet_lines
from capdissect.dissect.link import LINK_NAMES
from capdissect.dissect.stack import Packet
from capdissect.errors import CapdissectError, CaptureError, OutputError
from capdissect.packets import RawPacket
from capdissect.report.annotate import Annotator
from capdissect.report.tables import flows as flows_report
from capdissect.report.tcpdump.names import Names
from capdissect.sources.live import DEFAULT_BUFFER_KIB, Backend, LiveSource, open_live
from capdissect.sources.live.selection import Proto, build_expression
from capdissect.sources.strace import Tracer
from capdissect.sources.writer import PacketWriter
from capdissect.tracking.stream import Finished
from capdissect.tracking.tracker import Flow, Observation, Tracker, UdpUpdate

# The summary keeps at most this many finished flows (the newest); a capture left
# running for hours must not grow without bound.  Those left out are counted.
MAX_SUMMARY_FLOWS: Final = 10_000
# Piped output is written in batches, but never later than this after a packet came.
FLUSH_INTERVAL_S: Final = 0.05
_STREAM_NAMES: Final = {"<stdout>": "standard output", "<stderr>": "standard error"}


@dataclass(frozen=True)
class LiveSelection:
    """What to capture: ``--port``, ``--host``, ``--proto`` and the EXPRESSION, on an interface."""

    iface: str = "lo"
    ports: Sequence[int] = ()
    host: str | None = None
    proto: Proto = "all"
    expression: str | None = None

    def filter(self) -> str | None:
        return build_expression(self.ports, self.host, self.proto, self.expression)


class FlowRecorder(Tracker):
    """The tracker of a live run: also keeps what the flows table needs at the end.

    The annotator drains the tracker after every packet; the flows drained here are
    kept (up to MAX_SUMMARY_FLOWS) instead of forgotten, with each UDP conversation's
    payload bytes per direction, which ``tracking.stream.finished`` counts for files.
    """

    def __init__(self) -> None:
        super().__init__(keep_events=False)
        self.finished: deque[Finished] = deque(maxlen=MAX_SUMMARY_FLOWS)
        self.left_out = 0
        self._udp_bytes: dict[int, list[int]] = {}

    def feed(self, frame: int, pkt: Packet) -> Observation | None:
        seen = super().feed(frame, pkt)
        if isinstance(seen, UdpUpdate):
            sent = self._udp_bytes.setdefault(seen.conversation.id, [0, 0])
            sent[seen.datagram.sender == "b"] += seen.datagram.length
        return seen

    def drain(self) -> list[Flow]:
        flows = super().drain()
        self._keep(flows)
        return flows

    def _keep(self, flows: list[Flow]) -> None:
        for flow in flows:
            a_to_b, b_to_a = self._udp_bytes.pop(flow.id, (0, 0))
            if len(self.finished) == self.finished.maxlen:
                self.left_out += 1
            self.finished.append(Finished(flow, (), (a_to_b, b_to_a)))

    def summary(self) -> list[Finished]:
        """Every flow, the open ones retired now, in id order."""
        self._keep(super().close())
        return sorted(self.finished, key=lambda item: item.flow.id)


class LiveRun:
    """One live capture printed like ``read``: ``lines()`` while it runs, then ``summary_lines()``.

    *source* is an open capture; *writer* (``-w``) receives each packet before it is shown.
    *paint* (colour for a terminal) goes over the annotated texts and the summary, never
    over ``--plain``'s; *wide* gives the summary every column of ``flows --wide``.
    """

    def __init__(self, source: LiveSource, options: ReadOptions,
                 writer: PacketWriter | None = None, *,
                 paint: Callable[[str], str] | None = None, wide: bool = False) -> None:
        self.source = source
        self.options = options
        self.writer = writer
        self.paint = None if options.plain else paint
        self.wide = wide
        self.recorder = FlowRecorder()
        self.shown = 0
        annotator = Annotator(self.recorder, checksums=options.checksum_level,
                              names=Names(numeric=options.n > 0))
        self._annotate: Callable[[int, Packet], list[str]] = (
            self._track_only if options.plain else annotator.annotate)

    def _track_only(self, frame: int, pkt: Packet) -> list[str]:
        # --plain prints no annotation, but the summary still needs the tracker.
        self.recorder.feed(frame, pkt)
        self.recorder.drain()
        return []

    def _tee(self, packets: Iterable[RawPacket]) -> Iterator[RawPacket]:
        write = self.writer.write if self.writer is not None else None
        for pkt in packets:
            if write is not None:
                write(pkt)
            self.shown += 1
            yield pkt

    def lines(self) -> Iterator[str]:
        """The text of each packet as it arrives, until the source ends or ``-c`` is met."""
        texts = packet_lines(self._tee(self.source), self.options, annotate=self._annotate)
        return texts if self.paint is None else map(self.paint, texts)

    def summary_lines(self) -> Iterator[str]:
        """The flows table of everything captured (``capdissect flows`` on the capture)."""
        flows = self.recorder.summary()
        if self.recorder.left_out:
            yield (f"(the first {self.recorder.left_out} finished flows are left out: the "
                   f"summary keeps the last {MAX_SUMMARY_FLOWS})")
        table = flows_report.table_lines(flows, wide=self.wide)
        yield from table if self.paint is None else map(self.paint, table)

    def stats_lines(self) -> list[str]:
        """tcpdump's closing figures, for stderr."""
        stats = self.source.stats()
        lines = [f"{self.shown} packet{'s' if self.shown != 1 else ''} captured"]
        if stats.received >= 0:
            lines.append(f"{stats.received} packet{'s' if stats.received != 1 else ''} "
                         "received by filter")
        if stats.dropped >= 0:
            lines.append(f"{stats.dropped} packet{'s' if stats.dropped != 1 else ''} "
                         "dropped by kernel")
        return lines


def listening_line(source: LiveSource) -> str:
    """tcpdump's line once the capture is open (the tests wait for it)."""
    name, desc = LINK_NAMES.get(source.linktype, (str(source.linktype), "unknown"))
    return (f"listening on {source.iface}, link-type {name} ({desc}), snapshot length "
            f"{source.snaplen} bytes")


class Flusher:
    """When to flush stdout: after every packet on a terminal; in batches into a pipe or
    file, but at the latest FLUSH_INTERVAL_S after a packet, and whenever the capture
    waits for the next one (``idle``).

    ``idle`` runs inside the capture source, which must not see an output error: the
    tshark backend's stream reader would report it as a capture error.  So it keeps the
    error, calls *on_error* (which stops the capture) and ``check`` raises it once the
    packet loop is out of the source.
    """

    def __init__(self, stream: TextIO, interactive: bool,
                 on_error: Callable[[], None] | None = None) -> None:
        self.stream = stream
        self.interactive = interactive
        self.on_error = on_error
        self.error: OSError | None = None
        self._last = time.monotonic()

    def packet(self) -> None:
        now = time.monotonic()
        if self.interactive or now - self._last >= FLUSH_INTERVAL_S:
            self.stream.flush()
            self._last = now

    def idle(self) -> None:
        if self.error is not None:
            return
        try:
            self.stream.flush()
        except OSError as exc:
            self.error = exc
            if self.on_error is not None:
                self.on_error()
        self._last = time.monotonic()

    def check(self) -> None:
        """Raise the error a flush in ``idle`` met, if any."""
        if self.error is not None:
            raise self.error


def start(selection: LiveSelection, *, backend: Backend = "scapy", duration: float | None = None,
          buffer_kib: int = DEFAULT_BUFFER_KIB,
          on_idle: Callable[[], None] | None = None) -> LiveSource:
    """Open the capture *selection* describes (raises CaptureError before capturing)."""
    return open_live(selection.iface, selection.filter(), backend=backend,
                     buffer_kib=buffer_kib, duration=duration, on_idle=on_idle)


def open_writer(path: str | Path | None, source: LiveSource) -> PacketWriter | None:
    if path is None:
        return None
    return PacketWriter(path, source.linktype, source.snaplen, iface=source.iface)


def run(
    selection: LiveSelection,
    options: ReadOptions,
    out: TextIO,
    err: TextIO,
    *,
    backend: Backend = "scapy",
    duration: float | None = None,
    write: str | Path | None = None,
    buffer_kib: int = DEFAULT_BUFFER_KIB,
    interactive: bool = False,
    paint: Callable[[str], str] | None = None,
    wide: bool = False,
) -> None:
    """``capdissect live``: capture, print each packet, then the summary; until ``-c``,
    ``--duration``, Ctrl-C or SIGTERM.

    Packets and annotations go to *out*; the "listening on" line and tcpdump's closing
    counts go to *err*, and so does the summary with ``--plain`` (whose *out* stays
    exactly tcpdump's).  Raises CaptureError before anything is captured when the
    capture cannot start, and when it cannot go on (the interface gone, ``-w`` or *out*
    failing), after closing the capture and the file; BrokenPipeError when *out* is a
    pipe its reader closed.
    """
    stopper = _Stopper()
    flusher = Flusher(out, interactive, on_error=stopper.stop)
    with broken_pipe_as_error():
        # The handlers are in place before the capture starts: a signal at any moment
        # ends the run in order, and dumpcap (the tshark backend) is never left behind.
        with stop_on_signals(stopper.stop):
            source = start(selection, backend=backend, duration=duration,
                           buffer_kib=buffer_kib, on_idle=flusher.idle)
            try:
                stopper.attach(source)
                writer = open_writer(write, source)
            except BaseException:
                source.close()
                raise
            run = LiveRun(source, options, writer, paint=paint, wide=wide)
            err.write(listening_line(source) + "\n")
            err.flush()
            print_packets(run, out, flusher)
        print_summary(run, err if options.plain else out)
    err.write("".join(line + "\n" for line in run.stats_lines()))
    err.flush()


def print_packets(run: LiveRun, out: TextIO, flusher: Flusher) -> None:
    """Print each packet as it comes until the capture ends; then close the capture and
    the file, whatever ended it (``-c``, a stop, a capture, file or output error)."""
    try:
        try:
            for text in run.lines():
                out.write(text)
                out.write("\n")
                flusher.packet()
            flusher.check()
            out.flush()
        except OSError as exc:  # the sources and the writer raise only CapdissectError
            raise output_failed(exc, out) from None
    finally:
        run.source.close()
        if run.writer is not None:
            run.writer.close()


def print_summary(run: LiveRun, stream: TextIO) -> None:
    """The flows table after a blank line (``--plain`` prints it on stderr)."""
    try:
        stream.write("\n")
        for line in run.summary_lines():
            stream.write(line + "\n")
        stream.flush()
    except OSError as exc:
        raise output_failed(exc, stream) from None


class _Stopper:
    """Stops the source once there is one; a stop asked for before that is kept."""

    def __init__(self) -> None:
        self.asked = False
        self._source: LiveSource | None = None

    def attach(self, source: LiveSource) -> None:
        self._source = source
        if self.asked:
            source.stop()

    def stop(self) -> None:
        self.asked = True
        if self._source is not None:
            self._source.stop()


@contextlib.contextmanager
def broken_pipe_as_error() -> Iterator[None]:
    """While the run lasts, a closed stdout (``capdissect live | head -1``) is an error
    that ends it in order, not a signal that ends the process where it stands.

    The CLI restores SIGPIPE's default action, which kills the process at the write that
    meets the closed pipe: quiet, but the capture is never closed, and dumpcap (in its
    own session) runs on until its next packet.  Ignored, SIGPIPE becomes
    BrokenPipeError at that write, which unwinds the run (capture stopped, file closed);
    the CLI then exits quietly.  dumpcap still starts with the default action
    (``Popen``'s ``restore_signals``).  Only the main thread can set handlers; elsewhere
    (the Python API's thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGPIPE, previous)


def output_failed(exc: OSError, stream: TextIO) -> OSError | OutputError:
    """What to raise when writing *stream* failed with *exc*.

    A closed pipe stays a BrokenPipeError (the CLI leaves quietly).  Anything else
    (stdout redirected to a full disk) is an OutputError, one line; the text still
    buffered for *stream* cannot be written either, so its descriptor is pointed at
    /dev/null first, and the flushes to come (the CLI's, the interpreter's at exit) drop
    that text instead of failing again with a traceback.
    """
    if exc.errno == errno.EPIPE:
        return exc
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    name = _STREAM_NAMES.get(getattr(stream, "name", ""), "output")
    return OutputError.from_os(name, exc)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM end the capture in order (the packet in hand is finished, the
    file stays whole, the summary is printed); a second one interrupts at once.

    Only the main thread can set handlers; elsewhere (the Python API's thread) this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    asked = [False]

    def handler(signum: int, _frame: FrameType | None) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


MAX_PACKETS: Final = 100_000  # a capture() keeps at most this many packets, then stops
JOIN_TIMEOUT_S: Final = 5.0
# After the with-block, wait this long without a new packet before stopping, so the
# last segments (already sent, not yet handed over by the kernel or dumpcap) are kept.
SETTLE_S: Final = {"scapy": 0.25, "tshark": 0.6}
MAX_SETTLE_S: Final = 3.0


class BackgroundCapture:
    """A live capture in a background thread, its packets kept in memory (at most
    *max_packets*), with strace beside it for *trace*: what ``capdissect.capture()``
    and ``capdissect trace`` run.  ``count`` and ``running`` tell a report made from
    ``raw`` whether it may be stale."""

    def __init__(
        self,
        port: int | Sequence[int] | None = None,
        iface: str = "lo",
        *,
        host: str | None = None,
        proto: Proto = "all",
        expression: str | None = None,
        backend: Backend = "scapy",
        count: int | None = None,
        duration: float | None = None,
        write: str | Path | None = None,
        max_packets: int = MAX_PACKETS,
        buffer_kib: int = DEFAULT_BUFFER_KIB,
        trace: bool | Sequence[int] = False,
    ) -> None:
        ports = () if port is None else (port,) if isinstance(port, int) else tuple(port)
        self.selection = LiveSelection(iface, ports, host, proto, expression)
        self.backend: Backend = backend
        self.limit = min(count, max_packets) if count is not None else max_packets
        self.duration = duration
        self.write = write
        self.buffer_kib = buffer_kib
        self._raw: list[RawPacket] = []
        self._source: LiveSource | None = None
        self._writer: PacketWriter | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last_packet = 0.0
        # trace=True: this process (the IPython session); a list: those processes.
        self.trace_pids: tuple[int, ...] = (
            (os.getpid(),) if trace is True else () if trace is False else tuple(trace))
        self._tracer: Tracer | None = None
        self._tracedir: tempfile.TemporaryDirectory[str] | None = None
        self.strace_log: list[str] = []

    # ----- running ----------------------------------------------------------------------
    def start(self) -> BackgroundCapture:
        """Start capturing; packets are caught from the moment this returns."""
        if self._source is not None:
            raise CaptureError("this capture is already running")
        source = start(self.selection, backend=self.backend, duration=self.duration,
                       buffer_kib=self.buffer_kib)
        try:
            self._writer = (PacketWriter(self.write, source.linktype, source.snaplen,
                                         iface=source.iface) if self.write else None)
        except BaseException:
            source.close()
            raise
        self._source = source
        self._last_packet = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="capdissect-capture",
                                        daemon=True)
        self._thread.start()
        if self.trace_pids:
            self._tracedir = tempfile.TemporaryDirectory(prefix="capdissect-trace-")
            tracer = Tracer(Path(self._tracedir.name) / "calls.strace", pids=self.trace_pids)
            try:
                self._tracer = tracer.start()
            except BaseException:
                self.stop(settle=0.0)
                raise
        return self

    def _run(self) -> None:
        source = self._source
        assert source is not None
        try:
            for pkt in source:  # bounded: the limit, the duration or stop()
                if self._writer is not None:
                    self._writer.write(pkt)
                self._raw.append(pkt)
                self._last_packet = time.monotonic()
                if len(self._raw) >= self.limit:
                    return
        except BaseException as exc:  # handed to the thread that calls stop()
            self._error = exc

    def stop(self, settle: float | None = None) -> BackgroundCapture:
        """Stop capturing, after *settle* seconds without a new packet (at most 3 s), so
        that segments still on their way to the capture are kept."""
        source, thread = self._source, self._thread
        if source is None or thread is None:
            return self
        self.settle(settle)
        self._stop_tracer()
        source.stop()
        thread.join(JOIN_TIMEOUT_S)
        source.close()
        if self._writer is not None:
            self._writer.close()
        self._source = None
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self

    def settle(self, settle: float | None = None) -> None:
        """Wait until *settle* seconds pass without a new packet (at most 3 s)."""
        thread = self._thread
        quiet = SETTLE_S[self.backend] if settle is None else settle
        asked = time.monotonic()
        # Quiet counts from the later of this call and the last packet: what was sent
        # just before may still wait in a ring block the kernel has not handed over.
        # Each turn sleeps a little; bounded by MAX_SETTLE_S.
        while (thread is not None and thread.is_alive()
               and time.monotonic() < asked + MAX_SETTLE_S):
            waited = time.monotonic() - max(self._last_packet, asked)
            if waited >= quiet:
                break
            time.sleep(min(quiet - waited, 0.05))

    def _stop_tracer(self) -> None:
        """Detach strace (the traced processes go on) and keep its log."""
        if self._tracer is not None:
            self._tracer.stop()
            self.strace_log = self._tracer.log_lines()
            self._tracer = None
        if self._tracedir is not None:
            self._tracedir.cleanup()
            self._tracedir = None

    def wait(self, packets: int, timeout: float = 10.0) -> bool:
        """Wait until *packets* have been captured (or *timeout* seconds); True if they were."""
        deadline = time.monotonic() + timeout
        while len(self._raw) < packets and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self._raw) >= packets

    def __enter__(self) -> BackgroundCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        # The block's own exception matters more than a capture error found now.
        with contextlib.suppress(CapdissectError):
            self.stop(settle=0.0)

    @property
    def raw(self) -> list[RawPacket]:
        """The packets as captured (bytes and kernel timestamps)."""
        return list(self._raw)

    @property
    def count(self) -> int:
        return len(self._raw)

    @property
    def running(self) -> bool:
        return self._source is not None
