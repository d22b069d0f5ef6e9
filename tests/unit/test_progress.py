"""The progress bar of long commands (capdissect/commands/progress.py, SPEC §1)."""

from __future__ import annotations

import io

import pytest

from capdissect.commands import progress
from capdissect.commands.progress import ProgressBar


def test_small_files_and_quick_reads_draw_nothing() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, "x.pcap")
    bar(10, 100)  # far below MIN_SIZE
    bar(1 << 20, progress.MIN_SIZE)  # big, but before FIRST_DRAW_S
    assert out.getvalue() == ""
    bar.clear()
    assert out.getvalue() == ""


def test_draws_then_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    bar = ProgressBar(out, "big.pcap")
    monkeypatch.setattr(progress.time, "monotonic", lambda: bar.started + 1.0)
    total = 100 << 20
    bar(total // 4, total)
    drawn = out.getvalue()
    assert drawn.startswith("\rbig.pcap [") and drawn.endswith("\x1b[K")
    assert " 25%  26/105 MB" in drawn
    bar(total // 2, total)  # within REDRAW_S of the last draw: nothing new
    assert out.getvalue() == drawn
    bar.clear()
    assert out.getvalue() == drawn + "\r\x1b[K"

