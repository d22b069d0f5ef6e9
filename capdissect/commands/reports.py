"""``timeline``, ``flows`` and ``sockets`` on a capture file: open, decode, track, report.

This is the IO edge those commands share (the CLI and the Python API call it): it opens
the file, decodes each packet and feeds the tracker in one streaming pass; the reports
themselves (capdissect/report/) are pure.  Each function yields the output as text
pieces that end in newlines, ready to write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Literal

from capdissect._version import __version__
from capdissect.commands.outfiles import refuse_input
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import CapdissectError, NoSuchFlow, OutputError, SocketError
from capdissect.report.json.document import events_text, json_document
from capdissect.sources.files import CaptureFile, open_capture
from capdissect.tracking.eventlog import DRAWN_MAX
from capdissect.tracking.stream import (
    End,
    Finished,
    Step,
    Totals,
    Truncation,
    finished,
    track,
)
from capdissect.tracking.tracker import Tracker

# Each command's report, and the socket calls, are imported where they are used: a
# command's start-up is most of a small capture's time.
if TYPE_CHECKING:
    from capdissect.commands.read import ReadOptions
    from capdissect.commands.rounds import Render
    from capdissect.report.tables.sockets import TableAt
    from capdissect.tracking.sockets import Facts
    from capdissect.tracking.syscalls import Frame, Joined

SPOOL_IN_MEMORY: Final = 1 << 20  # UDP JSON (or SVG) kept in memory up to this, then a temp file

FlowsFormat = Literal["table", "csv", "json"]
TimelineFormat = Literal["text", "mermaid", "json", "svg"]



def decoded(path: str | Path) -> Iterator[Packet]:
    """Every packet of the capture at *path* (``-`` for stdin), decoded.

    The file is opened now, not at the first packet, so that a file that is not a
    capture fails before a command prints anything (no half-written JSON).
    """
    return _decode_all(open_capture(path))


def _decode_all(capture: CaptureFile) -> Iterator[Packet]:
    with capture:
        for raw in capture:
            yield decode(raw)


def steps(path: str | Path) -> Iterator[Step | End]:
    """The tracker's view of *path*, packet by packet (events are not kept: reports that
    need them log them compactly themselves)."""
    return track(decoded(path), Tracker(keep_events=False))


class _Damage:
    """Where the capture was cut short, learnt from End as the report goes by.

    A damaged file still gets its whole report (every frame before the damage, the flows
    open at it, a note saying so); only then is the reader's error raised, so the
    command prints it as one line and exits 1, as ``read`` does.
    """

    def __init__(self, packets: Iterable[Packet]) -> None:
        self.cut: Truncation | None = None
        self.steps = self._watch(track(packets, Tracker(keep_events=False)))

    def _watch(self, items: Iterator[Step | End]) -> Iterator[Step | End]:
        for step in items:
            if isinstance(step, End):
                self.cut = step.truncated
            yield step

    def after(self, pieces: Iterable[str]) -> Iterator[str]:
        yield from pieces
        self.check()

    def check(self) -> None:
        if self.cut is not None:
            raise self.cut.error


def _spool() -> IO[str]:
    import tempfile

    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+",
                                         encoding="utf-8")


def _lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        yield line + "\n"


def _finished(path: str | Path, totals: Totals, jobs: int, *, events: bool = False,
              limit: int | None = None, render: Render | None = None
              ) -> Iterator[Finished]:
    """The flows of *path* as they finish (``stream.finished``), tracked by *jobs*
    processes (commands/rounds.py, where *render* makes the text of the events) or by
    this one."""
    def one_process() -> Iterator[Finished]:
        return finished(steps(path), totals, events=events, limit=limit)

    if jobs == 1:
        return one_process()
    from capdissect.commands.rounds import sharded_flows

    with open_capture(path):  # not a capture: fail now, before any output
        pass
    return sharded_flows(path, jobs, totals, one_process, events=events, limit=limit,
                         render=render)


def _after(pieces: Iterable[str], totals: Totals) -> Iterator[str]:
    """*pieces*, then the reader's error if the capture was cut short (as
    ``_Damage.after``: the whole report first)."""
    yield from pieces
    if totals.truncated is not None:
        raise totals.truncated.error


def flows(path: str | Path, fmt: FlowsFormat = "table", *, wide: bool = False,
          jobs: int = 1) -> Iterator[str]:
    """``capdissect flows``: a row (or JSON object) per TCP connection and UDP conversation;
    *jobs* processes track the connections (the same output)."""
    totals = Totals()
    done = _finished(path, totals, jobs)
    if fmt == "json":
        return _after(json_document(done, str(path), __version__, totals, events=False,
                                    spool=_spool), totals)
    from capdissect.report.tables import flows as flows_report
    if fmt == "csv":  # CSV has no place for a note: the error line says it
        return _after(flows_report.csv_lines(done), totals)
    return _after(_lines(flows_report.table_lines(done, totals, wide=wide)), totals)


Packets = Callable[[], Iterator[Packet]]  # the packets again, from the start, each call


def timeline(path: str | Path, fmt: TimelineFormat = "text", conn: int | None = None,
             calls: str | Path | None = None, jobs: int = 1) -> Iterator[str]:
    """``capdissect timeline``: ladder diagrams (text, Mermaid, an SVG document) or SPEC §4
    JSON with events; with *calls* (the strace log ``trace -w`` keeps beside the capture)
    the socket calls too.  *jobs* processes track the connections (the same output); one
    does with *conn* or *calls*."""
    if calls is not None:
        if str(path) == "-":
            raise CapdissectError("--calls needs a capture file, not standard input")
        joined, _frames = join_calls(lambda: decoded(path), read_calls(calls))
        return timeline_of(lambda: decoded(path), str(path), fmt, conn, joined)
    if jobs == 1 or conn is not None:
        return timeline_of(lambda: decoded(path), str(path), fmt, conn)
    totals = Totals()
    # JSON, text and Mermaid: the workers make the text of each flow's events too, most
    # of the report's work (the parent still makes the text around it).
    done = _finished(path, totals, jobs, events=True, limit=_drawn(fmt),
                     render=_worker_text(fmt))
    return _timeline_report(done, totals, str(path), fmt, None, None)


def _worker_text(fmt: TimelineFormat) -> Render | None:
    """What a -j worker makes of each flow's events in *fmt*: JSON's events, the text
    ladder after its title, or the Mermaid diagram after its first two lines
    (``report/timeline/ladder.py``); None (SVG): the parent draws."""
    if fmt == "json":
        return _json_events
    if fmt == "svg":
        return None
    from capdissect.report.timeline import ladder

    return ladder.ladder_text if fmt == "text" else ladder.mermaid_text_after


def _json_events(item: Finished, _first_ts: float) -> Iterator[str]:
    return events_text(item)


def _drawn(fmt: TimelineFormat) -> int | None:
    """A drawing shows the first DRAWN_MAX items of each flow, so only those are logged."""
    return DRAWN_MAX if fmt == "svg" else None


def timeline_of(packets: Packets, name: str, fmt: TimelineFormat = "text",
                conn: int | None = None, calls: Joined | None = None) -> Iterator[str]:
    """``timeline`` of *packets* (named *name*), with their socket *calls* if given."""
    totals = Totals()
    done = finished(track(packets(), Tracker(keep_events=False)), totals, events=True,
                    only=conn, limit=_drawn(fmt))
    return _timeline_report(done, totals, name, fmt, conn, calls)


def _timeline_report(done: Iterator[Finished], totals: Totals, name: str,
                     fmt: TimelineFormat, conn: int | None,
                     calls: Joined | None) -> Iterator[str]:
    done = _selected(done, conn, name, totals)
    if fmt == "json":
        return _after(json_document(done, name, __version__, totals, events=True,
                                    spool=_spool, calls=calls), totals)
    if fmt == "svg":
        # The handout's drawing code, loaded only when a picture is asked for.
        from capdissect.report.timeline.svg import svg_document

        return _after(svg_document(done, name, __version__, totals, spool=_spool,
                                   calls=calls), totals)
    from capdissect.report.timeline import ladder as timeline_report
    if fmt == "mermaid":
        return _after(_lines(timeline_report.mermaid_lines(done, calls, totals=totals)),
                      totals)
    return _after(_lines(timeline_report.text_lines(done, totals, calls)), totals)


def read_calls(path: str | Path) -> list[str]:
    """The lines of an strace log (``trace -w F.pcap`` writes ``F.pcap.strace``)."""
    try:
        return Path(path).read_text("utf-8", "replace").splitlines()
    except OSError as exc:
        raise CapdissectError(f"{path}: {exc.strerror or exc}") from None


def read_with_calls(path: str | Path, options: ReadOptions,
                    calls: str | Path) -> Iterator[str]:
    """``read``'s text of *path* with the socket calls of the strace log *calls* under the
    packets they returned after (what ``trace`` prints)."""
    from capdissect.commands.read import traced_lines

    joined, frames = join_calls(lambda: decoded(path), read_calls(calls))
    with open_capture(path) as capture:
        yield from traced_lines(capture, options, joined, frames)


def join_calls(packets: Packets, log: Iterable[str]) -> tuple[Joined, list[Frame]]:
    """The socket calls of an strace *log* placed among *packets* and on their flows."""
    from capdissect.dissect.strace import parse
    from capdissect.report.tables.calls import frames_and_flows
    from capdissect.tracking.syscalls import join
    frames, flows = frames_and_flows(track(packets(), Tracker(keep_events=False)))
    return join(parse(log), flows, frames), frames


def write_timeline_svg(path: str | Path, out: str | Path, conn: int | None = None,
                       calls: str | Path | None = None, jobs: int = 1) -> Path:
    """``capdissect timeline --svg OUT``: the ladders of *path* as one SVG file, *out*.

    The document's first piece comes only once the capture has been read to its end
    (report/timeline/svg.py), so *out* is created, or an older file there replaced, only
    after the capture was read without error.
    """
    out = Path(out)
    refuse_input(out, path)
    pieces = timeline(path, "svg", conn, calls, jobs)
    first = next(pieces)
    try:
        with out.open("w", encoding="utf-8") as sink:
            sink.write(first)
            for piece in pieces:
                sink.write(piece)
    except OSError as exc:
        raise OutputError.from_os(str(out), exc) from None
    return out


def _selected(done: Iterator[Finished], conn: int | None, path: str,
              totals: Totals) -> Iterator[Finished]:
    """*done*, and with ``--conn N`` an error if N never came."""
    found = False
    for item in done:
        found = True
        yield item
    if conn is not None and not found:
        raise NoSuchFlow(str(path), conn, totals.flows)


def sockets(path: str | Path, *, at: str | None = None, after: int | None = None,
            every: bool = False, jobs: int = 1) -> Iterator[str]:
    """``capdissect sockets``: netstat's table after each change, at one moment, or at the
    end; with *jobs* processes tracking the connections (commands/rounds.py)."""
    from capdissect.report.tables import sockets as sockets_report
    moment = None if at is None else parse_time(at)  # a bad --at fails before reading

    def one_process() -> Iterator[str]:
        damage = _Damage(decoded(path))
        if every:
            return damage.after(_lines(sockets_report.every_lines(damage.steps)))
        return damage.after(_lines(sockets_report.snapshot_lines(damage.steps, at=moment,
                                                                 after=after)))

    if jobs == 1:
        return one_process()
    from capdissect.commands.rounds import sharded_sockets, snapshot_marks

    def report(stream: Iterator[Facts | End]) -> Iterator[str]:
        if every:
            return _lines(sockets_report.every_from(stream, timed=False))
        return _lines(sockets_report.snapshot_from(stream, at=moment, after=after,
                                                   timed=False))

    with open_capture(path):  # not a capture: fail now, before any output
        pass
    marks = snapshot_marks(path, after=after, at=moment)
    totals = Totals()
    return _after(sharded_sockets(path, jobs, totals, report, one_process, marks), totals)


def sockets_at(path: str | Path, times: Iterable[float]) -> list[TableAt]:
    """netstat's table at each of *times* (Unix times), as ``sockets --at`` shows it; a
    damaged capture raises its error (the tables would stop at the damage)."""
    from capdissect.report.tables import sockets as sockets_report
    damage = _Damage(decoded(path))
    tables = sockets_report.tables_at(damage.steps, times)
    damage.check()
    return tables


EPOCH_FROM: Final = 1e9  # an --at value this large is a Unix time, not an offset


def parse_time(text: str) -> tuple[float, bool]:
    """``--at``: seconds since the first packet (``0.25``), a Unix time (``1589017316.1``)
    or an ISO date and time (``2020-05-09T10:21:56.089``, local time unless it says).

    Returns (value, absolute).
    """
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise SocketError(f"--at {text!r}: not a time")
        return value, value >= EPOCH_FROM
    try:
        return dt.datetime.fromisoformat(text).timestamp(), True
    except (ValueError, OverflowError, OSError):
        raise SocketError(f"--at {text!r}: give seconds since the first packet (0.25), "
                          "a Unix time or an ISO date and time") from None
