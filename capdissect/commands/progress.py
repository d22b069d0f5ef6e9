"""The progress bar long commands show on a terminal (SPEC §1).

The capture reader calls the bar each time it reads a chunk of the file (sources/files.py,
``PROGRESS``), about once per MiB, so it costs nothing per packet.  The bar appears only
for files of a few MB whose reading takes over half a second, redraws at most five
times a second, and is erased before the command writes to the same terminal.
"""

from __future__ import annotations

import shutil
import time
from typing import Final, TextIO

MIN_SIZE: Final = 4 << 20  # bytes: smaller files are read before anyone could look
FIRST_DRAW_S: Final = 0.5
REDRAW_S: Final = 0.2


class ProgressBar:
    """``bar(done, total)`` with bytes read and the file's size; ``clear()`` before output."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self.next_draw = self.started + FIRST_DRAW_S
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if total < MIN_SIZE:
            return
        now = time.monotonic()
        if now < self.next_draw:
            return
        self.next_draw = now + REDRAW_S
        self.stream.write("\r" + self.line(done, total) + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def line(self, done: int, total: int) -> str:
        fraction = min(done / total, 1.0)
        numbers = f" {fraction:4.0%}  {done / 1e6:,.0f}/{total / 1e6:,.0f} MB"
        width = min(shutil.get_terminal_size((80, 24)).columns, 100) - 1
        label = self.label[: max(width // 3, 8)]
        cells = max(width - len(label) - len(numbers) - 4, 10)
        filled = int(cells * fraction)
        return f"{label} [{'#' * filled}{'-' * (cells - filled)}]{numbers}"

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


class CountBar:
    """The overall bar of a command over many files: ``bar(done, total, name)`` after
    each file, drawn at once (a file's own bar, ``ProgressBar``, redraws in between)."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.drawn = False

    def __call__(self, done: int, total: int, name: str) -> None:
        width = min(shutil.get_terminal_size((80, 24)).columns, 100) - 1
        numbers = f" {done}/{total} files "
        cells = max(width // 3, 10)
        filled = int(cells * done / max(total, 1))
        text = f"{self.label} [{'#' * filled}{'-' * (cells - filled)}]{numbers}{name}"
        self.stream.write("\r" + text[:width] + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
