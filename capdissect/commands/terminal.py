"""What every command's output and errors go through, at the terminal: colour, the
one-line errors and exit statuses (``cli_errors``), standard output that may be closed
or full, and the four commands the console script runs without typer (``run_read``,
``run_flows``, ``run_timeline``, ``run_sockets``).

This module imports nothing the ``read --plain`` path does not use: each command's
library is imported when it runs.
"""


from __future__ import annotations

import contextlib
import enum
import errno
import io
import os
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO, cast

from capdissect.errors import CapdissectError, OutputError
from capdissect.report.text import clean
from capdissect.sources.files import PROGRESS

if TYPE_CHECKING:
    from capdissect.commands.progress import ProgressBar
    from capdissect.commands.read import ReadOptions


class ColourChoice(enum.StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


# The command line's choice, set by the options' callbacks before the command runs.
COLOUR: ContextVar[ColourChoice] = ContextVar("capdissect_colour", default=ColourChoice.auto)


def colour_wanted(stream: TextIO) -> bool:
    """Colour for *stream*? ``--color always``/``never`` decide; ``auto`` (the default)
    means a terminal, unless ``NO_COLOR`` is set (no-color.org)."""
    choice = COLOUR.get()
    if choice is not ColourChoice.auto:
        return choice is ColourChoice.always
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def painted(texts: Iterable[str]) -> Iterator[str]:
    """A text report coloured when stdout wants colour (``--color``, a terminal,
    ``NO_COLOR``); tcpdump's --plain text and the machine formats never come here."""
    if not colour_wanted(sys.stdout):
        return iter(texts)
    from capdissect.report.colour import highlight_lines

    return highlight_lines(texts)


def say(text: str) -> None:
    """One line on stderr, with control characters made harmless: file names and the
    messages that quote them come from outside (a name can hold terminal escapes).
    (``clean`` leaves no escape sequence, so this is what ``typer.echo`` would write.)"""
    sys.stderr.write(clean(text) + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def cli_errors(progress: str | None = None) -> Iterator[ProgressBar | None]:
    """Turn a CapdissectError into one line on stderr and exit status 1.

    With *progress* (a label), a capture file read inside the block shows a progress bar
    when stderr is a terminal; the block gets the bar, to clear it before printing.
    The exits are SystemExit, which typer lets through as it does its own Exit.
    """
    bar = None
    if progress and sys.stderr.isatty():  # a bar only where someone watches
        from capdissect.commands.progress import ProgressBar

        bar = ProgressBar(sys.stderr, clean(progress))
    token = PROGRESS.set(bar)
    try:
        yield bar
    except CapdissectError as exc:
        # What was printed before the error still goes out; if it cannot, that loss is
        # what the user must hear of (the one line names stdout, not the input's damage).
        lost = _flush_stdout()
        if bar is not None:
            bar.clear()
        say(f"capdissect: {exc if lost is None else lost}")
        raise SystemExit(1) from None
    except BrokenPipeError:
        # `capdissect read F | head`: the reader went away; leave quietly like tcpdump.
        discard_stdout()
        raise SystemExit(0) from None
    except OSError as exc:  # an output failed where it is not named (live's own writes)
        discard_stdout()
        say(f"capdissect: {os_message(exc)}")
        raise SystemExit(1) from None
    finally:
        PROGRESS.reset(token)
        if bar is not None:
            bar.clear()


def _flush_stdout() -> OutputError | None:
    """Write out what stdout holds; if it cannot take it, drop it (see discard_stdout)
    and return why."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        discard_stdout()
        return OutputError.from_os("standard output", exc)
    return None


def discard_stdout() -> None:
    """After stdout failed (a full disk, a closed pipe), point its descriptor at /dev/null,
    so the interpreter's last flush of what is still buffered cannot fail again."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def os_message(exc: OSError) -> str:
    return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror or str(exc)


@contextlib.contextmanager
def stdout_errors() -> Iterator[None]:
    """A failed write to stdout (a full disk, `>&-`) as one OutputError; a broken pipe
    stays itself (cli_errors leaves quietly then)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError.from_os("standard output", exc) from None


class _ClosedOutput(io.TextIOBase):
    """stdout when the command was started with it closed (`>&-`): the first write fails
    as `cat >&-` does ("Bad file descriptor"), so the user learns the output went nowhere."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


class _Messages(io.TextIOBase):
    """stderr, where a failed write is dropped: messages (the banner, the progress bar,
    the error line) must never cost the output, as when stderr is closed; tcpdump, too,
    goes on when its messages cannot be written.  The exit status still tells."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def standard_streams() -> None:
    """Closed standard streams (`<&-`, `>&-`, `2>&-`) made safe before anything runs.

    Each closed descriptor is taken at once by /dev/null, so that no file opened later
    becomes descriptor 0, 1 or 2 (output would then be written into it).  Then a closed
    stdin stays None (``read -`` says it is closed), a closed stdout fails at the first
    write with one line, and a closed (or full) stderr only loses messages: the command
    still runs, prints its output and exits with its status.
    """
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            null = os.open(os.devnull, mode)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if fd == 1:
            sys.stdout = cast(TextIO, _ClosedOutput())
        elif fd == 2:
            sys.stderr = open(fd, "w", closefd=False)  # noqa: SIM115 - lives as long as we do
    sys.stderr = cast(TextIO, _Messages(sys.stderr))


# ----- read ---------------------------------------------------------------------------
def run_read(path: str, options: ReadOptions) -> None:
    """The ``read`` command once its command line is parsed (by click or parse_command)."""
    from capdissect.commands.read import read_lines

    # tcpdump rejects these as user errors (one line, exit 1), before reading anything.
    problem = None
    if options.count is not None and options.count < 1:
        problem = f"invalid packet count {options.count}"
    elif options.t > 5 and not options.json:  # --json ignores the text options
        problem = "only -t, -tt, -ttt, -tttt and -ttttt are supported"
    elif options.jobs is not None:
        from capdissect.commands.rounds import check_jobs

        problem = check_jobs(path, options.jobs)
        if problem is None and options.jobs > 1 and not options.json:
            from capdissect.commands.read import text_jobs_problem

            problem = text_jobs_problem(options)
    if problem is not None:
        say(f"capdissect: {problem}")
        raise SystemExit(1)
    with cli_errors(progress=Path(path).name) as bar:
        # tcpdump's "reading from file" line goes to stderr, so stdout stays the packets.
        if options.json and (options.jobs or 1) > 1:  # by workers, a round at a time
            _write_blocks(path, options, bar)
            return
        lines = read_lines(path, options, banner=say)
        _write_lines(lines if options.plain or options.json else painted(lines), bar)


def _write_blocks(path: str, options: ReadOptions, bar: ProgressBar | None) -> None:
    """``read --json -j N`` to stdout: the workers' blocks as bytes, most of them moved
    from their pipes to stdout by the kernel (``rounds.parallel_blocks``)."""
    from capdissect.commands.read import json_blocks

    out = sys.stdout
    raw = getattr(out, "buffer", None)  # none: stdout closed, or not a file
    clear = bar.clear if bar is not None and out.isatty() else None
    with stdout_errors():
        out.flush()  # (nothing yet: the banner goes to stderr)
        sink = None if raw is None or clear is not None else _descriptor(raw)
        for block in json_blocks(path, options, banner=say, sink=sink):
            if clear is not None:
                clear()
            if raw is None:
                out.write(block.decode("ascii"))
            else:  # before the next block is spliced after it
                raw.write(block)
                raw.flush()
        out.flush()


def _descriptor(stream: IO[bytes]) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _write_lines(texts: Iterable[str], bar: ProgressBar | None) -> None:
    """Each text and a newline to stdout: at once on a terminal, where someone watches
    (below them, the progress bar); elsewhere 256 at a time, as one write per packet was
    a third of ``read``'s time."""
    out = sys.stdout
    with stdout_errors():
        if out.isatty():
            for text in texts:
                if bar is not None:
                    bar.clear()
                out.write(text)
                out.write("\n")
        else:
            held: list[str] = []
            try:
                for text in texts:
                    held.append(text)
                    if len(held) == 256:
                        out.write("\n".join(held) + "\n")
                        held.clear()
            finally:  # a damaged file ends the loop: what was read before it is still printed
                if held:
                    out.write("\n".join(held) + "\n")
        out.flush()


# ----- timeline, flows, sockets: one library call each (capdissect/commands/reports.py) ----------
def write_pieces(pieces: Iterable[str], bar: ProgressBar | None = None) -> None:
    write = sys.stdout.write
    clear = bar.clear if bar is not None and sys.stdout.isatty() else None
    with stdout_errors():
        for piece in pieces:
            if clear is not None:
                clear()
            write(piece)
        sys.stdout.flush()


def given_together(**chosen: bool | int | str | None) -> list[str]:
    """The options of *chosen* that were given (``--name``), when more than one was:
    those cannot be used together."""
    given = [f"--{name}" for name, value in chosen.items() if value not in (None, False)]
    return given if len(given) > 1 else []


def checked_jobs(path: str, jobs: int | None) -> int:
    """``-j N`` of ``flows``, ``timeline``, ``sockets`` and ``handout``; a value that
    cannot be is one line, exit 1."""
    if jobs is None:
        return 1
    from capdissect.commands.rounds import check_jobs

    problem = check_jobs(path, jobs)
    if problem is not None:
        say(f"capdissect: {problem}")
        raise SystemExit(1)
    return jobs


def run_timeline(path: str, conn: int | None, mermaid: bool, json: bool, svg: str | None,
                 calls: str | None, jobs: int | None = None) -> None:
    from capdissect.commands import reports as analyze
    processes = checked_jobs(path, jobs)
    if svg is not None:
        with cli_errors(progress=Path(path).name):
            written = analyze.write_timeline_svg(path, svg, conn, calls, processes)
        say(f"wrote {written}")
        return
    with cli_errors(progress=Path(path).name) as bar:
        pieces = analyze.timeline(path, "json" if json else "mermaid" if mermaid else "text",
                                  conn, calls, processes)
        write_pieces(pieces if json or mermaid else painted(pieces), bar)


def run_flows(path: str, json: bool, csv: bool, wide: bool, jobs: int | None = None) -> None:
    from capdissect.commands import reports as analyze
    processes = checked_jobs(path, jobs)
    with cli_errors(progress=Path(path).name) as bar:
        if json or csv:
            write_pieces(analyze.flows(path, "json" if json else "csv", jobs=processes), bar)
        else:
            write_pieces(painted(analyze.flows(path, "table", wide=wide, jobs=processes)),
                         bar)


def run_sockets(path: str, at: str | None, after: int | None, every: bool,
                jobs: int | None = None) -> None:
    from capdissect.commands import reports as analyze
    processes = checked_jobs(path, jobs)
    with cli_errors(progress=Path(path).name) as bar:
        write_pieces(painted(analyze.sockets(path, at=at, after=after, every=every,
                                             jobs=processes)), bar)
