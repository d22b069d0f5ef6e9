"""The IO edge of ``handout`` and ``annotate``: read a capture, render, write a file.

``write_handout`` picks the format from the output's suffix: ``.html``, ``.md`` or
``.pdf``.  The PDF is the HTML page printed by headless Chromium (see the README for
why Chromium and not WeasyPrint): the same engine the tests check the page with, so the
PDF shows what was tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from capdissect._version import __version__
from capdissect.commands.outfiles import refuse_input
from capdissect.commands.reports import decoded, join_calls, read_calls
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import (
    CaptureError,
    HandoutError,
    HandoutTooBig,
    NoSuchFlow,
    OutputError,
)
from capdissect.packets import RawPacket, RecordBatch
from capdissect.report.annotate import Annotator
from capdissect.report.handout.html import PAPERS, html_parts, render_html
from capdissect.report.handout.lesson import (
    MAX_PACKETS,
    Numbering,
    build_lesson,
    flow_id,
    lesson_flows,
)
from capdissect.report.handout.quiz import questions, quiz_gift, quiz_json
from capdissect.report.tables.calls import moments
from capdissect.report.text import clean
from capdissect.sources.files import open_capture
from capdissect.sources.pcapng import (
    MAX_LINKTYPE,
    Interface,
    enhanced_packet,
    interface_description,
    resolution,
    section_header,
)
from capdissect.tracking.stream import Finished, Totals, Truncation, finished
from capdissect.tracking.tcp import Update
from capdissect.tracking.tracker import Observation, Tracker, UdpUpdate

CHROMIUM_NAMES: Final = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Flags for a quiet, sandbox-less, offline, one-shot headless browser: no GPU, no first-run
# UI, no background fetches or updates, and a fresh profile so no earlier state leaks in.
CHROMIUM_FLAGS: Final = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--no-pdf-header-footer")
PDF_TIMEOUT_S: Final = 120


# A packet the tracker does not follow still gets a comment, so every packet has one.
NO_ANNOTATION: Final = "capdissect: not TCP, UDP or ICMP; nothing to annotate"



def write_handout(path: str | Path, out: str | Path, title: str | None = None,
                  conn: int | None = None, calls: str | Path | None = None,
                  paper: str = "letter", jobs: int = 1) -> Path:
    """Write the lesson handout of the capture at *path* to *out* (.html, .md or .pdf);
    with *calls* (strace's log, ``F.pcap.strace``), the socket calls beside the packets;
    *paper* (a4, letter) is the page size a PDF, or the HTML printed, has.  With *conn*,
    *jobs* processes find that flow in a large capture (the same handout)."""
    out = Path(out)
    if paper not in PAPERS:
        raise HandoutError(f"unknown paper {paper!r}; use {' or '.join(PAPERS)}")
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md", ".markdown", ".pdf"):
        raise HandoutError(f"{out}: unknown handout format {suffix or '(none)'}; "
                           "use .html, .md or .pdf")
    refuse_input(out, path)
    if conn is not None and calls is None:
        found = _one_flow_jobs(path, conn, jobs) if jobs > 1 else None
        packets, numbering, truncated, names = found or _one_flow(path, conn)
        joined = None
    else:  # the socket calls are placed by frame among all the packets: keep them all
        packets, truncated, names = _all_packets(path)
        numbering = None
        joined = (join_calls(lambda: iter(packets), read_calls(calls))
                  if calls is not None else None)
    lesson = build_lesson(packets, Path(str(path)).name, title, conn, names, joined,
                          truncated, numbering)
    if suffix in (".md", ".markdown"):
        from capdissect.report.handout.markdown import markdown_parts

        _write_text(out, markdown_parts(lesson))
    elif suffix == ".pdf":
        html_to_pdf(render_html(lesson, paper), out)
    else:
        _write_text(out, html_parts(lesson, paper))
    if truncated is not None:
        raise truncated.error
    return out


def _all_packets(path: str | Path) -> tuple[list[Packet], Truncation | None, list[str]]:
    """Every packet of a lesson-sized capture (at most MAX_PACKETS), where it was cut
    short, and its interfaces' names."""
    packets: list[Packet] = []
    truncated = None
    capture = open_capture(path)
    with capture:
        try:
            for raw in capture:
                packets.append(decode(raw))
                if len(packets) > MAX_PACKETS:
                    raise HandoutTooBig(str(path), MAX_PACKETS)
        except CaptureError as exc:  # damaged: a handout of what came before, then the error
            truncated = Truncation(len(packets), exc)
        names = [iface.name for iface in capture.interfaces if iface.name]
    return packets, truncated, names


def _one_flow(path: str | Path, conn: int
              ) -> tuple[list[Packet], Numbering, Truncation | None, list[str]]:
    """The packets of connection (or conversation) *conn* only, from a capture of any
    size: a tracker numbers the flows as ``flows`` does while the file streams by, and
    only that flow's packets (with the ICMP errors answering it) are kept, with their
    frame numbers.  Memory holds the flows open at once, and the one flow."""
    packets: list[Packet] = []
    frames: list[int] = []
    tracker = Tracker(keep_events=False)
    frame = flows = 0
    truncated = None
    capture = open_capture(path)
    with capture:
        try:
            for frame, raw in enumerate(capture, 1):
                pkt = decode(raw)
                seen = tracker.feed(frame, pkt)
                tracker.drain()  # retired flows are not needed again
                seen_id = flow_id(seen)
                flows = max(flows, seen_id or 0)  # ids count up from 1 as flows appear
                if seen_id == conn:
                    packets.append(pkt)
                    frames.append(frame)
                    if len(packets) > MAX_PACKETS:
                        raise HandoutTooBig(f"{path}: connection {conn}", MAX_PACKETS)
        except CaptureError as exc:
            truncated = Truncation(frame, exc)
        names = [iface.name for iface in capture.interfaces if iface.name]
    if not packets:
        raise NoSuchFlow(Path(str(path)).name, conn, flows)
    return packets, Numbering(frames, conn, frame), truncated, names


OneFlow = tuple[list[Packet], Numbering, Truncation | None, list[str]]


class _Over(Exception):
    """Flow *conn*, which started at *frame*, is over: the shards need not go on (see
    _one_flow_jobs)."""

    def __init__(self, frame: int) -> None:
        super().__init__(frame)
        self.frame = frame


def _one_flow_jobs(path: str | Path, conn: int, jobs: int) -> OneFlow | None:
    """``_one_flow`` in two passes.  First *jobs* processes track the capture as
    ``flows -j`` does until flow *conn* is over: they tell the frame it started at, and
    that the flows open at once stayed under the tables' bounds all its life (else one
    tracker would have retired some early).  Then one pass tracks only the flows of
    that frame's bucket (``shards.alone``), moving their clocks on the other packets as
    a shard does, and keeps the packets of the flow that started there.  None where the
    shards had to give way to one process (``_one_flow`` then)."""
    from capdissect.commands.reports import steps
    from capdissect.commands.rounds import sharded_flows

    with open_capture(path):  # not a capture: fail now, as one process does
        pass
    totals = Totals()
    gave_way = False

    def one_process() -> Iterator[Finished]:
        nonlocal gave_way
        gave_way = True
        return finished(steps(path), totals)

    started = []

    def follow(flow: int, frame: int) -> None:
        if flow == conn:
            if frame:
                started.append(frame)
            else:  # out of the shards' generator: the workers end
                raise _Over(started[0])

    try:
        for _ in sharded_flows(path, jobs, totals, one_process, follow=follow):
            if gave_way:
                return None
    except _Over as over:
        return _flow_from(path, conn, over.frame)
    if gave_way:
        return None
    raise NoSuchFlow(Path(str(path)).name, conn, totals.flows)


def _flow_from(path: str | Path, conn: int, start: int) -> OneFlow:
    """The packets of flow *conn*, which started at frame *start*, as ``_one_flow``
    gives them, from one shard that tracks only that flow's bucket."""
    from capdissect.commands.rounds import fed
    from capdissect.dissect.route import UNKNOWN, route, route_decoded
    from capdissect.tracking.shards import Shard, alone

    where = UNKNOWN
    with open_capture(path) as capture:  # the first packet's route: framed, not made
        before = 0
        for batch in capture.batches() if capture.format == "pcap" else capture.lists():
            if start <= before + len(batch):
                raw = (batch.packet(start - before - 1) if isinstance(batch, RecordBatch)
                       else batch[start - before - 1])
                where = route(raw.data, raw.linktype, raw.wire_len)
                if where == UNKNOWN:
                    where = route_decoded(decode(raw))
                break
            before += len(batch)
    # Which flow a packet is (its record, or the conversation an ICMP error quotes) is
    # decided by the flows of its bucket alone, as long as the flows open at once stay
    # under the tables' bounds, which the shards checked while this flow lived.
    shard = Shard(0, 2, plan=alone(where))
    packets: list[Packet] = []
    frames: list[int] = []
    mine: list[int] = []  # the shard's number for the flow

    def watch(frame: int, pkt: Packet, seen: Observation | None) -> None:
        if frame == start and isinstance(seen, (Update, UdpUpdate)) and seen.new:
            mine.append(flow_id(seen) or 0)
        if mine and flow_id(seen) == mine[0]:
            packets.append(pkt)
            frames.append(frame)
            if len(packets) > MAX_PACKETS:
                raise HandoutTooBig(f"{path}: connection {conn}", MAX_PACKETS)

    shard.watch = watch
    frame = 0
    truncated = None
    capture = open_capture(path)
    with capture:
        try:
            for frame in fed(capture, shard):
                shard.report(frame)  # (its retired flows are not needed)
        except CaptureError as exc:
            truncated = Truncation(frame, exc)
        names = [iface.name for iface in capture.interfaces if iface.name]
    return packets, Numbering(frames, conn, frame), truncated, names


QUIZ_FORMATS: Final = ("json", "gift")


def quiz(path: str | Path, fmt: str = "json", seed: int = 0) -> str:
    """The quiz of the capture at *path*, as JSON or GIFT (Moodle's import format): the
    handout's question generator, every question it has, shuffled by *seed*."""
    if fmt not in QUIZ_FORMATS:
        raise HandoutError(f"unknown quiz format {fmt!r}; use json or gift")
    packets, truncated, _ = _all_packets(path)
    if truncated is not None:  # a quiz on half a lesson would ask about what is missing
        raise truncated.error
    asked = questions(lesson_flows(packets), seed)
    name = clean(Path(str(path)).name)
    return quiz_json(name, seed, asked) if fmt == "json" else quiz_gift(name, seed, asked)


def follow_stream(path: str | Path, conn: int, mode: str = "ascii",
                  direction: str = "both") -> str:
    """The reassembled byte stream of TCP connection *conn* of the capture at *path*:
    ``ascii``, ``hex`` or ``raw`` (tshark's ``-z follow,tcp,raw`` lines)."""
    from capdissect.report.follow import follow, render

    capture = open_capture(path)
    with capture:
        followed = follow((decode(raw) for raw in capture), conn, clean(Path(str(path)).name))
    return render(followed, mode, direction)


def graph(path: str | Path, kind: str, conn: int | None = None, out: str | Path | None = None,
          direction: str | None = None, table: bool = False) -> str:
    """The *kind* graph of TCP connection *conn* (None: the first) of the capture at
    *path*: written as SVG to *out* (and "wrote OUT" returned), else a text plot, or with
    *table* every plotted point as TSV."""
    from capdissect.report.diagrams import graph as graphs
    from capdissect.report.diagrams.flight import samples

    if kind not in graphs.KINDS:
        raise HandoutError(f"unknown graph kind {kind!r}; use {', '.join(graphs.KINDS)}")
    capture = open_capture(path)
    with capture:
        found, points = samples((decode(raw) for raw in capture), conn,
                                clean(Path(str(path)).name))
    drawn = graphs.plot(found, points, kind, direction)
    if table:
        return graphs.tsv(drawn)
    if out is None:
        return graphs.text_plot(drawn)
    _write_text(Path(out), [graphs.svg(drawn), "\n"])
    return ""


def _write_text(out: Path, parts: Iterable[str]) -> None:
    """Write *parts* one after the other (a handout is never held whole)."""
    try:
        with out.open("w", encoding="utf-8") as f:
            for part in parts:
                f.write(part)
    except OSError as exc:
        raise OutputError.from_os(str(out), exc) from None


def find_chromium() -> str | None:
    """Chromium's path: $CAPDISSECT_CHROMIUM, else the first of the usual names on PATH."""
    chosen = os.environ.get("CAPDISSECT_CHROMIUM")
    if chosen:
        return chosen
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(page: str, out: Path) -> None:
    """Print *page* to *out* with headless Chromium."""
    chromium = find_chromium()
    if chromium is None:
        raise HandoutError("a PDF handout needs Chromium (Debian: apt-get install chromium); "
                           "write .html and print it from a browser instead")
    with tempfile.TemporaryDirectory(prefix="capdissect-pdf-") as tmp:
        source = Path(tmp) / "handout.html"
        source.write_text(page, encoding="utf-8")
        target = Path(tmp) / "handout.pdf"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
                   f"--print-to-pdf={target}", source.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=PDF_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HandoutError(f"Chromium could not print the PDF: {exc}") from None
        if not target.exists() or target.stat().st_size == 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise HandoutError(f"Chromium printed no PDF (exit {done.returncode}"
                               f"{': ' + tail[0] if tail else ''})")
        try:
            shutil.copyfile(target, out)
        except OSError as exc:
            raise OutputError.from_os(str(out), exc) from None


def write_annotated(path: str | Path, out: str | Path, calls: str | Path | None = None) -> int:
    """Copy the capture at *path* to the pcapng *out*, each packet commented with the lines
    ``read`` prints under it (with *calls*, strace's log, the socket calls too, as
    ``trace`` prints them); return the number of packets written.

    Timestamps, link types, snap lengths and interface names are kept (one IDB per
    interface of the original, written before its first packet); a packet's own comment
    stays, first, and the annotation follows as a second ``opt_comment``.  Streaming: a
    packet is written once the next one was read whole, so that when the capture is
    damaged the last whole packet's comment can say so; then the error is raised.
    """
    refuse_input(out, path)
    after: dict[int, list[str]] = {}
    if calls is not None:
        joined, frames = join_calls(lambda: decoded(path), read_calls(calls))
        after = moments(joined, frames)
        # The calls before the first packet go with it: a comment needs a packet.
        after[1] = after.pop(0, []) + after.get(1, [])
    capture = open_capture(path)
    name = capture.name
    try:
        for iface in capture.interfaces_from(0):  # checked before the output is created
            _interface_block(iface, name)
    except HandoutError:
        capture.close()
        raise
    annotator = Annotator(checksums=2)  # the note wherever tcpdump -vv has a verdict
    exponents: list[int] = []
    held: tuple[RawPacket, int, list[str]] | None = None  # the packet not yet written
    count = 0
    truncated = None
    try:
        with capture, open(out, "wb") as sink:
            sink.write(section_header(f"capdissect {__version__} annotate"))
            try:
                for count, raw in enumerate(capture, 1):
                    if raw.ifindex >= len(exponents):  # a new interface: its IDB goes first
                        for iface in capture.interfaces_from(len(exponents)):
                            sink.write(_interface_block(iface, name))
                            exponents.append(resolution(iface))
                    ifindex = raw.ifindex if raw.ifindex < len(exponents) else 0
                    notes = "\n".join(annotator.annotate(count, decode(raw))
                                      + after.get(count, []) or [NO_ANNOTATION])
                    if held is not None:
                        sink.write(_packet_block(held, exponents))
                    held = (raw, ifindex, [raw.comment, notes] if raw.comment else [notes])
            except CaptureError as exc:
                truncated = Truncation(count, exc)
                if held is not None:
                    held[2][-1] += "\n" + truncated.note()
            if held is not None:
                sink.write(_packet_block(held, exponents))
    except OSError as exc:
        raise OutputError.from_os(str(out), exc) from None
    if truncated is not None:
        raise truncated.error
    return count


def _interface_block(iface: Interface, name: str) -> bytes:
    if iface.linktype > MAX_LINKTYPE:
        raise HandoutError(f"{name}: link type {iface.linktype} does not fit pcapng's 16-bit "
                           "link type field; this capture cannot be annotated")
    return interface_description(iface)


def _packet_block(held: tuple[RawPacket, int, list[str]], exponents: list[int]) -> bytes:
    raw, ifindex, comments = held
    return enhanced_packet(raw, ifindex, exponents[ifindex], comments)
