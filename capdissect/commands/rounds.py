"""One capture read by several processes, printed exactly as one process prints it:
``read --json -j N`` (below), and ``flows``/``timeline``/``sockets``/``read -j N`` (at
the end, with tracking/shards.py).

A line of ``read --json`` depends on its packet and its frame number only, so the
packets are dealt out in rounds of at most ``ROUND`` consecutive frames: worker *k* of
*N* converts the packets of rounds k, k+N, k+2N...  Every worker reads the whole file,
so that it knows each packet's frame number and meets the same damage at the same
place; a classic pcap file is framed a buffer at a time in C (a round never spans two
buffers), and only a worker's own rounds become packets.  The parent prints the
rounds in order, taking each from the pipe of the worker that made it: no line is
parsed or reordered, and the pipes' back-pressure keeps at most a round or two per
worker in memory.  The command has the kernel move each round from the pipe to stdout
(splice(2)), so the text never passes through the parent.

The end, as one process has it:

- ``-c N``: the parent stops after N lines; a worker stops once it alone made N,
  since no round after that can be printed.
- A damaged file: every worker stops at the damage.  The worker whose round it falls
  in sends the lines before it and the error, which the parent raises after printing
  them; the other workers' last messages are never read.
- Ctrl-C, ``| head`` or an error: the parent terminates its workers (by their PIDs)
  and waits for them, so no process is left behind.  A parent killed outright (by
  SIGPIPE under ``| head``, as tcpdump is, or by SIGKILL) leaves its pipes with no
  reader, since each worker closes its copies of their reading ends when it starts:
  every worker ends at its next write.

Workers are forked: they start at once with everything imported, the filter compiled.

``flows -j N`` and ``timeline -j N`` deal out connections instead of frames: the parent
reads the file through once to plan the big ones (tracking/shards.py ``Survey``), then
every worker reads the whole file and tracks its share of the connections, sending
every ``TRACK_ROUND`` frames or so the flows it started and retired; the parent numbers
and orders them as one tracker would and makes the report itself.  For ``timeline``'s
JSON, text and Mermaid the workers also make the text of their flows' events (most of
the report; not a ladder's title nor a diagram's first two lines, which number the
flow) and
write it to a spool file of their own, which the parent copies into the report where it
belongs.  The same end: a damaged file's report then its error, no process left behind.

``sockets -j N`` runs the same shards, each settling its own flows' facts for the socket
table (tracking/sockets.py ``ShardSockets``); the parent puts what they tell in frame
order into one table.  ``read -j N``'s annotated text: each worker prints and words the
packets of its flows into a spool file; the parent puts the texts in frame order and
numbers the conversations they name.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import errno
import fcntl
import functools
import itertools
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, TypeVar

from capdissect.errors import CapdissectError, CaptureError
from capdissect.sources.files import PROGRESS, open_capture
from capdissect.tracking.shards import (
    MAX_SHARDS,
    Diverged,
    Follow,
    Merge,
    Plan,
    Shard,
    ShardReport,
    Survey,
    UdpLinked,
)
from capdissect.tracking.stream import End, Finished, Totals, Truncation

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from capdissect.dissect.stack import Packet
    from capdissect.packets import RawPacket, RecordBatch
    from capdissect.sources.files import CaptureFile
    from capdissect.tracking.sockets import Facts, Told
    from capdissect.tracking.tracker import Observation, Tracker

# Frames a round: about 300 KB of JSON on large segments.  Larger rounds cost more than
# they save: each is a fresh multi-megabyte buffer in three places, and page faults.
ROUND = 128
_T = TypeVar("_T")

Convert = Callable[[int, "RawPacket"], str]  # (frame number, packet) -> its line
Keep = Callable[["RawPacket"], bool]


def check_jobs(path: str | Path, jobs: int) -> str | None:
    """Why *jobs* processes cannot read *path*, as one line; None when they can."""
    if not 1 <= jobs <= MAX_SHARDS:
        return f"invalid number of jobs {jobs} (1 to {MAX_SHARDS})"
    if jobs > 1 and (str(path) == "-" or not os.path.isfile(path)):
        return (f"-j {jobs} reads the file once in each process: {path} is not a regular "
                "file (use -j 1 for standard input or a pipe)")
    return None


@contextlib.contextmanager
def _forked(jobs: int, target: Callable[..., None],
            args: tuple[object, ...]) -> Iterator[list[Connection]]:
    """*jobs* forked workers running ``target(index, pipe, *args)``, and the pipes they
    send on; on the way out (an error, Ctrl-C, ``| head``) each is terminated by its PID
    and joined."""
    context = multiprocessing.get_context("fork")
    # A forked worker flushes the stdio buffers it inherits when it exits.
    sys.stdout.flush()
    sys.stderr.flush()
    pipes: list[Connection] = []
    workers: list[multiprocessing.process.BaseProcess] = []
    try:
        for index in range(jobs):
            receive, send = context.Pipe(duplex=False)
            _widen(receive)
            worker = context.Process(target=_child, daemon=True, name=f"capdissect-{index}",
                                     args=(target, [*pipes, receive], index, send, *args))
            worker.start()
            send.close()  # the worker's end: EOF here if the worker dies
            pipes.append(receive)
            workers.append(worker)
        yield pipes
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join()
        for pipe in pipes:
            pipe.close()


def _child(target: Callable[..., None], readers: list[Connection], *args: object) -> None:
    """A forked worker: ``target(*args)``, once its copies of the pipes' reading ends
    are closed.  Then a parent that dies (killed, or by SIGPIPE under ``| head``) leaves
    no reader of its pipes, so each worker's next write fails and it ends, instead of
    waiting for ever on a pipe it would otherwise hold open itself."""
    for pipe in readers:
        pipe.close()
    target(*args)


# A pipe from a worker holds this much (Linux's default is 64 KiB, Linux's cap for a
# process without privileges 1 MiB): a worker's next round fits while the parent still
# reads the other workers', so the worker goes on instead of waiting for its turn.
_PIPE_BYTES = 1 << 20


def _widen(pipe: Connection) -> None:
    """Make *pipe* hold ``_PIPE_BYTES`` where the system lets it (else it stays)."""
    # OSError: a lower cap; AttributeError: no F_SETPIPE_SZ (not Linux).
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _ended(index: int, jobs: int) -> CapdissectError:
    return CapdissectError(f"worker process {index} of {jobs} ended without its output "
                           "(killed?)")


def parallel_lines(path: str | Path, jobs: int, convert: Convert, *, keep: Keep | None,
                   limit: int | None) -> Iterator[str]:
    """What ``convert`` makes of each packet of *path* that *keep* lets through, at most
    *limit* of them, in frame order, made by *jobs* worker processes.  Each text yielded
    is the lines of one round, joined by newlines (a line of JSON holds none)."""
    for block in parallel_blocks(path, jobs, convert, keep=keep, limit=limit):
        yield block[:-1].decode("ascii")


def parallel_blocks(path: str | Path, jobs: int, convert: Convert, *, keep: Keep | None,
                    limit: int | None, sink: int | None = None) -> Iterator[bytes]:
    """``parallel_lines`` as the workers send it: each round's lines as one ASCII block,
    every line ending in a newline.

    With *sink* (a descriptor open for writing: the command's stdout), a block that goes
    out whole is moved there from its worker's pipe inside the kernel (splice(2)), not
    yielded: on the long bench mix ``read --json`` is 800 MB, which the parent would
    otherwise copy in and out again.  Where *sink* cannot take a splice (a terminal), the
    blocks are yielded, as they are where there is no splice (not Linux).
    """
    if not hasattr(os, "splice"):
        sink = None
    with _forked(jobs, _work, (str(path), jobs, convert, keep, limit)) as pipes:
        shown = 0
        turn = 0
        while True:
            index = turn % jobs
            pipe = pipes[index]
            try:
                count, size, status, error = pipe.recv()
            except EOFError:
                raise _ended(index, jobs) from None
            turn += 1
            cut = limit is not None and shown + count > limit
            if size and (sink is None or cut or not _spliced(pipe, size, sink, index, jobs)):
                block = _received(pipe, size, index, jobs)
                if cut:
                    assert limit is not None
                    lines = block.split(b"\n", limit - shown)
                    lines[-1] = b""
                    block = b"\n".join(lines)
                yield block
            shown += count
            if limit is not None and shown >= limit:
                return
            if status == "error":
                raise CaptureError(error or "the capture could not be read")
            if status is not None:
                return


def _spliced(pipe: Connection, size: int, sink: int, index: int, jobs: int) -> bool:
    """Move the *size* bytes of a block from worker *index*'s *pipe* to *sink* in the
    kernel; False if *sink* cannot take that (nothing moved then: the block is still in
    the pipe, to be read)."""
    fd = pipe.fileno()
    left = size
    while left:
        try:
            moved = os.splice(fd, sink, left)
        except OSError as exc:
            if left == size and exc.errno in (errno.EINVAL, errno.ENOSYS):
                return False
            raise
        if not moved:
            raise _ended(index, jobs)
        left -= moved
    return True


def _received(pipe: Connection, size: int, index: int, jobs: int) -> bytes:
    """The *size* bytes of a block, read from worker *index*'s *pipe*."""
    fd = pipe.fileno()
    pieces = []
    left = size
    while left:
        piece = os.read(fd, left)
        if not piece:
            raise _ended(index, jobs)
        pieces.append(piece)
        left -= len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _work(index: int, out: Connection, path: str, jobs: int, convert: Convert,
          keep: Keep | None, limit: int | None) -> None:
    """Worker *index*: send the lines of each of its rounds, then how the file ended, as
    its next round."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
    PROGRESS.set(None)  # no progress bar from each worker
    made = 0  # lines this worker sent
    number = 0  # frames before the round
    status, error = "end", None
    try:
        with open_capture(path) as capture:
            for turn, (packets, damage) in enumerate(_rounds(capture)):
                if turn % jobs == index:
                    lines: list[str] = []
                    for offset, raw in enumerate(_whole(packets), number + 1):
                        if keep is None or keep(raw):
                            lines.append(convert(offset, raw))
                            if limit is not None and made + len(lines) >= limit:
                                break  # this worker alone made enough: the parent stops
                    made += len(lines)
                    done = limit is not None and made >= limit
                    _send(out, lines, "error" if damage else "end" if done else None, damage)
                    if damage or done:
                        return
                elif damage:
                    status, error = "error", damage
                    break
                number += len(packets)
    except CapdissectError as exc:
        status, error = "error", str(exc)
    except Exception as exc:  # a bug of ours: one line from the parent, not a traceback
        status, error = "error", f"worker process {index} failed: {exc!r}"
    _send(out, [], status, error)


Round = tuple["_Records | list[RawPacket]", str | None]


def _rounds(capture: CaptureFile) -> Iterator[Round]:
    """The capture's rounds, each with the error that ended the file in it (or None):
    a classic pcap file's record batches, framed in C and turned into packets only by
    the worker whose round it is; else ``ROUND`` packets at a time."""
    if capture.format == "pcap":
        try:
            for batch in capture.batches():
                for start in range(0, len(batch), ROUND):
                    yield _Records(batch, start, min(start + ROUND, len(batch))), None
        except CapdissectError as exc:
            yield [], str(exc)
        return
    packets = iter(capture)
    while True:
        chunk: list[RawPacket] = []
        try:
            for raw in packets:
                chunk.append(raw)
                if len(chunk) == ROUND:
                    break
        except CapdissectError as exc:
            yield chunk, str(exc)
            return
        if not chunk:
            return
        yield chunk, None


class _Records:
    """Records *start* to *stop* of a batch: made packets only when asked."""

    __slots__ = ("batch", "start", "stop")

    def __init__(self, batch: RecordBatch, start: int, stop: int) -> None:
        self.batch, self.start, self.stop = batch, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def packets(self) -> list[RawPacket]:
        return [self.batch.packet(i) for i in range(self.start, self.stop)]


def _whole(packets: _Records | list[RawPacket]) -> list[RawPacket]:
    return packets if isinstance(packets, list) else packets.packets()


def _send(out: Connection, lines: list[str], status: str | None, error: str | None) -> None:
    """A worker's message for one of its rounds: how many lines, then None while more
    follow, or how the file ended ("end", or "error" with the error's line); then the
    lines as one ASCII block, each ending in a newline (a line of JSON is ASCII and
    holds no newline)."""
    count = len(lines)
    if lines:
        lines.append("")  # the last line's newline, without another copy
    block = "\n".join(lines).encode("ascii")
    try:
        out.send((count, len(block), status, error))
        view = memoryview(block)
        while view:  # the bytes alone, so the parent can splice them on
            view = view[os.write(out.fileno(), view):]
    except OSError:  # the parent went away (Ctrl-C, | head): nothing to say to anyone
        os._exit(0)


# ----- flows and timeline: the connections dealt out (tracking/shards.py) ---------------
# Frames a shard reads between two reports (rounded up to the reader's lists of packets).
TRACK_ROUND = 16_384


# A flow's events as text, in pieces, given the time of the capture's first packet.
Render = Callable[[Finished, float], Iterator[str]]
_SPOOL_READ = 1 << 20  # bytes of a spooled text read at a time


class Spooled:
    """A flow's events as text, written by a worker into its spool file from *offset*:
    ``Finished.text``, read in pieces when the report comes to it."""

    def __init__(self, offset: int, length: int) -> None:
        self.offset = offset
        self.length = length
        # The worker's spool, set when the parent receives the flow: open while a flow
        # in it is (a temporary file, gone when closed).
        self.spool: IO[bytes] | None = None

    def __iter__(self) -> Iterator[str]:
        assert self.spool is not None
        fd = self.spool.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")()
        at, end = self.offset, self.offset + self.length
        while at < end:
            data = os.pread(fd, min(_SPOOL_READ, end - at), at)
            if not data:
                raise CapdissectError("a worker's spool file ended early (disk full?)")
            at += len(data)
            yield decoder.decode(data)
        yield decoder.decode(b"", final=True)


def sharded_flows(path: str | Path, jobs: int, totals: Totals,
                  one_process: Callable[[], Iterator[Finished]], *, events: bool = False,
                  limit: int | None = None, render: Render | None = None,
                  follow: Follow | None = None) -> Iterator[Finished]:
    """The finished flows of *path* exactly as ``stream.finished`` gives them, tracked by
    *jobs* worker processes, each taking its share of the connections; *totals* is filled
    in on the way.  With *render*, the workers make the text of each flow's events with it
    (``Finished.text``); *follow* is told of each flow as the shards number it and as it
    ends (``Merge``).  The endpoints that refused a UDP datagram are found first, so that
    their datagrams go to one worker.  Where the shards cannot follow one tracker
    (``shards.Diverged``), the capture is tracked again from its start, by shards that
    keep all of UDP together (``shards.UdpLinked``) or by *one_process*
    (``stream.finished`` of the capture, filling in *totals*), and the flows already given
    are skipped: they are the same."""
    def attempt(pinned: frozenset[int], udp_alone: bool, plan: Plan, given: int
                ) -> Iterator[Finished]:
        return _merged(str(path), jobs, totals, (events, limit, pinned, udp_alone, plan),
                       render, given, follow)

    return _tried(str(path), jobs, attempt,
                  lambda given: itertools.islice(one_process(), given, None), totals.restart)


# Shards dealt so (pinned, udp_alone, plan), what they give after the first *given* items.
Attempt = Callable[[frozenset[int], bool, Plan, int], Iterator[_T]]


def _tried(path: str, jobs: int, attempt: Attempt[_T],
           one_process: Callable[[int], Iterator[_T]], restart: Callable[[], None],
           size: Callable[[_T], int] = lambda _: 1) -> Iterator[_T]:
    """What *attempt* gives from *jobs* shards, the refusers of a UDP datagram found
    first (``Survey``) so that their datagrams go to one worker.  Where the shards cannot
    follow one tracker (``shards.Diverged``), *restart* (forget what was counted), then
    the capture is tracked again from its start by shards that keep all of UDP together
    (``shards.UdpLinked``) or by one process; each is told how many items (of *size*)
    were given already, which it gives again the same and skips."""
    given = 0
    survey = _surveyed(path)
    for udp_alone in (False, True):
        try:
            for item in attempt(survey.pinned, udp_alone, survey.plan(jobs, udp_alone),
                                given):
                yield item
                given += size(item)
            return
        except Diverged as exc:
            restart()
            if not isinstance(exc, UdpLinked):
                break
    yield from one_process(given)


def _surveyed(path: str) -> Survey:
    """The capture read through once: its refusers, and what its flows will cost."""
    quiet = PROGRESS.set(None)  # the bar follows the workers' reading, not this
    survey = Survey()
    try:
        with open_capture(path) as capture:
            if capture.format == "pcap":
                for batch in capture.batches():
                    survey.batch(batch)
            else:
                for packets in capture.lists():
                    survey.packets(packets)
    except CapdissectError:  # the shards meet the damage where it is, and say so
        pass
    finally:
        PROGRESS.reset(quiet)
    return survey


# events, limit, pinned, udp_alone, plan
ShardOptions = tuple[bool, "int | None", frozenset[int], bool, Plan]


def _merged(path: str, jobs: int, totals: Totals, options: ShardOptions,
            render: Render | None, given: int, follow: Follow | None
            ) -> Iterator[Finished]:
    """The flows after the first *given*, from *jobs* shards."""
    # Each spool stays open while a flow in it does, which may outlive this generator
    # (a caller keeping the flows), so no with-block: closed, a temporary file is gone.
    spools: list[IO[bytes]] = ([tempfile.TemporaryFile() for _ in range(jobs)]  # noqa: SIM115
                               if render is not None else [])
    fds = [spool.fileno() for spool in spools]
    with _forked(jobs, _shard, (path, jobs, options, render, fds)) as pipes:
        yield from _merge_rounds(pipes, jobs, Merge(jobs, totals, follow=follow),
                                 spools, given)


def _messages(pipes: list[Connection], jobs: int) -> list[Any]:
    """Each worker's next message, in worker order; a worker's error line is raised."""
    messages = []
    for index, pipe in enumerate(pipes):
        try:
            message = pipe.recv()
        except EOFError:
            raise _ended(index, jobs) from None
        if isinstance(message, str):
            raise CapdissectError(message)
        messages.append(message)
    return messages


def _merge_rounds(pipes: list[Connection], jobs: int, merge: Merge,
                  spools: list[IO[bytes]], given: int) -> Iterator[Finished]:
    """The shards' reports, merged; the flows after the first *given*."""
    skip = given
    while True:
        reports: list[ShardReport] = _messages(pipes, jobs)
        for index, report in enumerate(reports if spools else ()):
            for _, item in report.retired:
                if isinstance(item.text, Spooled):
                    item.text.spool = spools[index]
        out = merge.round(reports)
        if skip:  # given by an earlier try, which stopped where these shards go on
            dropped = min(skip, len(out))
            del out[:dropped]
            skip -= dropped
        yield from out
        if reports[0].end is not None:
            return


def _shard(index: int, out: Connection, path: str, jobs: int, options: ShardOptions,
           render: Render | None, spools: list[int]) -> None:
    """Worker *index*: track shard *index* of *path*, and send its reports (with *render*,
    its flows' events made text in spool file *spools[index]*)."""
    events, limit, pinned, udp_alone, plan = options
    shard = Shard(index, jobs, events=events, limit=limit, pinned=pinned,
                  udp_alone=udp_alone, plan=plan)
    spooled = _Spooler(render, spools[index] if spools else -1)
    _run_shard(index, out, path, shard, lambda report, _frames: spooled.report(report),
               spooled.report)


def _run_shard(index: int, out: Connection, path: str, shard: Shard,
               each: Callable[[ShardReport, int], object],
               last: Callable[[ShardReport], object], keep: Keep | None = None) -> None:
    """Worker *index*: feed *shard* the capture at *path* (the packets *keep* lets
    through), and send what *each* makes of its report (and the frames read) every
    ``TRACK_ROUND`` frames, then what *last* makes of its last one; or the error that
    stopped it, as one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
    PROGRESS.set(None)  # no progress bar from each worker
    frames = 0
    damage = None
    message: object
    try:
        with open_capture(path) as capture:
            due = TRACK_ROUND
            try:
                for frames in fed(capture, shard, keep):
                    if frames >= due:
                        _post(out, each(shard.report(frames), frames))
                        if shard.serial_from is not None:
                            return  # the parent starts again
                        due = frames + TRACK_ROUND
            except CaptureError as exc:  # frames: the last one read whole
                damage = Truncation(frames, exc)
        message = last(shard.end(frames, damage))
    except CapdissectError as exc:
        message = str(exc)
    except Exception as exc:  # a bug of ours: one line from the parent, not a traceback
        message = f"worker process {index} failed: {exc!r}"
    _post(out, message)


class _Spooler:
    """A worker's flows' events made text by *render* and written to the spool file
    *fd*; without *render*, nothing."""

    def __init__(self, render: Render | None, fd: int) -> None:
        self.render = render
        self.fd = fd
        self.end = 0

    def report(self, report: ShardReport) -> ShardReport:
        """*report* with its flows' events as ``Spooled`` text (and not as events)."""
        render = self.render
        if render is None:
            return report
        retired = []
        first_ts = report.first_ts or 0.0  # (None only before any packet: no flow yet)
        for place, item in report.retired:
            start = self.end
            for piece in render(item, first_ts):
                self.write(piece.encode())
            retired.append((place, item._replace(events=(),
                                                 text=Spooled(start, self.end - start))))
        return report._replace(retired=retired)

    def write(self, data: bytes) -> None:
        """*data* at the end of the spool file."""
        written = 0
        try:
            while written < len(data):
                written += os.pwrite(self.fd, data[written:], self.end + written)
        except OSError as exc:  # a full disk: one line from the parent
            raise CapdissectError(f"cannot write a worker's spool file in "
                                  f"{tempfile.gettempdir()}: {exc.strerror or exc}") from None
        self.end += len(data)


def fed(capture: CaptureFile, shard: Shard, keep: Keep | None = None) -> Iterator[int]:
    """Feed *shard* the capture, at most ``TRACK_ROUND`` packets at a time; how many
    frames were read after each.  A classic pcap file's records become packets only in
    the shard whose flow they are, unless *keep* must see each: then only the packets
    it lets through are fed (the others are not there for the tracker, as for tcpdump)."""
    frames = 0
    if keep is not None:
        for packets in capture.lists():
            for start in range(0, len(packets), TRACK_ROUND):
                for raw in packets[start:start + TRACK_ROUND]:
                    frames += 1
                    if keep(raw):
                        shard.feed(frames, raw)
                yield frames
        return
    if capture.format == "pcap":
        for batch in capture.batches():
            for start in range(0, len(batch), TRACK_ROUND):
                frames = shard.feed_batch(frames, batch, start,
                                          min(start + TRACK_ROUND, len(batch)))
                yield frames
        return
    for packets in capture.lists():
        for start in range(0, len(packets), TRACK_ROUND):
            frames = shard.feed_list(frames, packets[start:start + TRACK_ROUND])
            yield frames


# ----- read's annotated text: the packets of each shard's flows, put back in order ----
# A worker marks each conversation id it writes (its own numbering) between two of these,
# and ends each packet's text with the other: neither is in any text (bytes from a
# capture are escaped), so the parent splits a round's text at C speed.
_MARK: Final = "\x01"
_END: Final = "\x02"
# A worker's round: its shard's report (no flows), the ids of its flows retired in the
# round, the frames of its packets, where their texts are in its spool file (from, to:
# UTF-8, each text ended by _END), the frame where it gave the checksum note (0: not in
# this round), and the first frame it cannot word alone (0: none).  The texts go through
# a file, not the pipe: a worker goes on with its next rounds while the parent still
# waits for the other's (through the pipe, on the short bench mix, one worker took
# 6.2 s of wall time for its 4.5 s of CPU, waiting its turn).
_TextRound = tuple[ShardReport, list[int], list[int], tuple[int, int], int, int]


class Wording(Protocol):
    """What words a worker's packets (commands/read.py ``Worder``)."""

    verbose: bool  # tcpdump's -v: an ICMP error prints the TCP segment it quotes

    @property
    def noted(self) -> bool: ...  # the loopback checksum note was given

    def text(self, number: int, pkt: Packet, seen: Observation | None) -> str: ...


# A Wording for a shard's tracker, writing conversation ids with the function given.
MakeWording = Callable[["Tracker", Callable[[int], str]], Wording]
# the wording, the filter; pinned, udp_alone, plan
TextOptions = tuple[MakeWording, Keep | None, frozenset[int], bool, Plan]


def sharded_text(path: str | Path, jobs: int, wording: MakeWording, keep: Keep | None,
                 one_process: Callable[[], Iterator[str]], *, limit: int | None = None
                 ) -> Iterator[list[str]]:
    """``read``'s annotated text of *path*, exactly as *one_process* gives it: the texts
    (made by *wording*) of the packets *keep* lets through (at most *limit*), a round's
    worth at a time, made by *jobs* worker processes that each track and word their
    share of the connections (``sharded_flows``'s shards).  The parent puts them in
    frame order, numbers the conversations the texts name as one tracker does, and keeps
    the loopback checksum note at its first packet only.  Where the shards cannot follow
    one tracker (or, with -v, an ICMP error quotes a packet whose printing shares a
    connection's relative sequence numbers), the texts already given are skipped in
    those made again."""
    def attempt(pinned: frozenset[int], udp_alone: bool, plan: Plan, given: int
                ) -> Iterator[list[str]]:
        rounds = _worded(str(path), jobs, (wording, keep, pinned, udp_alone, plan))
        return _limited(rounds, given, limit)

    return _tried(str(path), jobs, attempt,
                  lambda given: _chunked(itertools.islice(one_process(), given, None)),
                  lambda: None, len)


def _limited(rounds: Iterator[list[str]], given: int, limit: int | None
             ) -> Iterator[list[str]]:
    """The texts of *rounds* after the first *given*, to the *limit*-th in all."""
    skip = given
    for texts in rounds:
        if skip:
            dropped = min(skip, len(texts))
            del texts[:dropped]
            skip -= dropped
        if limit is not None and given + len(texts) >= limit:
            del texts[limit - given:]
        if texts:
            given += len(texts)
            yield texts
        if limit is not None and given >= limit:
            return


def _chunked(texts: Iterator[str]) -> Iterator[list[str]]:
    """*texts* a ``ROUND`` at a time; at a damaged file, those before it, then its error."""
    rest: list[str] = []
    try:
        for text in texts:
            rest.append(text)
            if len(rest) == ROUND:
                yield rest
                rest = []
    except CapdissectError:
        if rest:
            yield rest
        raise
    if rest:
        yield rest


def _worded(path: str, jobs: int, options: TextOptions) -> Iterator[list[str]]:
    """Each round's texts, from *jobs* text shards, each with a spool file (temporary:
    gone once closed)."""
    with contextlib.ExitStack() as spools:
        fds = [spools.enter_context(tempfile.TemporaryFile()).fileno() for _ in range(jobs)]
        yield from _worded_rounds(path, jobs, options, fds)


def _worded_rounds(path: str, jobs: int, options: TextOptions, fds: list[int]
                   ) -> Iterator[list[str]]:
    """``_worded`` with the workers' spool files *fds*."""
    from capdissect.report.annotate import ANNOTATION_PREFIX, LOOPBACK_NOTE

    note = f"\n{ANNOTATION_PREFIX}{LOOPBACK_NOTE}"
    merge = Merge(jobs, Totals())
    # each worker's flow ids, as it writes them -> the flow's id, as the text says it
    ids: list[dict[str, str]] = [{} for _ in range(jobs)]
    next_id = 1
    noted = False
    with _forked(jobs, _text_shard, (path, jobs, options, fds)) as pipes:
        while True:
            rounds: list[_TextRound] = _messages(pipes, jobs)
            reports = [message[0] for message in rounds]
            merge.bounds(reports)
            alone_from = min((message[5] for message in rounds if message[5]), default=0)
            if alone_from:
                raise Diverged(f"frame {alone_from}: an ICMP error quotes a TCP segment")
            for _, shard, flow_id in sorted(
                    (frame, shard, flow_id) for shard, report in enumerate(reports)
                    for frame, flow_id in report.started):
                ids[shard][str(flow_id)] = str(next_id)
                next_id += 1
            frames: list[int] = []
            texts: list[str] = []
            notes: list[int] = []  # where in texts a worker gave the checksum note
            makers = 0
            for shard, (_, retired, mine, (start, stop), noted_at, _) in enumerate(rounds):
                if mine:
                    makers += 1
                    block = _spooled(fds[shard], start, stop)
                    if _MARK in block:
                        parts = block.split(_MARK)
                        named = ids[shard]
                        parts[1::2] = [named[flow] for flow in parts[1::2]]
                        block = "".join(parts)
                    worded = block.split(_END)
                    del worded[-1]  # (after the last packet's end)
                    if noted_at:
                        notes.append(len(texts) + mine.index(noted_at))
                    frames += mine
                    texts += worded
                for flow_id in retired:
                    del ids[shard][str(flow_id)]
            if notes:  # the first in the capture stays
                notes.sort(key=frames.__getitem__)
                for at in notes[1 if not noted else 0:]:
                    texts[at] = texts[at].replace(note, "", 1)
                noted = True
            if makers > 1:
                texts = [texts[at] for at in sorted(range(len(frames)), key=frames.__getitem__)]
            yield texts
            if merge.ended(reports):
                truncated = merge.totals.truncated
                if truncated is not None:
                    raise truncated.error
                return


def _spooled(fd: int, start: int, stop: int) -> str:
    """Bytes *start* to *stop* of the spool file *fd*, as text; read once, they are
    given back to the file system (``_release``)."""
    data = os.pread(fd, stop - start, start)
    while len(data) < stop - start:
        more = os.pread(fd, stop - start - len(data), start + len(data))
        if not more:
            raise CapdissectError("a worker's spool file ended early (disk full?)")
        data += more
    _release(fd, start, stop - start)
    return data.decode()


def _release(fd: int, start: int, length: int) -> None:
    """Free the disk and page cache under *length* bytes of file *fd* from *start*
    (Linux's hole punching; the file keeps its size): a worker's text spool then holds
    only the rounds the parent has not read, not the whole capture's text (339 MB for
    the short bench mix, gigabytes for a big capture, in the temporary directory).
    Where the system cannot (another kernel or file system), the bytes stay."""
    fallocate = _fallocate()
    if fallocate is not None and length > 0:
        fallocate(fd, _PUNCH_HOLE | _KEEP_SIZE, start, length)  # (-1: the bytes stay)


_KEEP_SIZE: Final = 0x01  # linux/falloc.h
_PUNCH_HOLE: Final = 0x02


@functools.cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """The C library's fallocate(2) with 64-bit offsets, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # (only here: a few ms of start-up)

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    # fallocate64 takes 64-bit offsets; fallocate surely does only on a 64-bit system, so
    # it is used only there (a C library may lack the *64 names).
    function = getattr(libc, "fallocate64", None)
    if function is None and ctypes.sizeof(ctypes.c_void_p) == 8:
        function = getattr(libc, "fallocate", None)
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    function.restype = ctypes.c_int
    found: Callable[[int, int, int, int], int] = function
    return found


def _text_shard(index: int, out: Connection, path: str, jobs: int,
                options: TextOptions, spools: list[int]) -> None:
    """Worker *index*: track shard *index* of *path* and send each round the text of
    each of its packets (tcpdump's, then the annotations), with its conversations'
    ids marked for the parent; shard 0 also words the packets no shard tracks."""
    from capdissect.tracking.tracker import IcmpUpdate

    wording, keep, pinned, udp_alone, plan = options
    shard = Shard(index, jobs, pinned=pinned, udp_alone=udp_alone, plan=plan)
    words = wording(shard.tracker, lambda conv: f"{_MARK}{conv}{_MARK}")
    frames: list[int] = []
    texts: list[str] = []
    noted = [0, 0]  # the frame of the checksum note; the first frame one process must word

    def watch(frame: int, pkt: Packet, seen: Observation | None) -> None:
        given = words.noted
        frames.append(frame)
        texts.append(words.text(frame, pkt, seen))
        texts.append(_END)
        if words.noted and not given:
            noted[0] = frame
        if (words.verbose and isinstance(seen, IcmpUpdate) and seen.quoted is None
                and not noted[1]):
            noted[1] = frame

    shard.watch = watch
    shard.strays = index == 0
    spool = _Spooler(None, spools[index])

    def each(report: ShardReport, _frames: int) -> _TextRound:
        retired = [item.flow.id for _, item in report.retired]
        start = spool.end
        spool.write("".join(texts).encode())
        message = (report._replace(retired=[]), retired, frames[:], (start, spool.end),
                   noted[0], noted[1])
        frames.clear()
        texts.clear()
        noted[0] = 0
        return message

    _run_shard(index, out, path, shard, each, lambda report: each(report, 0), keep)


# ----- sockets: the table's facts from the shards (tracking/sockets.py ShardSockets) ----
# The lines a report makes of the facts of the capture's frames that matter.
SocketReport = Callable[[Iterator["Facts | End"]], Iterator[str]]
# pinned, udp_alone, plan
SocketOptions = tuple[frozenset[int], bool, Plan]
# A worker's round: its shard's report (no flows), what it told, the first frame it has
# not told for good (in the last round: before the end), and at the end the time of the
# last packet.
_SocketRound = tuple[ShardReport, "list[Told]", int, float]


def sharded_sockets(path: str | Path, jobs: int, totals: Totals, report: SocketReport,
                    one_process: Callable[[], Iterator[str]],
                    marks: list[tuple[int, float]]) -> Iterator[str]:
    """The lines *report* makes of *path*'s socket table, exactly as *one_process* makes
    them, from *jobs* worker processes that each track their share of the connections
    (``sharded_flows``'s shards) and tell what of their facts may change the table.
    The facts come in frame order: the first frame's, those of every frame where a
    shard told something, and of the frames in *marks* ((frame, time), the frames a
    snapshot is taken after).  *totals* says at the end how the capture ended.  Where
    the shards cannot follow one tracker, the lines already given are skipped in those
    made again."""
    def attempt(pinned: frozenset[int], udp_alone: bool, plan: Plan, given: int
                ) -> Iterator[str]:
        lines = report(_told(str(path), jobs, totals, (pinned, udp_alone, plan), marks))
        return itertools.islice(lines, given, None)

    return _tried(str(path), jobs, attempt,
                  lambda given: itertools.islice(one_process(), given, None), totals.restart)


def snapshot_marks(path: str | Path, *, after: int | None = None,
                   at: tuple[float, bool] | None = None) -> list[tuple[int, float]]:
    """The frames (with their times) a snapshot's facts must include for
    ``sharded_sockets``: frame *after*; or, for *at* ((seconds, absolute) as
    ``parse_time`` gives it), the last frame before the first one past it, and that
    one.  Nothing when the capture ends first (the last frame is given anyway)."""
    if after is None and at is None:
        return []
    last: tuple[int, float] | None = None
    target = None
    with open_capture(path) as capture:
        try:
            for frame, ts in enumerate(_times(capture), 1):
                if target is None and at is not None:
                    target = at[0] if at[1] else ts + at[0]
                if frame == after:
                    return [(frame, ts)]
                if target is not None and ts > target:
                    return [*([last] if last else []), (frame, ts)]
                last = frame, ts
        except CapdissectError:  # the report stops at the damage, and says so
            pass
    return []


def _times(capture: CaptureFile) -> Iterator[float]:
    """Each packet's time, as ``RawPacket.ts`` has it (a classic pcap's from its
    records, without making packets)."""
    if capture.format == "pcap":
        for batch in capture.batches():
            for i in range(len(batch)):
                yield batch.ts_sec(i) + batch.ts_nsec(i) / 1e9
        return
    for packets in capture.lists():
        for raw in packets:
            yield raw.ts


def _told(path: str, jobs: int, totals: Totals, options: SocketOptions,
          marks: list[tuple[int, float]]) -> Iterator[Facts | End]:
    """The facts of the frames that matter, from *jobs* socket shards."""
    from capdissect.tracking.sockets import NO_FRAME, told_facts

    merge = Merge(jobs, totals)
    pending: list[Told] = []
    wanted = dict(marks)  # frame -> its time: facts given even if nothing was told
    started = False  # the first frame is wanted (the report's times count from it)
    with _forked(jobs, _socket_shard, (path, jobs, options)) as pipes:
        while True:
            messages: list[_SocketRound] = _messages(pipes, jobs)
            reports = [message[0] for message in messages]
            for _, told, _, _ in messages:
                pending.extend(told)
            frontier = min(message[2] for message in messages)
            last_ts = messages[0][3]  # (every worker reads every packet)
            merge.bounds(reports)
            first = reports[0].first_ts
            if first is not None and not started:
                wanted.setdefault(1, first)
                started = True
            done = reports[0].end is not None
            if done and reports[0].frames:
                wanted.setdefault(reports[0].frames, last_ts)
            release = NO_FRAME if done else frontier
            pending.sort(key=_frame)
            cut = bisect.bisect_left(pending, release, key=_frame)
            groups: dict[int, list[Told]] = {}
            for entry in pending[:cut]:
                groups.setdefault(entry[0], []).append(entry)
            del pending[:cut]
            for frame in [frame for frame in wanted if frame < release]:
                ts = wanted.pop(frame)
                if frame not in groups:
                    groups[frame] = [(frame, ts, None, None, None, None, (), (), ())]
            for frame in sorted(groups):
                # One process settles these facts only at the end of the capture: a
                # report that asks for them has read to the end (and its damage).
                if done and frame >= frontier and not totals.done:
                    merge.ended(reports)
                yield told_facts(groups[frame])
            if done:
                if not totals.done:
                    merge.ended(reports)
                yield End(totals.packets, totals.icmp_unreachable, totals.evicted, [],
                          totals.truncated)
                return


def _frame(told: Told) -> int:
    return told[0]


def _socket_shard(index: int, out: Connection, path: str, jobs: int,
                  options: SocketOptions) -> None:
    """Worker *index*: track shard *index* of *path*, settle its facts for the socket
    table, and send what of them may change it, a round at a time.  The last round says
    the first frame whose facts waited for the end of the capture."""
    from capdissect.tracking.sockets import ShardSockets

    pinned, udp_alone, plan = options
    shard = Shard(index, jobs, pinned=pinned, udp_alone=udp_alone, plan=plan)
    table = ShardSockets(index, jobs)
    shard.on_step = table.step

    def each(report: ShardReport, frames: int) -> _SocketRound:
        return _flowless(report), table.take(), table.frontier(frames), 0.0

    def last(report: ShardReport) -> _SocketRound:
        waited = table.frontier(report.frames)
        table.finish([flow for flow, _ in shard.gone])
        return _flowless(report), table.take(), waited, shard.last_ts

    _run_shard(index, out, path, shard, each, last)


def _flowless(report: ShardReport) -> ShardReport:
    """*report* without its flows: the parent of the socket shards counts them only."""
    return report._replace(started=[], retired=[])


def _post(out: Connection, message: object) -> None:
    try:
        out.send(message)
    except OSError:  # the parent went away (Ctrl-C, | head)
        os._exit(0)
