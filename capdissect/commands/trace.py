"""``trace``: run a program under strace (or attach to processes) while capturing, and show
each socket call beside the packets it caused (SPEC §3.10).

The IO edge of ``capdissect trace``: it starts the capture exactly as ``live`` does (the
same selection, backend and ``-w``), then strace (sources/strace.py), waits for the
program to end (or for Ctrl-C, SIGTERM, ``--duration``; with ``--pid`` for the
processes to end), stops both, and only then prints: the calls are known once strace's
log is complete, and a call is placed by the packets around it.  What is printed:

- the packets as ``read`` prints them, annotated, with a line per call under the packet
  it returned after (and, for a call that waited while packets went by, a line where it
  started), the calls that touch no flow on their own lines, and the findings;
- the ladders with the calls marked, and the flows table;
- or, with ``--json``, ``timeline --json`` with ``syscalls`` per flow.

``-w F.pcap`` writes the capture as ``live -w`` does, and strace's log beside it as
``F.pcap.strace``: ``capdissect timeline F.pcap --calls F.pcap.strace`` shows them again.
However the program ends (not found, non-zero status, killed) or the processes vanish,
what was captured and traced is printed and the ending is one line, returned to the CLI.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from capdissect.commands import reports as analyze
from capdissect.commands.live import (
    BackgroundCapture,
    LiveSelection,
    output_failed,
    stop_on_signals,
)
from capdissect.commands.read import ReadOptions, traced_lines
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import TraceError
from capdissect.packets import RawPacket
from capdissect.report.tables import flows as flows_report
from capdissect.report.text import clean
from capdissect.sources.live import Backend
from capdissect.sources.strace import Tracer, log_beside
from capdissect.tracking.stream import Totals, finished, track
from capdissect.tracking.tracker import Tracker


@dataclass(frozen=True)
class Target:
    """What to trace: a command (``-- CMD ARGS``) or running processes (``--pid``)."""

    command: Sequence[str] = ()
    pids: Sequence[int] = ()


def run(selection: LiveSelection, target: Target, options: ReadOptions, out: TextIO,
        err: TextIO, *, backend: Backend = "scapy", duration: float | None = None,
        write: str | Path | None = None, json: bool = False,
        paint: Callable[[str], str] | None = None) -> str | None:
    """``capdissect trace``: capture and trace, then print; returns None, or one line
    about how the program or the tracing ended badly (the CLI prints it, exits 1).
    *paint* colours the text report (never ``--plain``'s or the JSON).

    Raises CaptureError (one line) when the capture cannot start; nothing runs then.
    """
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="capdissect-trace-") as tmp:
        log = log_beside(write) if write is not None else Path(tmp) / "calls.strace"
        capture = BackgroundCapture(selection.ports, selection.iface, host=selection.host,
                              proto=selection.proto, expression=selection.expression,
                              backend=backend, write=write)
        with stop_on_signals(stop.set):
            capture.start()
            tracer = Tracer(log, command=target.command, pids=target.pids, output=err)
            outcome = None
            try:
                tracer.start()
                err.write(clean(f"tracing {_what(target)}; capturing on {selection.iface}")
                          + "\n")
                err.flush()
                deadline = None if duration is None else time.monotonic() + duration
                while tracer.running() and not stop.is_set() and (
                        deadline is None or time.monotonic() < deadline):
                    tracer.wait(time.monotonic() + 0.1)
            except TraceError as exc:
                outcome = str(exc)
            finally:
                tracer.stop()
                capture.stop()
            outcome = outcome or tracer.outcome
            program_err = tracer.program_stderr()
            if program_err:
                err.write(program_err)
        raw = capture.raw
        lines = tracer.log_lines()
    try:
        if json or options.plain:
            paint = None
        for text in report(raw, lines, options, json=json, name=str(write or "trace")):
            out.write(text if paint is None else paint(text))
        out.flush()
    except OSError as exc:
        raise output_failed(exc, out) from None
    return None if outcome is None else clean(outcome)  # it may quote the command


def _what(target: Target) -> str:
    if target.command:
        return " ".join(target.command)
    return ", ".join(f"pid {pid}" for pid in target.pids)


def report(raw: list[RawPacket], log: list[str], options: ReadOptions, *, json: bool,
           name: str) -> Iterator[str]:
    """What ``trace`` prints for the captured *raw* packets and strace's *log*."""
    def packets() -> Iterator[Packet]:
        return (decode(pkt) for pkt in raw)

    joined, frames = analyze.join_calls(packets, log)
    if json:
        yield from analyze.timeline_of(packets, name, "json", calls=joined)
        return
    for line in traced_lines(raw, options, joined, frames):
        yield line + "\n"
    yield "\n"
    yield from analyze.timeline_of(packets, name, "text", calls=joined)
    done = list(finished(track(packets(), Tracker(keep_events=False)), Totals()))
    if done:  # else the timeline has just said there are none
        yield "\n"
        for line in flows_report.table_lines(done):
            yield line + "\n"
