"""The Python API (SPEC §3.9), for scripts, IPython and Jupyter: ``read``, ``track``, ``capture``.

```python
import capdissect

with capdissect.capture(port=30002) as cap:   # captures in a background thread
    run_the_lesson()                           # ...while this thread drives the sockets
cap                # a short summary; cap.packets prints as tcpdump prints them, annotated
cap.timeline()     # ladder diagrams per connection (SVG in Jupyter)
cap.sockets()      # netstat -tanu after each change ("so far" while it runs)
cap.flows()        # a row per connection

with capdissect.capture(port=30002, trace=[pid_a, pid_b]) as cap:   # strace on two
    ...                                        # IPython sessions (trace=True: this one)
cap.syscalls()     # the packets with each socket call under the one it returned after

cap = capdissect.read("captures/tcp-basic.pcap")   # a Capture: nothing read yet
for pkt in cap: ...        # decoded packets, streaming, as read() always yielded them
len(cap), cap[3], cap[:5]  # counted lazily; a packet with its annotations, in context
cap.filter("tcp port 30002").flows()
cap.connections[0]         # a connection: one line, or its ladder and path in Jupyter
cap.timeline(1), cap.sockets(at="0.1"), cap.handout("lesson.html")
```

Everything shows itself as text (``repr()``, and IPython's ``_repr_pretty_``, print it
as the CLI would) and renders as HTML in a notebook (``_repr_html_``): the handout's SVG
ladders for connections, tables for flows, every decoded field for a packet.  Every
string that came from a capture, or from formatting one, is escaped
(``report/display.py``), so a capture cannot inject markup or script.  The objects keep
the types a script needs: addresses are ``ipaddress`` objects, states ``TcpState``,
times floats (and ``datetime`` where it says so).

A ``Capture`` of a file streams: each report reads the file again, and nothing is kept
but the packet count.  ``track`` and ``capture`` keep their packets in memory (that is
what lets the reports be asked for again and again); they are for lesson-sized captures.
"""

from __future__ import annotations

import datetime as dt
import html
import ipaddress
import itertools
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, overload

from capdissect.commands import reports as analyze
from capdissect.commands.live import MAX_PACKETS, BackgroundCapture
from capdissect.commands.read import ReadOptions, local_ifname, packet_lines, traced_lines
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import CapdissectError, CaptureError, NoSuchFlow
from capdissect.packets import RawPacket
from capdissect.report import display
from capdissect.report.annotate import Annotator
from capdissect.report.json.packet import packet_json
from capdissect.report.tables import flows as flows_report
from capdissect.report.tables import sockets as sockets_report
from capdissect.report.tcpdump.names import Names
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.report.timeline import ladder as timeline_report
from capdissect.sources.files import CaptureFile, open_capture
from capdissect.sources.filter import PacketFilter
from capdissect.sources.live import DEFAULT_BUFFER_KIB, Backend
from capdissect.sources.live.selection import Proto
from capdissect.tracking.states import TcpState
from capdissect.tracking.stream import (
    End,
    Finished,
    Step,
    Totals,
    Truncation,
    end_notes,
    finished,
)
from capdissect.tracking.stream import track as track_steps
from capdissect.tracking.syscalls import Joined
from capdissect.tracking.tcp import TcpConnection
from capdissect.tracking.tracker import Tracker

_svg_ids = itertools.count(1)  # SVG element ids must be unique in a notebook page
SMALL_PACKETS: Final = 200  # a capture this small shows its ladders too, not only flows
SMALL_FLOWS: Final = 8


class Report:
    """A block of text that prints as itself and renders as ``<pre>`` in a notebook."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.text = "\n".join(line.rstrip("\n") for line in lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def _repr_html_(self) -> str:
        return display.pre_html(self.text)


class Timeline(Report):
    """Ladder diagrams: text (``capdissect timeline``), and in a notebook the SVG ladders
    with their state boxes, and each endpoint's path."""

    def __init__(self, lines: Iterable[str], flows: Sequence[Connection]) -> None:
        super().__init__(lines)
        self.connections = list(flows)

    def _repr_html_(self) -> str:
        return "".join(conn._repr_html_() for conn in self.connections) or super()._repr_html_()


class Connection:
    """A TCP connection or UDP conversation, finished: one line of text, and in a
    notebook its ladder (SVG, with state boxes) and each endpoint's path.  The tracker's
    record is ``flow``; its fields (``open``, ``close``, ``client.state``...) read
    through."""

    def __init__(self, item: Finished, first_ts: float) -> None:
        self.record = item
        self.flow = item.flow
        self.first_ts = first_ts

    @property
    def id(self) -> int:
        return self.flow.id

    @property
    def proto(self) -> str:
        return "tcp" if isinstance(self.flow, TcpConnection) else "udp"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.flow, name)  # the record's fields: open, close, client.state...

    @property
    def client_address(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
        """(address, port) of the client (UDP: the first sender)."""
        return self._endpoint(0)

    @property
    def server_address(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
        return self._endpoint(1)

    def _endpoint(self, which: int) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                             int]:
        flow = self.flow
        if isinstance(flow, TcpConnection):
            ep = (flow.client, flow.server)[which]
            return ipaddress.ip_address(ep.addr), ep.port
        addr, port = (flow.a, flow.b)[which]
        return ipaddress.ip_address(addr), port

    @property
    def final(self) -> tuple[TcpState | None, TcpState | None]:
        """The client's and the server's last state (None for UDP)."""
        flow = self.flow
        if isinstance(flow, TcpConnection):
            return flow.client.state, flow.server.state
        return None, None

    @property
    def path(self) -> tuple[list[TcpState], list[TcpState]]:
        """The states the client and the server went through (empty for UDP)."""
        flow = self.flow
        if isinstance(flow, TcpConnection):
            return list(flow.client.path), list(flow.server.path)
        return [], []

    @property
    def start(self) -> dt.datetime:
        """When its first packet was captured (local time)."""
        return dt.datetime.fromtimestamp(self.flow.first_ts).astimezone()

    @property
    def duration(self) -> float:
        return max(self.flow.last_ts - self.flow.first_ts, 0.0)

    def __repr__(self) -> str:
        return "\n".join([display.flow_summary(self.record), *display.path_lines(self.record)])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return display.flow_html(self.record, self.first_ts, ids=f"c{next(_svg_ids)}-")


class PacketView:
    """One packet of a capture, with its place in it: ``line`` (tcpdump's text) and
    ``notes`` (the annotations ``read`` prints under it).  Everything else is the
    decoded ``Packet``'s (``.raw``, ``.ip``, ``.transport``, ``.payload``...)."""

    def __init__(self, frame: int, packet: Packet, line: str, notes: Sequence[str]) -> None:
        self.frame = frame
        self.packet = packet
        self.line = line
        self.notes = list(notes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.packet, name)

    @property
    def time(self) -> float:
        """The capture timestamp, seconds since the epoch."""
        return self.packet.raw.ts

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.packet.raw.ts).astimezone()

    @property
    def src(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The (innermost) IP source address; None for a packet without IP."""
        return self._address(0)

    @property
    def dst(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        return self._address(1)

    def _address(self, which: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        ip = self.packet.ip
        return None if ip is None else ipaddress.ip_address((ip.src, ip.dst)[which])

    def __repr__(self) -> str:
        return display.packet_text(self.line, self.notes)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return display.packet_html(self.line, self.notes, packet_json(self.frame, self.packet))


class Packets(list[PacketView]):
    """Packets of a capture (a slice), shown as ``capdissect read`` shows them."""

    def __repr__(self) -> str:
        return "\n".join(map(repr, self)) if self else "no packets"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        return display.pre_html(repr(self))


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

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return display.pre_html(str(self))


class _Reports:
    """The reports of anything that can replay its packets to a tracker (``_steps``)."""

    end_words = "the end of the capture"  # what a sockets() snapshot of the last packet says
    name = "the capture"  # how errors name it

    def _steps(self) -> Iterator[Step | End]:
        raise NotImplementedError

    def _finished(self, conn: int | None = None) -> tuple[list[Finished], Totals]:
        totals = Totals()
        done = list(finished(self._steps(), totals, events=True, only=conn))
        if conn is not None and not done:
            raise NoSuchFlow(self.name, conn, totals.flows)
        return done, totals

    @property
    def connections(self) -> list[Connection]:
        """Each TCP connection and UDP conversation, in id order (``flows`` numbering)."""
        done, totals = self._finished()
        return [Connection(item, totals.first_ts or 0.0) for item in done]

    def timeline(self, conn: int | None = None, *, mermaid: bool = False,
                 calls: Joined | None = None) -> Timeline:
        """Ladder diagrams (``capdissect timeline``); *conn* picks one flow by id; *calls*
        (a traced capture's) are marked on the callers' lifelines."""
        done, totals = self._finished(conn)
        if mermaid:
            lines = timeline_report.mermaid_lines(iter(done), calls, totals=totals)
        else:
            lines = timeline_report.text_lines(iter(done), totals, calls)
        return Timeline(lines, [Connection(item, totals.first_ts or 0.0) for item in done])

    def sockets(self, *, every: bool = True, after: int | None = None,
                at: str | None = None) -> Report:
        """netstat -tanu rebuilt (``capdissect sockets``): by default after each change,
        the way the lessons call netstat between steps; or *after* a frame, *at* a time."""
        steps = self._steps()
        if every and after is None and at is None:
            return Report(sockets_report.every_lines(steps))
        moment = None if at is None else analyze.parse_time(at)
        return Report(sockets_report.snapshot_lines(steps, at=moment, after=after,
                                                    end_words=self.end_words))

    def flows(self, *, wide: bool = False) -> Report:
        """A row per connection (``capdissect flows``; *wide*: every column)."""
        totals = Totals()
        done = finished(self._steps(), totals)
        return Report(flows_report.table_lines(done, totals, wide=wide))

    def _flows_html(self) -> str:
        totals = Totals()
        rows = [flows_report.table_row(item) for item in finished(self._steps(), totals)]
        return display.table_html(flows_report.HEADERS, rows, end_notes(totals))


def read(path: str | Path) -> Capture:
    """A capture file (pcap or pcapng, gzip too; ``-`` is stdin): iterate it for its
    decoded packets, streaming, or ask it for its reports (see ``Capture``)."""
    return Capture(path)


class Capture(_Reports):
    """A capture file, read when asked: iterable (decoded packets, streaming), ``len``
    (counted once, lazily), ``cap[i]`` and ``cap[a:b]`` (packets with their annotations),
    ``filter(expression)``, and the reports: ``flows()``, ``timeline(conn)``,
    ``sockets(at=...)``, ``connections``, ``handout(path)``.

    The file is opened at once, so that one that is not a capture (or a filter that does
    not compile) fails here, and closed again; each iteration opens it anew.  Standard
    input stays open for the one iteration it allows.
    """

    def __init__(self, path: str | Path, expression: str | None = None) -> None:
        self.path = path
        self.name = Path(str(path)).name
        self.expression = expression
        first = self._packets()
        if str(path) == "-":
            self._first: Iterator[Packet] | None = first
        else:
            self._first = None
            self._opened.close()  # the generator never started, so it cannot close it
        self._len: int | None = None

    def _packets(self) -> Generator[Packet, None, None]:
        capture = self._opened = open_capture(self.path)  # now: errors come from the call
        keep = None
        if self.expression:
            packet_filter = PacketFilter(self.expression, capture.snaplen, capture.big_endian)
            packet_filter.program(capture.linktype)
            keep = packet_filter.matches
        return self._decode(capture, keep)

    @staticmethod
    def _decode(capture: CaptureFile, keep: Callable[[RawPacket], bool] | None
                ) -> Generator[Packet, None, None]:
        with capture:
            for raw in capture:
                if keep is None or keep(raw):
                    yield decode(raw)

    def __iter__(self) -> Iterator[Packet]:
        first, self._first = self._first, None
        if first is not None:
            return first
        if str(self.path) == "-":
            raise CapdissectError("standard input can be read only once: save it to a file")
        return self._packets()

    def _steps(self) -> Iterator[Step | End]:
        return track_steps(iter(self), Tracker(keep_events=False))

    def __len__(self) -> int:
        """The packets, counted by reading the file once (then remembered).  list() asks
        for it first; standard input cannot be read twice, so it has no len (a TypeError,
        which list() takes as "unknown")."""
        if self._len is None:
            if str(self.path) == "-":
                raise TypeError("standard input has no len(): it can be read only once")
            self._len = sum(1 for _ in self)
        return self._len

    def filter(self, expression: str) -> Capture:
        """The packets a tcpdump filter expression keeps (and-ed with this one's)."""
        joined = f"({self.expression}) and ({expression})" if self.expression else expression
        return Capture(self.path, joined)

    @overload
    def __getitem__(self, index: int) -> PacketView: ...
    @overload
    def __getitem__(self, index: slice) -> Packets: ...

    def __getitem__(self, index: int | slice) -> PacketView | Packets:
        if isinstance(index, slice):
            wanted = range(*index.indices(len(self)))
            return Packets(self._views(set(wanted), max(wanted, default=-1)))
        position = index + len(self) if index < 0 else index
        views = self._views({position}, position)
        if not views:
            raise IndexError(f"{self.name} has {len(self)} packets")
        return views[0]

    def _views(self, wanted: set[int], last: int) -> list[PacketView]:
        """The packets at the 0-based positions *wanted*: every packet up to *last* goes
        through the tracker, so each has the annotations it has in ``read``."""
        printer = TcpdumpPrinter(ReadOptions().printing(), ifname=local_ifname)
        annotator = Annotator(names=printer.names)
        views = []
        for position, pkt in enumerate(self):
            notes = annotator.annotate(position + 1, pkt)
            if position in wanted:
                views.append(PacketView(position + 1, pkt, printer.format(pkt.raw), notes))
            if position >= last:
                break
        return views

    def handout(self, out: str | Path, *, title: str | None = None,
                conn: int | None = None) -> Path:
        """Write the lesson handout (``capdissect handout``): .html, .md or .pdf."""
        from capdissect.commands.handout import write_handout

        if self.expression:
            raise CapdissectError("a handout covers a whole file: write the filtered "
                                  "packets to a file first, or pick one flow with conn=N")
        return write_handout(self.path, out, title=title, conn=conn)

    def track(self) -> Tracked:
        """Every packet in memory, with the reports (for lesson-sized captures)."""
        return Tracked(self)

    def __repr__(self) -> str:
        what = f" ({self.expression})" if self.expression else ""
        count = len(self)
        head = f"capture {self.name}{what}: {count} packet{'' if count == 1 else 's'}"
        return head + "\n" + str(self.flows())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        what = f" ({self.expression})" if self.expression else ""
        count = len(self)
        parts = [f"<p><b>capture {html.escape(self.name + what)}: {count} packets</b></p>",
                 self._flows_html()]
        if count <= SMALL_PACKETS:
            conns = self.connections
            if len(conns) <= SMALL_FLOWS:
                parts += [conn._repr_html_() for conn in conns]
        return "".join(parts)


class Tracked(_Reports):
    """Connections and conversations of a set of packets, and the reports about them."""

    def __init__(self, packets: Iterable[Packet]) -> None:
        self.packets = PacketList()
        # A damaged capture (``read`` of a truncated file raises after its last whole
        # packet): keep what came before, and every report says where it was cut.
        self.truncated: Truncation | None = None
        try:
            # iter(): a Capture has a len(), which list.extend would ask for first (a
            # second pass over the file, and a damaged one would fail there).
            self.packets.extend(iter(packets))
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

    def __str__(self) -> str:
        return str(self.flows())

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return self._flows_html()


def track(packets: Iterable[Packet]) -> Tracked:
    """Follow *packets* (decoded, in capture order): connections, timelines, sockets."""
    return Tracked(packets)


class LiveCapture:
    """A live capture in a background thread; see ``capture``.  The capturing is
    ``commands/live.py``'s ``BackgroundCapture``; this adds the reports."""

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
        self._capture = BackgroundCapture(
            port, iface, host=host, proto=proto, expression=expression, backend=backend,
            count=count, duration=duration, write=write, max_packets=max_packets,
            buffer_kib=buffer_kib, trace=trace)
        self.selection = self._capture.selection
        self.trace_pids = self._capture.trace_pids
        self._cache: Tracked | None = None

    # ----- running ----------------------------------------------------------------------
    def start(self) -> LiveCapture:
        """Start capturing; packets are caught from the moment this returns."""
        self._capture.start()
        return self

    def stop(self, settle: float | None = None) -> LiveCapture:
        """Stop capturing, after *settle* seconds without a new packet (at most 3 s), so
        that segments still on their way to the capture are kept."""
        self._cache = None
        self._capture.stop(settle)
        return self

    def wait(self, packets: int, timeout: float = 10.0) -> bool:
        """Wait until *packets* have been captured (or *timeout* seconds); True if they were."""
        return self._capture.wait(packets, timeout)

    def __enter__(self) -> LiveCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._capture.__exit__(exc_type, exc, tb)

    # ----- what was captured ------------------------------------------------------------
    @property
    def raw(self) -> list[RawPacket]:
        """The packets as captured (bytes and kernel timestamps)."""
        return self._capture.raw

    @property
    def _strace_log(self) -> list[str]:
        return self._capture.strace_log

    def _settle(self) -> None:
        self._capture.settle()

    def _tracked(self) -> Tracked:
        # While the capture runs the packets change, so only a stopped one is cached;
        # a report asked for meanwhile waits for what was just sent to come in.
        if self.running:
            self._settle()
        if self._cache is not None and len(self._cache.packets) == self._capture.count:
            return self._cache
        tracked = Tracked(decode(raw) for raw in self._capture.raw)
        if not self.running:
            self._cache = tracked
        return tracked

    @property
    def packets(self) -> PacketList:
        """The decoded packets, in capture order."""
        return self._tracked().packets

    @property
    def running(self) -> bool:
        return self._capture.running

    @property
    def connections(self) -> list[Connection]:
        return self._tracked().connections

    def timeline(self, conn: int | None = None, *, mermaid: bool = False) -> Timeline:
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
        """netstat -tanu rebuilt; while the capture runs, the table is the one so far."""
        tracked = self._tracked()
        if self.running:
            tracked.end_words = "so far (the capture is still running)"
        return tracked.sockets(every=every, after=after, at=at)

    def flows(self, *, wide: bool = False) -> Report:
        return self._tracked().flows(wide=wide)

    def __str__(self) -> str:
        return str(self.packets)

    def describe(self) -> str:
        """What is captured, in words (not the BPF program, which quotes every ICMP
        error form for each port)."""
        sel = self.selection
        words = [" or ".join(f"port {p}" for p in sel.ports)] if sel.ports else []
        words += [f"host {sel.host}"] if sel.host else []
        words += [sel.proto] if sel.proto != "all" else []
        if sel.expression:
            expression = sel.expression if len(sel.expression) <= 60 else (
                sel.expression[:57] + "...")
            words.append(expression)
        return " and ".join(words) or "all packets"

    def __repr__(self) -> str:
        state = "capturing" if self.running else "stopped"
        count = self._capture.count
        head = (f"capture on {self.selection.iface} ({self.describe()}), {state}: {count} "
                f"packet{'' if count == 1 else 's'}{' so far' if self.running else ''}")
        if not count:
            return head
        return head + "\n" + str(self.flows())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        count = self._capture.count
        state = "capturing" if self.running else "stopped"
        head = (f"<p><b>capture on {html.escape(self.selection.iface)} "
                f"({html.escape(self.describe())}), {state}: {count} packets</b></p>")
        if not count:
            return head
        tracked = self._tracked()
        parts = [head, tracked._repr_html_()]
        if count <= SMALL_PACKETS:
            parts += [conn._repr_html_() for conn in tracked.connections[:SMALL_FLOWS]]
        return "".join(parts)


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
) -> LiveCapture:
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
    return LiveCapture(port, iface, host=host, proto=proto, expression=expression,
                   backend=backend, count=count, duration=duration, write=write,
                   max_packets=max_packets, trace=trace)


__all__ = [
    "CapdissectError",
    "Capture",
    "Connection",
    "LiveCapture",
    "PacketList",
    "PacketView",
    "Packets",
    "Report",
    "Timeline",
    "Tracked",
    "capture",
    "read",
    "track",
]
