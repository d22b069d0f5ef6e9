"""The console script (``capdissect``, ``python -m capdissect``), and what every command's
output and errors go through.

Start-up is most of a small capture's time: typer, with its click and pydantic, takes
about 0.2 s before a packet is read, where tcpdump's whole run takes 0.01 s.  So
``read``, the command a learner runs at each step and a script once per file, is parsed
here, without the typer app, when its command line is one click takes as it stands
(``parse_read``).  Anything else (help, a misspelt option, a missing file name, shell
completion, every other command) goes to typer (capdissect/cli.py), which says exactly
what it always said; tests/test_startup.py checks that the two parses agree.

This module imports nothing the ``read --plain`` path does not use: the reader's
imports are its own (capdissect/reader.py), the annotations' are made when asked for.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import io
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from capdissect.capture.files import PROGRESS
from capdissect.errors import CapdissectError, OutputError
from capdissect.report.textsafe import clean

if TYPE_CHECKING:
    from capdissect.progress import ProgressBar
    from capdissect.reader import ReadOptions


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
        from capdissect.progress import ProgressBar

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


def _standard_streams() -> None:
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
    """The ``read`` command once its command line is parsed (by click or parse_read)."""
    from capdissect.reader import read_lines

    # tcpdump rejects these as user errors (one line, exit 1), before reading anything.
    problem = None
    if options.count is not None and options.count < 1:
        problem = f"invalid packet count {options.count}"
    elif options.t > 5 and not options.json:  # --json ignores the text options
        problem = "only -t, -tt, -ttt, -tttt and -ttttt are supported"
    if problem is not None:
        say(f"capdissect: {problem}")
        raise SystemExit(1)
    with cli_errors(progress=Path(path).name) as bar:
        # tcpdump's "reading from file" line goes to stderr, so stdout stays the packets.
        lines = read_lines(path, options, banner=say)
        _write_lines(lines if options.plain or options.json else painted(lines), bar)


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


_COUNTED = frozenset("nvXxt")  # -n, -v, -X, -x, -t: counted, as tcpdump's letters are
_FLAGS = frozenset("eSK")
_LONG_FLAGS = frozenset({"--plain", "--json"})
_MAX_COUNT_DIGITS = 9  # a longer -c (or one with a sign or a space) is left to click


def parse_read(args: list[str]) -> tuple[str, ReadOptions, ColourChoice | None] | None:
    """``read``'s arguments (after the word ``read``) as click parses them: the file,
    the options and the ``--color`` choice; None for anything click would answer
    otherwise than by running the command (help, an error) or that this parser does not
    know to be the same (then typer parses it: slower, never different).

    Click's rules: options and words may come in any order; ``--`` ends the options;
    ``-`` alone is a word; short options combine (``-nnv``, ``-nc5``, ``-c 5``); a
    repeated ``-c`` keeps the last.
    """
    from capdissect.reader import ReadOptions

    counts = dict.fromkeys(_COUNTED, 0)
    flags: set[str] = set()
    count: int | None = None
    colours: list[ColourChoice] = []
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            words += args[i:]
            break
        if arg[:1] != "-" or arg == "-":
            words.append(arg)
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _LONG_FLAGS and not eq:
                flags.add(name[2:])
            elif name == "--no-color" and not eq:
                colours.append(ColourChoice.never)
            elif name == "--color":
                if not eq:
                    if i == len(args):
                        return None
                    value, i = args[i], i + 1
                try:
                    colours.append(ColourChoice(value))
                except ValueError:
                    return None
            else:
                return None
        else:
            for j, letter in enumerate(arg[1:], 2):
                if letter in _COUNTED:
                    counts[letter] += 1
                elif letter in _FLAGS:
                    flags.add(letter)
                elif letter == "c":  # takes the rest of the word, or the next word
                    value = arg[j:]
                    if not value:
                        if i == len(args):
                            return None
                        value, i = args[i], i + 1
                    if not (value.isascii() and value.isdigit()
                            and len(value) <= _MAX_COUNT_DIGITS):
                        return None
                    count = int(value)
                    break
                else:
                    return None
    if not words or len(colours) > 1:
        return None
    path, expression = words[0], words[1:]
    options = ReadOptions(n=counts["n"], v=counts["v"], X=counts["X"], x=counts["x"],
                          t=counts["t"], e="e" in flags, S="S" in flags, K="K" in flags,
                          count=count, plain="plain" in flags, json="json" in flags,
                          # tcpdump joins the words after the options into one (copy_argv).
                          expression=" ".join(expression).strip() or None)
    return path, options, (colours[0] if colours else None)


def _fast_read(argv: list[str]) -> bool:
    """Run ``capdissect read ...`` here if parse_read takes its command line; False if
    typer must.  Exits as typer's command would have (SystemExit, 130 on Ctrl-C)."""
    if len(argv) < 2 or argv[1] != "read":
        return False
    # click's shell completion answers instead of running when _<PROG>_COMPLETE is set.
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return False
    parsed = parse_read(argv[2:])
    if parsed is None:
        return False
    path, options, colour = parsed
    if colour is not None:
        COLOUR.set(colour)
    try:
        run_read(path, options)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(0)


def main() -> None:
    # Default SIGPIPE handling would print a traceback from the interpreter's flush.
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _standard_streams()
    try:
        if not _fast_read(sys.argv):
            from capdissect.cli import app

            app()
    except OSError as exc:  # outside cli_errors: --version, demo --list on a full disk
        if exc.errno == errno.EPIPE:
            sys.exit(0)
        discard_stdout()
        say(f"capdissect: {os_message(exc)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
