"""``simple_table`` draws what tabulate's "simple" format draws (report/tables/simple.py):
on the rows of every flows table of the captures here, narrow and wide, and on seeded
random tables of the shapes that matter (cells with spaces around them, line breaks,
empty cells, numbers, rows of nothing but empty cells, either alignment); cells that
are not printable ASCII are left to tabulate itself."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from tabulate import tabulate

from capdissect.commands.reports import steps
from capdissect.report.tables import flows as report
from capdissect.report.tables.simple import simple_table
from capdissect.tracking.stream import Totals, finished
from tests.unit.test_packetjson import ALL_FILES


def tabulated(rows: Sequence[Sequence[object]], headers: tuple[str, ...],
              aligns: tuple[str, ...]) -> list[str]:
    text: str = tabulate(rows, headers=list(headers), tablefmt="simple",
                         disable_numparse=True, colalign=aligns)
    return text.splitlines()


def same(rows: Sequence[Sequence[object]], headers: tuple[str, ...], aligns: tuple[str, ...]
         ) -> list[str]:
    drawn = simple_table(rows, headers, aligns)
    assert drawn == tabulated(rows, headers, aligns), (rows, headers, aligns)
    return drawn


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_flows_table_of_the_captures(path: Path) -> None:
    items = list(finished(steps(path), Totals()))
    if not items:
        pytest.skip("no flows")
    wide: list[list[object]] = [["-" if x == "" else x for x in report.table_row(item)]
                                for item in items]
    same(wide, report.HEADERS, report.WIDE_ALIGN)
    narrow = [list(report.narrow_row(item)) for item in items]
    same(narrow, report.NARROW_HEADERS, report.NARROW_ALIGN)
    for fold in (report.MIN_ENDPOINT, 20, 40):  # endpoints folded, cells moved down
        same([list(report._fold(tuple(row), fold)) for row in narrow],
             report.NARROW_HEADERS, report.NARROW_ALIGN)


def test_random_tables() -> None:
    draw = random.Random(19)
    pieces = ("", " ", "a", "-", "12", "tcp", "  x ", "\n", "ab\ncd", "\n\nq",
              "192.168.56.101.63988", "SYN_SENT\nLISTEN", "x\n", " \n ", "9999999")
    for _ in range(3_000):
        columns = draw.randrange(1, 6)
        headers = tuple(draw.choice(("id", "", "a b", "client/server", "x")) for _ in
                        range(columns))
        aligns = tuple(draw.choice(("left", "right")) for _ in range(columns))
        rows: list[list[object]] = [
            [draw.randrange(1000) if draw.random() < 0.2 else
             "".join(draw.choice(pieces) for _ in range(draw.randrange(3)))
             for _ in range(columns)]
            for _ in range(draw.randrange(1, 5))]
        same(rows, headers, aligns)


def test_other_characters_go_to_tabulate() -> None:
    for cell in ("\u4e2d\u6587", "caf\u00e9", "a\tb", "\x1b[31mred\x1b[0m", "a\rb"):
        same([[cell, "1"], ["x", "22"]], ("name", "n"), ("left", "right"))
