"""Helpers shared by the conformance tests: run tcpdump and capdissect, split their output
into per-packet blocks, and describe the first difference.

Outputs are decoded as latin-1, a one-to-one map from bytes to characters, so comparing
the strings is comparing the bytes ("byte for byte", SPEC 3.2) while still printable in a
failure message.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

RUN_TIMEOUT_S: Final = 120.0

# tcpdump prints local time; both tools run with the same fixed zone and locale.  Typer's
# boxed "rich" tracebacks become plain ones, readable in a failure message.
ENV_OVERRIDES: Final[Mapping[str, str]] = {
    "TZ": "UTC",
    "LC_ALL": "C",
    "_TYPER_STANDARD_TRACEBACK": "1",
}


def capdissect_command() -> list[str]:
    """The installed console script next to this interpreter (.venv/bin/capdissect)."""
    script = Path(sys.executable).with_name("capdissect")
    if script.exists():
        return [str(script)]
    found = shutil.which("capdissect")
    if found is None:
        raise FileNotFoundError(
            f"no capdissect console script next to {sys.executable}: run `make install`"
        )
    return [found]


def fixed_env() -> dict[str, str]:
    return {**os.environ, **ENV_OVERRIDES}


@dataclass(frozen=True, slots=True)
class Run:
    """One finished process: what it printed and how it ended."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def problem(self) -> str | None:
        """Why this run counts as a crash, or None: it must exit 0 without a traceback."""
        if self.timed_out:
            return f"timed out after {RUN_TIMEOUT_S:.0f} s: {' '.join(self.argv)}"
        if "Traceback (most recent call last)" in self.stderr:
            return f"traceback on stderr:\n{self.stderr[-3000:]}"
        if self.returncode != 0:
            return f"exit status {self.returncode}; stderr:\n{self.stderr[-2000:]}"
        return None


def run(argv: Sequence[str], cwd: Path | None = None) -> Run:
    """Run *argv* with the fixed TZ/locale, bounded by RUN_TIMEOUT_S."""
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, env=fixed_env(), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        err = exc.stderr or b""
        return Run(tuple(argv), -1, out.decode("latin-1"), err.decode("utf-8", "replace"), True)
    return Run(
        tuple(argv),
        proc.returncode,
        proc.stdout.decode("latin-1"),  # compared byte for byte
        proc.stderr.decode("utf-8", "replace"),  # only shown
    )


def split_blocks(text: str) -> list[str]:
    """Split tcpdump-style output into per-packet blocks.

    A block is a line that does not start with whitespace plus the indented lines after
    it (``-v`` continuation lines start with spaces, ``-X`` hex lines with a tab).  Each
    block keeps its line ends, so a missing final newline is a difference too.
    """
    blocks: list[str] = []
    for line in text.splitlines(keepends=True):
        if blocks and line[:1] in (" ", "\t"):
            blocks[-1] += line
        else:
            blocks.append(line)
    return blocks


@dataclass(frozen=True, slots=True)
class Tally:
    same: int
    total: int  # the longer of the two block lists: extra or missing blocks count as wrong
    first_diff: str | None


def compare_blocks(expected: Sequence[str], got: Sequence[str]) -> Tally:
    same = sum(1 for e, g in zip(expected, got, strict=False) if e == g)
    total = max(len(expected), len(got))
    return Tally(same, total, describe_first_difference(expected, got))


def describe_first_difference(expected: Sequence[str], got: Sequence[str]) -> str | None:
    """The first differing block pair as a readable diff, or None if all are equal."""
    for index in range(max(len(expected), len(got))):
        want = expected[index] if index < len(expected) else ""
        have = got[index] if index < len(got) else ""
        if want == have:
            continue
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True), have.splitlines(keepends=True),
                fromfile="tcpdump", tofile="capdissect", n=0,
            )
        )  # fmt: skip
        if want.split() == have.split():  # differs only in white space: show it
            want, have = repr(want) + "\n", repr(have) + "\n"
        return (
            f"packet block {index + 1} of {len(expected)} (capdissect printed {len(got)}):\n"
            f"--- tcpdump:\n{want}"
            f"--- capdissect:\n{have}"
            f"--- diff:\n{diff}"
        )
    return None
