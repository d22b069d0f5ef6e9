"""The Python API (SPEC §3.9), for scripts, IPython and Jupyter: ``read``, ``track``, ``capture``.

```python
import capdissect

with capdissect.capture(port=30002) as cap:   # captures in a background thread
    run_the_lesson()                           # ...while this thread drives the sockets
cap.packets        # the decoded packets; prints as tcpdump prints them, annotated
cap.timeline()     # ladder diagrams per connection
cap.sockets()      # netstat -tanu after each change
cap.flows()        # a row per connection

with capdissect.capture(port=30002, trace=[pid_a, pid_b]) as cap:   # strace on two
    ...                                        # IPython sessions (trace=True: this one)
cap.syscalls()     # the packets with each socket call under the one it returned after

for pkt in capdissect.read("captures/tcp-basic.pcap"): ...
capdissect.track(capdissect.read("captures/tcp-basic.pcap")).timeline()
```

Everything shown is text (``str()`` and ``repr()`` give the same text, so IPython prints
it as the CLI would) and renders as HTML in a notebook (``_repr_html_``): a ``<pre>``
block or a table in which every string that came from a capture, or from formatting
one, goes through ``html.escape``, so a capture cannot inject markup or script.

``track`` and ``capture`` keep their packets in memory (that is what lets the reports
be asked for again and again); they are for lesson-sized captures.  The commands stream
instead.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from capdissect import analyze
from capdissect.capture.live import DEFAULT_BUFFER_KIB, Backend, LiveSource
from capdissect.capture.livefilter import Proto
from capdissect.capture.strace import Tracer
from capdissect.capture.writer import PacketWriter
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import CapdissectError, CaptureError
from capdissect.live import LiveSelection, start
from capdissect.packets import RawPacket
from capdissect.reader import ReadOptions, packet_lines, traced_lines
from capdissect.report import flows as flows_report
from capdissect.report import sockets as sockets_report
from capdissect.report import timeline as timeline_report
from capdissect.report.annotate import Annotator
from capdissect.report.flowstream import (
    End,
    Finished,
    Step,
    Totals,
    Truncation,
    end_notes,
    finished,
)
from capdissect.report.flowstream import track as track_steps
from capdissect.report.names import Names
from capdissect.track.syscalls import Joined
from capdissect.track.tcp import TcpConnection
from capdissect.track.tracker import Tracker
from capdissect.track.udp import UdpConversation

MAX_PACKETS: Final = 100_000  # a capture() keeps at most this many packets, then stops
JOIN_TIMEOUT_S: Final = 5.0
# After the with-block, wait this long without a new packet before stopping, so the
# last segments (already sent, not yet handed over by the kernel or dumpcap) are kept.
SETTLE_S: Final = {"scapy": 0.25, "tshark": 0.6}
MAX_SETTLE_S: Final = 3.0


class Report:
    """A block of text that prints as itself and renders as ``<pre>`` in a notebook."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.text = "\n".join(line.rstrip("\n") for line in lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


class PacketList(list[Packet]):
    """Decoded packets; shown as ``capdissect read`` shows them (tcpdump's lines, annotated)."""

    def text(self, *, n: int = 0, v: int = 0, X: int = 0, plain: bool = False) -> Report:
        """tcpdump's text of these packets with ``read``'s options (``n=2`` is ``-nn``)."""
        options = ReadOptions(n=n, v=v, X=X, plain=plain)
        annotate = None if plain else Annotator(checksums=v, names=Names(numeric=n > 0)).annotate
        return Report(packet_lines((pkt.raw for pkt in self), options, annotate=annotate))

    def __str__(self) -> str:
        return self.text().text if self else "no packets"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def read(path: str | Path) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file (gzip too; ``-`` is stdin), decoded, streaming."""
    return analyze.decoded(path)


class Tracked:
    """Connections and conversations of a set of packets, and the reports about them."""

    def __init__(self, packets: Iterable[Packet]) -> None:
        self.packets = PacketList()
        # A damaged capture (``read`` of a truncated file raises after its last whole
        # packet): keep what came before, and every report says where it was cut.
        self.truncated: Truncation | None = None
        try:
            self.packets.extend(packets)
        except CaptureError as exc:
            self.truncated = Truncation(len(self.packets), exc)
        totals = Totals()
        self.flows_finished: list[Finished] = list(finished(self._steps(), totals))
        self.totals = totals

    def _steps(self) -> Iterator[Step | End]:
        """The tracker's view of the packets, ending as the capture did (cut or not)."""
        return track_steps(self._replay(), Tracker(keep_events=False))

    def _replay(self) -> Iterator[Packet]:
        yield from self.packets
        if self.truncated is not None:
            raise self.truncated.error

    @property
    def connections(self) -> list[TcpConnection | UdpConversation]:
        """Each TCP connection and UDP conversation, in id order (``flows`` numbering)."""
        return [item.flow for item in self.flows_finished]

    def timeline(self, conn: int | None = None, *, mermaid: bool = False,
                 calls: Joined | None = None) -> Report:
        """Ladder diagrams (``capdissect timeline``); *conn* picks one flow by id; *calls*
        (a traced capture's) are marked on the callers' lifelines."""
        totals = Totals()
        done = finished(self._steps(), totals, events=True, only=conn)
        if mermaid:
            return Report(timeline_report.mermaid_lines(done, calls, totals=totals))
        return Report(timeline_report.text_lines(done, totals, calls))

    def sockets(self, *, every: bool = True, after: int | None = None,
                at: str | None = None) -> Report:
        """netstat -tanu rebuilt (``capdissect sockets``): by default after each change,
        the way the lessons call netstat between steps; or *after* a frame, *at* a time."""
        steps = self._steps()
        if every and after is None and at is None:
            return Report(sockets_report.every_lines(steps))
        return Report(sockets_report.snapshot_lines(steps, at=at, after=after))

    def flows(self) -> Report:
        """A row per connection (``capdissect flows``)."""
        return Report(flows_report.table_lines(self.flows_finished, self.totals))

    def __str__(self) -> str:
        return str(self.flows())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = [flows_report.table_row(item) for item in self.flows_finished]
        head = "".join(f"<th>{html.escape(name)}</th>" for name in flows_report.HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
            for row in rows)
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in end_notes(self.totals))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def track(packets: Iterable[Packet]) -> Tracked:
    """Follow *packets* (decoded, in capture order): connections, timelines, sockets."""
    return Tracked(packets)


class Capture:
    """A live capture in a background thread; see ``capture``."""

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
        self._cache: Tracked | None = None
        # trace=True: this process (the IPython session); a list: those processes.
        self.trace_pids: tuple[int, ...] = (
            (os.getpid(),) if trace is True else () if trace is False else tuple(trace))
        self._tracer: Tracer | None = None
        self._tracedir: tempfile.TemporaryDirectory[str] | None = None
        self._strace_log: list[str] = []

    # ----- running ----------------------------------------------------------------------
    def start(self) -> Capture:
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

    def stop(self, settle: float | None = None) -> Capture:
        """Stop capturing, after *settle* seconds without a new packet (at most 3 s), so
        that segments still on their way to the capture are kept."""
        source, thread = self._source, self._thread
        if source is None or thread is None:
            return self
        quiet = SETTLE_S[self.backend] if settle is None else settle
        asked = time.monotonic()
        # Quiet counts from the later of this call and the last packet: what was sent
        # just before may still wait in a ring block the kernel has not handed over.
        # Each turn sleeps a little; bounded by MAX_SETTLE_S.
        while thread.is_alive() and time.monotonic() < asked + MAX_SETTLE_S:
            waited = time.monotonic() - max(self._last_packet, asked)
            if waited >= quiet:
                break
            time.sleep(min(quiet - waited, 0.05))
        self._stop_tracer()
        source.stop()
        thread.join(JOIN_TIMEOUT_S)
        source.close()
        if self._writer is not None:
            self._writer.close()
        self._source = None
        self._cache = None
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self

    def _stop_tracer(self) -> None:
        """Detach strace (the traced processes go on) and keep its log."""
        if self._tracer is not None:
            self._tracer.stop()
            self._strace_log = self._tracer.log_lines()
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

    def __enter__(self) -> Capture:
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

    # ----- what was captured ------------------------------------------------------------
    @property
    def raw(self) -> list[RawPacket]:
        """The packets as captured (bytes and kernel timestamps)."""
        return list(self._raw)

    def _tracked(self) -> Tracked:
        # While the capture runs the packets change, so only a stopped one is cached.
        if self._cache is not None and len(self._cache.packets) == len(self._raw):
            return self._cache
        tracked = Tracked(decode(raw) for raw in list(self._raw))
        if self._source is None:
            self._cache = tracked
        return tracked

    @property
    def packets(self) -> PacketList:
        """The decoded packets, in capture order."""
        return self._tracked().packets

    @property
    def connections(self) -> list[TcpConnection | UdpConversation]:
        return self._tracked().connections

    def timeline(self, conn: int | None = None, *, mermaid: bool = False) -> Report:
        """Ladders; a traced capture's socket calls are marked on them."""
        return self._tracked().timeline(conn, mermaid=mermaid, calls=self.joined())

    def joined(self) -> Joined | None:
        """The traced socket calls placed among the packets (None: not traced)."""
        if not self.trace_pids:
            return None
        packets = self.packets
        joined, _frames = analyze.join_calls(lambda: iter(packets), self._strace_log)
        return joined

    def syscalls(self) -> Report:
        """The packets with each socket call under the one it returned after, as
        ``capdissect trace`` prints them."""
        packets = self.packets
        joined, frames = analyze.join_calls(lambda: iter(packets), self._strace_log)
        return Report(traced_lines([pkt.raw for pkt in packets], ReadOptions(), joined,
                                   frames))

    def sockets(self, *, every: bool = True, after: int | None = None,
                at: str | None = None) -> Report:
        return self._tracked().sockets(every=every, after=after, at=at)

    def flows(self) -> Report:
        return self._tracked().flows()

    def __str__(self) -> str:
        return str(self.packets)

    def __repr__(self) -> str:
        state = "capturing" if self._source is not None else "stopped"
        what = self.selection.filter() or "all packets"
        count = len(self._raw)
        head = f"capture on {self.selection.iface} ({what}), {state}: {count} packet" + (
            "" if count == 1 else "s")
        return head + ("\n" + str(self.packets) if count else "")

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"


def capture(
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
    trace: bool | Sequence[int] = False,
) -> Capture:
    """A live capture to use as ``with capdissect.capture(port=30002) as cap: ...``.

    *port* is one port or several: ``port P`` plus the ICMP errors quoting it, as
    ``live --port``.  *host*, *proto* (``"tcp"``, ``"udp"``, ``"all"``) and *expression*
    (tcpdump's filter language) narrow it further.  *backend* is ``"scapy"`` or
    ``"tshark"``; *count*, *duration* and *max_packets* end it early; *write* also saves
    it (.pcap or .pcapng).  *trace* also records the socket calls with strace: ``True``
    for this process (the IPython session driving the lesson), or a list of pids (two
    sessions, A and B); ``cap.syscalls()`` and ``cap.timeline()`` then show them beside
    the packets.  Entering the block raises CaptureError when the capture cannot start
    (no privilege, no such interface, a bad filter, no strace or ptrace permission).
    """
    return Capture(port, iface, host=host, proto=proto, expression=expression,
                   backend=backend, count=count, duration=duration, write=write,
                   max_packets=max_packets, trace=trace)


__all__ = [
    "CapdissectError",
    "Capture",
    "PacketList",
    "Report",
    "Tracked",
    "capture",
    "read",
    "track",
]
