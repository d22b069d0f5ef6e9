"""The console script (``capdissect``, ``python -m capdissect``), and what every command's
output and errors go through.

Start-up is most of a small capture's time: typer, with its click and pydantic, takes
about 0.2 s before a packet is read, where tcpdump's whole run takes 0.01 s.  So the
commands a learner runs at each step and a script once per file (``read``, ``flows``,
``timeline``, ``sockets``) are parsed here, without the typer app, when their command
line is one click takes as it stands (``parse_command``).  Anything else (help, a
misspelt option, a missing file name, options that exclude each other, shell
completion, the other commands) goes to typer (capdissect/cli.py), which says exactly
what it always said; tests/e2e/test_startup.py checks that the two parses agree.

This module imports nothing the ``read --plain`` path does not use: each command's
library is imported when it runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeAlias

from capdissect.commands.terminal import (
    COLOUR,
    ColourChoice,
    discard_stdout,
    given_together,
    os_message,
    run_flows,
    run_read,
    run_sockets,
    run_timeline,
    say,
    standard_streams,
)

# ----- the fast parse -----------------------------------------------------------------
_FLAG, _COUNT, _NUMBER, _TEXT = range(4)  # what an option holds


# The commands parsed here, each option as typed with its parameter and kind.  These are
# the typer commands' options (capdissect/cli.py), with the same defaults: False, 0 or
# None.  Help (-h, --help) and anything not listed leave the command line to typer.
_COMMANDS: Final[dict[str, dict[str, tuple[str, int]]]] = {
    "read": {"-n": ("n", _COUNT), "-v": ("v", _COUNT), "-X": ("X", _COUNT),
             "-x": ("x", _COUNT), "-t": ("t", _COUNT), "-e": ("e", _FLAG),
             "-S": ("S", _FLAG), "-K": ("K", _FLAG), "-c": ("count", _NUMBER),
             "--plain": ("plain", _FLAG), "--json": ("json", _FLAG),
             "-j": ("jobs", _NUMBER), "--jobs": ("jobs", _NUMBER)},
    "flows": {"--json": ("json", _FLAG), "--csv": ("csv", _FLAG), "--wide": ("wide", _FLAG),
              "-j": ("jobs", _NUMBER), "--jobs": ("jobs", _NUMBER)},
    "timeline": {"--conn": ("conn", _NUMBER), "--mermaid": ("mermaid", _FLAG),
                 "--json": ("json", _FLAG), "--svg": ("svg", _TEXT),
                 "--calls": ("calls", _TEXT), "-j": ("jobs", _NUMBER),
                 "--jobs": ("jobs", _NUMBER)},
    "sockets": {"--at": ("at", _TEXT), "--after": ("after", _NUMBER),
                "--every": ("every", _FLAG), "-j": ("jobs", _NUMBER),
                "--jobs": ("jobs", _NUMBER)},
}
_MAX_DIGITS: Final = 9  # a longer number (or one with a sign or a space) is left to click

Parsed: TypeAlias = tuple[Callable[..., None], dict[str, Any], ColourChoice | None]


def parse_command(args: list[str]) -> Parsed | None:
    """A command line (after the program's name) as click parses it: the function that
    runs the command, its arguments, and the ``--color`` choice.  None for anything
    click would answer otherwise than by running the command (help, a usage error) or
    that this parser does not know to be the same: typer parses those (slower, never
    different).

    Click's rules: options and words may come in any order; ``--`` ends the options;
    ``-`` alone is a word; short options combine (``-nnv``, ``-nc5``, ``-c 5``); an
    option's value is the rest of its word or the next word, whatever it looks like;
    a repeated option keeps its last value.
    """
    if not args or args[0] not in _COMMANDS:
        return None
    name, spec = args[0], _COMMANDS[args[0]]
    params: dict[str, Any] = {param: 0 if kind == _COUNT else False if kind == _FLAG else None
                              for param, kind in spec.values()}
    colours: list[ColourChoice] = []
    words: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--":
            words += rest
            break
        if arg[:1] != "-" or arg == "-":
            words.append(arg)
            continue
        long = arg.startswith("--")
        option, eq, value = arg.partition("=") if long else (arg[:2], "", arg[2:])
        while True:  # once for a long option; for each letter of -nnv
            if option in ("--color", "--no-color"):
                given = _colour(option, eq, value, rest)
                if given is None:
                    return None
                colours.append(given)
                break
            param, kind = spec.get(option, ("", -1))
            if kind in (_NUMBER, _TEXT):
                found = value if eq or (value and not long) else next(rest, None)
                if found is None:
                    return None
                if kind == _NUMBER:
                    if not (found.isascii() and found.isdigit() and len(found) <= _MAX_DIGITS):
                        return None
                    params[param] = int(found)
                else:
                    params[param] = found
                break
            if kind == _COUNT:
                params[param] += 1
            elif kind == _FLAG and not eq:
                params[param] = True
            else:  # not an option of this command, or a flag given a value
                return None
            if long or not value:
                break
            option, value = f"-{value[0]}", value[1:]
    if not words or len(colours) > 1:
        return None
    return _command(name, words, params, colours[0] if colours else None)


def _colour(option: str, eq: str, value: str, rest: Iterator[str]) -> ColourChoice | None:
    if option == "--no-color":
        return None if eq else ColourChoice.never
    found = value if eq else next(rest, "")
    try:
        return ColourChoice(found)
    except ValueError:
        return None


def _command(name: str, words: list[str], params: dict[str, Any],
             colour: ColourChoice | None) -> Parsed | None:
    """The parsed command, once the checks its typer command makes before running (its
    words, the options that exclude each other) pass; else None."""
    path = words[0]
    if name == "read":
        from capdissect.commands.read import ReadOptions

        # tcpdump joins the words after the options into one expression (copy_argv).
        expression = " ".join(words[1:]).strip() or None
        return run_read, {"path": path, "options": ReadOptions(expression=expression,
                                                                **params)}, colour
    if len(words) > 1:
        return None
    run: Callable[..., None]
    if name == "flows":
        clash, run = given_together(json=params["json"], csv=params["csv"]), run_flows
    elif name == "timeline":
        clash = given_together(mermaid=params["mermaid"], json=params["json"],
                               svg=params["svg"])
        run = run_timeline
    else:
        clash = given_together(at=params["at"], after=params["after"], every=params["every"])
        if params["after"] is not None and params["after"] < 1:
            return None
        run = run_sockets
    if clash:
        return None
    return run, {"path": path, **params}, colour


def _fast_path(argv: list[str]) -> bool:
    """Run ``read``, ``flows``, ``timeline`` or ``sockets`` here if parse_command takes
    the command line (and answer ``--version`` alone); False if typer must.  Exits as
    typer's command would have (SystemExit: 0, the command's own status, 130 on Ctrl-C)."""
    # click's shell completion answers instead of running when _<PROG>_COMPLETE is set.
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return False
    if argv[1:] == ["--version"]:
        from capdissect._version import __version__

        sys.stdout.write(f"capdissect {__version__}\n")
        sys.stdout.flush()
        raise SystemExit(0)
    parsed = parse_command(argv[1:])
    if parsed is None:
        return False
    run, kwargs, colour = parsed
    if colour is not None:
        COLOUR.set(colour)
    try:
        run(**kwargs)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(0)


def main() -> None:
    # Default SIGPIPE handling would print a traceback from the interpreter's flush.
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    standard_streams()
    try:
        if not _fast_path(sys.argv):
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
