"""What every command shares: its help page and the ``--color``/``--no-color`` options.

``App`` is a ``typer.Typer`` whose commands are all ``Command``: a new ``@app.command()``
gets the help layout and the colour options with no code of its own.

The help page is written here rather than by typer's rich panels, which show type
metavars (``<int>``, ``<bool>``), a counted flag as ``-n <int> [default: 0]`` and cut
lines mid-sentence.  Here a flag is its letters, an option taking a value shows the
value's name (``-c N``, ``--proto tcp|udp|all``), every paragraph is wrapped at the
terminal's width, and so are the examples (a continued example is indented).
"""

from __future__ import annotations

import functools
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Final

import typer
import typer.main
from typer import _click as click  # typer's own copy of click, which its commands use
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from capdissect.commands.terminal import COLOUR, ColourChoice, colour_wanted
from capdissect.report.colour import paint

MIN_WIDTH: Final = 40
MAX_WIDTH: Final = 100  # past this, prose is hard to read; wider terminals get margin
OPTION_COLUMN: Final = 24  # the options' column, unless the longest is narrower


def _set_colour(ctx: click.Context, choice: ColourChoice | None) -> None:
    if choice is None:
        return
    COLOUR.set(choice)
    # click strips escapes from what it echoes (help, errors) off a terminal unless told.
    ctx.color = {"auto": None, "always": True, "never": False}[choice.value]


def _no_colour(ctx: click.Context, value: bool) -> None:
    if value:
        _set_colour(ctx, ColourChoice.never)


def _colour_holder(
    color: Annotated[ColourChoice | None, typer.Option(
        "--color", metavar="auto|always|never", expose_value=False, is_eager=True,
        callback=_set_colour, show_default=False,
        help="Colour states, phases, findings and addresses: auto (on a terminal, unless "
        "NO_COLOR is set), always or never.")] = None,
    no_color: Annotated[bool, typer.Option(
        "--no-color", expose_value=False, is_eager=True, callback=_no_colour,
        help="The same as --color never.")] = False,
) -> None:
    """Only its parameters are used: typer makes them into the options every command has."""


@functools.cache
def _colour_options() -> tuple[click.Parameter, ...]:
    # Eager, so that `--no-color --help` shows an uncoloured help page.  Made by typer
    # from a function's signature, as every other option is.
    holder = typer.Typer(add_completion=False)
    holder.command()(_colour_holder)
    return tuple(typer.main.get_command(holder).params)


def _width() -> int:
    return max(MIN_WIDTH, min(shutil.get_terminal_size((80, 24)).columns, MAX_WIDTH))


def _metavar(param: click.Parameter) -> str:
    if param.metavar:
        return param.metavar
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    return (param.name or "value").upper()


def _takes_value(param: click.Parameter) -> bool:
    return not (getattr(param, "is_flag", False) or getattr(param, "count", False))


def _usage_pieces(command: click.Command, ctx: click.Context) -> list[str]:
    pieces = [command.options_metavar or "[OPTIONS]"]
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = _metavar(param)
            if param.nargs == -1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _option_row(param: click.Parameter) -> tuple[str, str]:
    names = ", ".join(sorted(param.opts, key=len))
    if isinstance(param, TyperOption) and _takes_value(param):
        names += f" {_metavar(param)}"
    help_text = " ".join((getattr(param, "help", None) or "").split())
    default = param.default
    if (isinstance(param, TyperOption) and _takes_value(param) and default not in
            (None, "", False, (), []) and not callable(default)):
        shown = getattr(default, "value", default)
        help_text += f" (default: {shown})"
    return names, help_text


def _split_doc(doc: str) -> tuple[list[str], list[str]]:
    """The docstring's paragraphs, and its example lines (after "Examples:")."""
    prose: list[str] = []
    examples: list[str] = []
    target = prose
    for block in doc.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not lines or lines[0] == "\b":
            continue
        if lines[0] in ("Examples:", "Example:"):
            target = examples
            lines = lines[1:]
        if target is examples:
            examples += lines
        else:
            prose.append(" ".join(lines))
    return prose, examples


class _Page:
    """A help page being written: headings, wrapped paragraphs and two-column rows."""

    def __init__(self, colour: bool) -> None:
        self.width = _width()
        self.colour = colour
        self.lines: list[str] = []

    def style(self, text: str, style: str) -> str:
        return paint(text, style) if self.colour else text

    def heading(self, title: str) -> None:
        self.lines += ["", self.style(title, "heading")]

    def paragraph(self, text: str, indent: int = 2) -> None:
        self.lines += textwrap.wrap(text, self.width, initial_indent=" " * indent,
                                    subsequent_indent=" " * indent, break_on_hyphens=False)

    def rows(self, rows: Iterable[tuple[str, str]]) -> None:
        rows = list(rows)
        column = min(OPTION_COLUMN, max((len(left) for left, _ in rows), default=0) + 4)
        for left, right in rows:
            wrapped = textwrap.wrap(right, max(self.width - column, 20),
                                    break_on_hyphens=False) or [""]
            name = self.style(left, "option")
            if len(left) + 4 > column:  # too long for the column: its help on the next line
                self.lines.append(f"  {name}")
            else:
                self.lines.append(f"  {name}{' ' * (column - 2 - len(left))}{wrapped.pop(0)}")
            self.lines += [" " * column + line for line in wrapped]

    def examples(self, lines: Iterable[str]) -> None:
        for line in lines:
            wrapped = textwrap.wrap(line, self.width, initial_indent="  ",
                                    subsequent_indent="      ", break_on_hyphens=False,
                                    break_long_words=True)
            self.lines += [self.style(part, "example") for part in wrapped]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _help_colour(ctx: click.Context) -> bool:
    return bool(ctx.color) if ctx.color is not None else colour_wanted(sys.stdout)


def render_command_help(command: click.Command, ctx: click.Context) -> str:
    """A command's help page: usage, description, arguments, options, examples."""
    page = _Page(_help_colour(ctx))
    usage = " ".join([ctx.command_path, *_usage_pieces(command, ctx)])
    page.lines.append(page.style("Usage:", "heading") + " " + usage)
    prose, examples = _split_doc(command.help or "")
    for paragraph in prose:
        page.lines.append("")
        page.paragraph(paragraph)
    params = command.get_params(ctx)
    arguments = [(_metavar(p), " ".join((getattr(p, "help", None) or "").split()))
                 for p in params if isinstance(p, TyperArgument)]
    if arguments:
        page.heading("Arguments:")
        page.rows(arguments)
    page.heading("Options:")
    page.rows(_option_row(p) for p in params if isinstance(p, TyperOption) and not p.hidden)
    if examples:
        page.heading("Examples:")
        page.examples(examples)
    return page.text()


def render_group_help(group: TyperGroup, ctx: click.Context) -> str:
    """The program's help page: what it is, then each command with its first line."""
    page = _Page(_help_colour(ctx))
    page.lines.append(page.style("Usage:", "heading") + f" {ctx.command_path} [OPTIONS] "
                      "COMMAND [ARGS]...")
    for paragraph in _split_doc(group.help or "")[0]:
        page.lines.append("")
        page.paragraph(paragraph)
    page.heading("Commands:")
    commands = [(name, _first_line(cmd)) for name in group.list_commands(ctx)
                if (cmd := group.get_command(ctx, name)) is not None and not cmd.hidden]
    page.rows(commands)
    page.heading("Options:")
    page.rows(_option_row(p) for p in group.get_params(ctx)
              if isinstance(p, TyperOption) and not p.hidden)
    page.lines += ["", f"  {ctx.command_path} COMMAND --help shows a command's options "
                   "and examples."]
    return page.text()


def _first_line(command: click.Command) -> str:
    return (command.short_help or (command.help or "").strip().split("\n")[0]).strip()


class Command(TyperCommand):
    """A typer command with capdissect's help page and the colour options."""

    def __init__(self, name: str | None, *, params: list[click.Parameter] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, params=[*(params or []), *_colour_options()], **kwargs)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(render_command_help(self, ctx))


class Group(TyperGroup):
    """The program itself: its help page lists the commands."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(render_group_help(self, ctx))


class App(typer.Typer):
    """``typer.Typer`` whose commands are ``Command`` unless a command asks otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
                **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or Command, **kwargs)
