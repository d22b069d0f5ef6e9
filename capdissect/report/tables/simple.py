"""tabulate's "simple" table, drawn here for the cells that are printable ASCII.

``flows`` prints its tables in tabulate's "simple" format (numbers not parsed, every
column aligned left or right).  Importing tabulate costs 20 to 40 ms (it reads its own
version through importlib.metadata and imports wcwidth), a third of ``capdissect flows``
on a lesson's capture; the layout itself is a few lines.  ``simple_table`` draws the
same lines as tabulate (0.10, the version tested) for printable ASCII cells (what
``clean``-ed addresses, ports, states and counts are), and hands anything else to
tabulate, whose rules for wide and invisible characters it does not copy.
tests/unit/test_simple_table.py compares the two, with whichever tabulate is installed,
on every flows table of the captures here and on random tables.

The rules, as tabulate applies them: each cell is the text of its value with the
whitespace around it stripped; a column is as wide as its widest line, and at least two
more than its header; cells and headers are padded to that width, right or left; the
columns are joined by two spaces and each line loses its trailing spaces; a line of
dashes, as wide as each column, follows the header.  A table with a line break in any
cell (before stripping) puts each line of a cell on its own line, the shorter cells of
a row padded with blank lines below, and a row whose cells are all empty takes no line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

MIN_PADDING: Final = 2  # a column is at least this much wider than its header
SEPARATOR: Final = "  "


def simple_table(rows: Sequence[Sequence[object]], headers: Sequence[str],
                 aligns: Sequence[str]) -> list[str]:
    """The lines of tabulate's ``tabulate(rows, headers, tablefmt="simple",
    disable_numparse=True, colalign=aligns).splitlines()`` (each of *aligns* "left" or
    "right")."""
    raw = [[str(cell) for cell in row] for row in rows]
    if not all(_plain(text) and "\n" not in text for text in headers) or not all(
            _plain(text) for row in raw for text in row):
        return _tabulated(rows, headers, aligns)
    multiline = any("\n" in text for row in raw for text in row)
    cells = [[stripped.split("\n") if (stripped := text.strip()) else [] for text in row]
             for row in raw]
    widths = [len(header) + MIN_PADDING for header in headers]
    for row_cells in cells:
        for column, lines in enumerate(row_cells):
            for line in lines:
                if len(line) > widths[column]:
                    widths[column] = len(line)
    right = [align == "right" for align in aligns]

    def joined(texts: Sequence[str]) -> str:
        return SEPARATOR.join(text.rjust(width) if on_right else text.ljust(width)
                              for text, width, on_right in zip(texts, widths, right, strict=True)
                              ).rstrip()

    out = [joined(headers), SEPARATOR.join("-" * width for width in widths)]
    for row_cells in cells:
        height = max(map(len, row_cells)) if multiline else 1
        for index in range(height):
            out.append(joined([lines[index] if index < len(lines) else ""
                               for lines in row_cells]))
    if out[-1] == "":  # (splitlines drops a last empty line of the text)
        out.pop()
    return out


def _plain(text: str) -> bool:
    """Whether *text* is printable ASCII, line breaks aside: cells tabulate lays out as
    ``simple_table`` does."""
    return text.isascii() and text.replace("\n", "").isprintable()


def _tabulated(rows: Sequence[Sequence[object]], headers: Sequence[str],
               aligns: Sequence[str]) -> list[str]:
    from tabulate import tabulate

    text: str = tabulate(rows, headers=list(headers), tablefmt="simple",
                         disable_numparse=True, colalign=tuple(aligns))
    return text.splitlines()  # (typed where tabulate's stubs are not installed: the build)
