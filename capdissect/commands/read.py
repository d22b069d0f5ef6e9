"""``read``: a capture file to the lines tcpdump prints, plus capdissect's annotations,
or to one line of JSON per packet (``--json``).

This is the one place that joins capture → dissect → report for files; the CLI and the
Python API both call it.  ``packet_lines`` is its per-packet loop, shared with ``live``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from capdissect.dissect.link import LINK_NAMES, LINUX_SLL2
from capdissect.errors import CapdissectError
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import open_capture

# Only what every read prints is imported above: a command's start-up is most of a
# small capture's time, so the filter, the annotations, JSON and the calls are imported
# where they are used.
if TYPE_CHECKING:
    from capdissect.dissect.stack import Packet
    from capdissect.packets import RawPacket, RecordBatch
    from capdissect.report.json.packet import JsonObject
    from capdissect.sources.files import CaptureFile
    from capdissect.tracking.syscalls import Frame, Joined
    from capdissect.tracking.tracker import Observation, Tracker


@dataclass(frozen=True)
class ReadOptions:
    n: int = 0
    v: int = 0
    X: int = 0
    x: int = 0
    e: bool = False
    S: bool = False
    K: bool = False
    t: int = 0
    count: int | None = None  # stop after this many packets that pass the filter
    plain: bool = False
    expression: str | None = None  # a tcpdump filter expression (libpcap's language)
    # One JSON object per packet (JSON Lines) instead of text; the text options are
    # ignored, count and expression apply as they do to text.
    json: bool = False
    # Processes that make the JSON lines (rounds.py); the output is the same for any.
    jobs: int | None = None

    @property
    def checksum_level(self) -> int:
        """The -v level whose checksum verdicts tcpdump prints (none with -K)."""
        return 0 if self.K else self.v

    def printing(self) -> PrintOptions:
        return PrintOptions(n=self.n, v=self.v, x=self.x, X=self.X, e=self.e, S=self.S,
                            K=self.K, t=self.t)


def local_ifname(index: int) -> str | None:
    """Name an SLL2 interface index through this machine's table, as tcpdump does."""
    import socket  # only SLL2 captures name interfaces: not imported at start-up

    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


def read_lines(
    path: str | Path, options: ReadOptions, banner: Callable[[str], None] | None = None
) -> Iterator[str]:
    """Yield the text of each packet of *path*: tcpdump's block, then annotations; or
    its line of JSON.  With ``options.jobs`` above 1 the texts are made by that many
    processes; for JSON, each text yielded is then the lines of up to a round of packets
    (``rounds.ROUND``), joined by newlines."""
    if options.json and (options.jobs or 1) > 1:
        for block in json_blocks(path, options, banner):
            yield block[:-1].decode("ascii")
        return
    if (options.jobs or 1) > 1:
        yield from text_jobs(path, options, banner)
        return
    with open_capture(path) as capture:
        keep = _started(capture, options, banner)
        if options.json:
            yield from json_lines(capture, keep=keep, limit=options.count)
            return
        printer = TcpdumpPrinter(options.printing(), ifname=local_ifname)
        annotate = None
        if not options.plain:
            from capdissect.report.annotate import Annotator

            annotate = Annotator(checksums=options.checksum_level,
                                 names=printer.names).annotate
        if keep is None and annotate is None and printer.fast is not None:
            batches = capture.batches() if capture.format == "pcap" else capture.lists()
            yield from _batch_lines(batches, printer, options.count)
        else:
            yield from packet_lines(capture, options, keep=keep, annotate=annotate,
                                    printer=printer)


def text_jobs(path: str | Path, options: ReadOptions,
              banner: Callable[[str], None] | None = None) -> Iterator[str]:
    """``read -j N``'s annotated text (``options.jobs`` processes, commands/rounds.py
    ``sharded_text``): each packet's text, as one process yields it (each is coloured
    by itself on a terminal)."""
    from capdissect.commands.rounds import check_jobs, sharded_text

    jobs = options.jobs or 1
    problem = check_jobs(path, jobs) or text_jobs_problem(options)
    with open_capture(path) as capture:
        keep = _started(capture, options, banner)
    if problem is not None:
        raise CapdissectError(problem)
    alone = replace(options, jobs=None)

    def worder(tracker: Tracker, conversation: Callable[[int], str]) -> Worder:
        return Worder(alone, tracker, conversation)

    for texts in sharded_text(path, jobs, worder, keep, lambda: read_lines(path, alone),
                              limit=options.count):
        yield from texts


def text_jobs_problem(options: ReadOptions) -> str | None:
    """Why the text *options* ask for cannot be made by several processes (None: it
    can)."""
    if options.plain:
        return ("-j applies to --json and to the annotated text: --plain is printed by one "
                "process (its lines need no tracking to share)")
    if options.t in (3, 5):
        return ("-j cannot print -ttt or -ttttt: each packet's time counts from one "
                "printed before it, which another process may print")
    return None


def json_blocks(path: str | Path, options: ReadOptions,
                banner: Callable[[str], None] | None = None,
                sink: int | None = None) -> Iterator[bytes]:
    """``read --json -j N`` (``options.jobs`` processes): ASCII blocks of up to a round
    of lines, each line ending in a newline, as the workers made them; with *sink*, the
    blocks that can go there straight from the workers do (``rounds.parallel_blocks``).
    The command writes stdout so: passing the long bench mix's 823 MB on as text took
    the parent 0.3 to 0.4 s of the CPU its two workers need, and 0.15 to 0.18 s so."""
    from capdissect.commands.rounds import check_jobs, parallel_blocks

    jobs = options.jobs or 1
    with open_capture(path) as capture:
        keep = _started(capture, options, banner)
        problem = check_jobs(path, jobs)
        if problem is not None:
            raise CapdissectError(problem)
        yield from parallel_blocks(path, jobs, json_maker(), keep=keep, limit=options.count,
                                   sink=sink)


def _started(capture: CaptureFile, options: ReadOptions,
             banner: Callable[[str], None] | None) -> Callable[[RawPacket], bool] | None:
    """Say what is read (tcpdump's banner) and compile the filter, if any: what lets a
    packet through (None: every packet)."""
    if banner is not None:
        banner(f"reading from file {capture.name}, link-type "
               f"{_link_type_text(capture.linktype)}, snapshot length {capture.snaplen}")
        if capture.linktype == LINUX_SLL2:
            banner("Warning: interface names might be incorrect")
    if not options.expression:
        return None
    # Compile for the first link type before any packet, so that a bad expression is
    # reported before output, as tcpdump does; other link types compile lazily.
    from capdissect.sources.filter import PacketFilter

    packet_filter = PacketFilter(options.expression, capture.snaplen, capture.big_endian)
    packet_filter.program(capture.linktype)
    return packet_filter.matches


def _link_type_text(linktype: int) -> str:
    """The link type as tcpdump's banner names it: ``EN10MB (Ethernet)``; for a type we
    do not decode, libpcap's name if it has one (``C_HDLC (Cisco HDLC)``), else the
    number alone."""
    known = LINK_NAMES.get(linktype)
    if known is None:
        from capdissect.sources.filter import libpcap_link_name

        known = libpcap_link_name(linktype)
    return f"{known[0]} ({known[1]})" if known else str(linktype)


def _batch_lines(batches: Iterable[RecordBatch | list[RawPacket]], printer: TcpdumpPrinter,
                 limit: int | None) -> Iterator[str]:
    """``packet_lines`` without filter or annotations: the same texts, but the common
    packets are printed a batch at a time by the compiled fast path: a classic pcap
    file's records without a RawPacket each (two thirds of ``read --plain``'s time), a
    pcapng file's packets a buffer's list at a time."""
    fast = printer.fast
    assert fast is not None
    number = 0  # packets before the current batch
    for batch in batches:
        texts: list[str] = []
        i, n = 0, len(batch)
        while i < n:
            before = len(texts)
            try:
                i = (fast.format_list(batch, i, texts) if isinstance(batch, list)
                     else fast.format_batch(batch, i, texts))
            except Exception:  # a bug of ours: the full path prints the packet, or says so
                i += len(texts) - before
            if i < n:
                raw = batch[i] if isinstance(batch, list) else batch.packet(i)
                texts.append(_text(printer, raw, number + i + 1))
                i += 1
        number += n
        if limit is not None and number >= limit:
            yield from texts[: len(texts) - (number - limit)]
            return
        yield from texts


def packet_lines(
    packets: Iterable[RawPacket],
    options: ReadOptions,
    *,
    keep: Callable[[RawPacket], bool] | None = None,
    annotate: Callable[[int, Packet], list[str]] | None = None,
    printer: TcpdumpPrinter | None = None,
) -> Iterator[str]:
    """The per-packet loop of ``read`` and ``live``: filter, tcpdump's text, annotations.

    Yields one text per packet that *keep* lets through (tcpdump's lines, then the
    annotation lines), stopping after ``options.count`` of them.  *annotate* gets the
    packet's 1-based position in *packets* and the decoded packet; without it nothing
    is decoded.  Pulls one packet at a time, so a live source is printed as it arrives.
    """
    if annotate is not None:
        from capdissect.dissect.stack import decode
        from capdissect.report.annotate import ANNOTATION_PREFIX
    printer = printer or TcpdumpPrinter(options.printing(), ifname=local_ifname)
    limit = options.count
    shown = 0
    for number, pkt in enumerate(packets, 1):
        # tcpdump never sees a packet the filter rejects: the printer's state (relative
        # sequence numbers, -ttt's previous packet) and -c only count those that pass.
        if keep is not None and not keep(pkt):
            continue
        text = _text(printer, pkt, number)
        if annotate is not None:
            try:
                notes = annotate(number, decode(pkt))
            except Exception as exc:  # a bug of ours must not end the run or hide packets
                notes = [_bug(number, exc)]
            if notes:
                text = _noted(text, notes, ANNOTATION_PREFIX)
        yield text
        shown += 1
        if limit is not None and shown >= limit:
            return


class Worder:
    """What a ``read -j N`` worker makes of each packet of its flows (commands/rounds.py
    ``sharded_text``): ``packet_lines``'s text, with the annotations of the worker's
    shard's *tracker*, which has seen the packet already; *conversation* writes a
    conversation's id."""

    def __init__(self, options: ReadOptions, tracker: Tracker,
                 conversation: Callable[[int], str]) -> None:
        from capdissect.report.annotate import ANNOTATION_PREFIX, Annotator

        self.printer = TcpdumpPrinter(options.printing(), ifname=local_ifname)
        self.annotator = Annotator(tracker, options.checksum_level, self.printer.names,
                                   conversation)
        self.prefix = ANNOTATION_PREFIX
        # With -v, tcpdump prints the TCP segment an ICMP error quotes with the relative
        # numbers of that connection, which another worker may hold.
        self.verbose = options.v > 0

    @property
    def noted(self) -> bool:
        """Whether the loopback checksum note was given."""
        return self.annotator.noted

    def text(self, number: int, pkt: Packet, seen: Observation | None) -> str:
        """Packet *number*'s text; the tracker saw it as *seen*."""
        try:
            notes = self.annotator.lines(seen, pkt)
        except Exception as exc:  # a bug of ours must not end the run or hide packets
            notes = [_bug(number, exc)]
        return _noted(_text(self.printer, pkt.raw, number), notes, self.prefix)


def _noted(text: str, notes: list[str], prefix: str) -> str:
    """A packet's text with its annotation lines under it."""
    if not notes:
        return text
    under = "\n" + prefix
    return text + under + under.join(notes)


def json_lines(
    packets: Iterable[RawPacket],
    *,
    keep: Callable[[RawPacket], bool] | None = None,
    limit: int | None = None,
) -> Iterator[str]:
    """``read --json``: one line of JSON per packet that *keep* lets through, at most
    *limit* of them; ``frame`` is the packet's 1-based position in *packets*, as in text."""
    json_text = json_maker()
    shown = 0
    for number, pkt in enumerate(packets, 1):
        if keep is not None and not keep(pkt):
            continue
        yield json_text(number, pkt)
        shown += 1
        if limit is not None and shown >= limit:
            return


def json_maker() -> Callable[[int, RawPacket], str]:
    """What makes frame *number*'s line of ``read --json`` (or a line saying we failed
    to); JSON is imported here, once, not at start-up nor for each packet."""
    from capdissect.dissect.stack import decode
    from capdissect.report.json.packet import json_line, packet_json

    def json_text(number: int, pkt: RawPacket) -> str:
        try:
            return json_line(packet_json(number, decode(pkt)))
        except Exception as exc:  # a bug of ours must not end the run or hide packets
            return json_line(_json_bug(number, exc))

    return json_text


def _json_bug(number: int, exc: Exception) -> JsonObject:
    return {"frame": number, "error": {"kind": "bug", "message": _bug(number, exc)}}


def _text(printer: TcpdumpPrinter, pkt: RawPacket, number: int) -> str:
    """tcpdump's text for packet *number*, or a line saying we failed to print it."""
    try:
        return printer.format(pkt)
    except Exception as exc:  # a bug of ours must not end the run or hide packets
        return _bug(number, exc)


def _bug(number: int, exc: Exception) -> str:
    return (f"[capdissect: cannot print packet {number} ({type(exc).__name__}: {exc}); "
            "please report it with the capture]")


def traced_lines(raw: Iterable[RawPacket], options: ReadOptions, joined: Joined,
                frames: list[Frame]) -> Iterator[str]:
    """``read``'s text of the packets, with each call under the packet it returned after."""
    from capdissect.report.annotate import ANNOTATION_PREFIX, Annotator
    from capdissect.report.tables.calls import moments

    after = moments(joined, frames)
    prefix = ANNOTATION_PREFIX
    yield from (prefix + line for line in after.get(0, []))
    annotator = Annotator(checksums=options.v > 0)

    def annotate(frame: int, pkt: Packet) -> list[str]:
        notes = [] if options.plain else annotator.annotate(frame, pkt)
        return notes + after.get(frame, [])

    yield from packet_lines(raw, options, annotate=annotate)
