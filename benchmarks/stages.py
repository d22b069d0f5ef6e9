"""Where the time of a packet goes: each stage of the pipeline, in microseconds a packet.

    .venv/bin/python benchmarks/stages.py [--packets N] [--write]

Runs growing prefixes of the pipeline over the first N packets of each benchmark
capture (gen_capture.py's mixes), in this process, streaming as the commands do (no
packet is kept), best of 3: framing alone, then framing and decoding, then tracking on
top, and so on.  A stage's cost is its prefix's time minus the one before it.  The
output stages (tcpdump's text, the JSON, the annotations) each sit on top of the
prefix they need.  ``--write`` replaces the "Where the time goes" section of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from bench import write_section
from gen_capture import MIXES, ensure_capture

from capdissect.dissect.stack import decode
from capdissect.packets import RawPacket
from capdissect.report.annotate import Annotator
from capdissect.report.json.packet import json_line, packet_json
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import open_capture
from capdissect.tracking.tracker import Tracker

SECTION: Final = "## Where the time goes"


def _raw(path: Path, n: int) -> Iterator[RawPacket]:
    with open_capture(path) as cap:
        yield from itertools.islice(cap, n)


def _frame(path: Path, n: int) -> None:
    for _ in _raw(path, n):
        pass


def _decode(path: Path, n: int) -> None:
    for raw in _raw(path, n):
        decode(raw)


def _track(path: Path, n: int) -> None:
    tracker = Tracker(keep_events=False)
    for number, raw in enumerate(_raw(path, n), 1):
        tracker.feed(number, decode(raw))
        tracker.drain()


def _annotate(path: Path, n: int) -> None:
    annotator = Annotator()
    for number, raw in enumerate(_raw(path, n), 1):
        annotator.annotate(number, decode(raw))


def _print(path: Path, n: int) -> None:
    printer = TcpdumpPrinter(PrintOptions(n=2))
    for raw in _raw(path, n):
        printer.format(raw)


def _packet_json(path: Path, n: int) -> None:
    for number, raw in enumerate(_raw(path, n), 1):
        packet_json(number, decode(raw))


def _json_line(path: Path, n: int) -> None:
    for number, raw in enumerate(_raw(path, n), 1):
        json_line(packet_json(number, decode(raw)))


# (stage, what it runs, the stage its cost is measured over)
STAGES: Final[tuple[tuple[str, Callable[[Path, int], None], str | None], ...]] = (
    ("framing: the file to RawPacket records", _frame, None),
    ("decoding: dissect.stack.decode", _decode, "framing"),
    ("tracking: Tracker.feed", _track, "decoding"),
    ("annotating: read -n's words (Annotator)", _annotate, "tracking"),
    ("tcpdump's text: TcpdumpPrinter.format", _print, "framing"),
    ("read --json's object: packet_json", _packet_json, "decoding"),
    ("read --json's line: json_line", _json_line, "read --json's object"),
)
_SHORT: Final = {name: name.split(":")[0] for name, _run, _above in STAGES}


def measure(path: Path, n: int, runs: int) -> dict[str, tuple[float, float]]:
    """Each stage's (prefix time, own cost) in microseconds a packet."""
    total: dict[str, float] = {}
    for name, run, _above in STAGES:
        best = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            run(path, n)
            best = min(best, time.perf_counter() - started)
        total[name] = best / n * 1e6
    by_short = {_SHORT[name]: value for name, value in total.items()}
    return {name: (total[name], total[name] - (by_short[above] if above else 0.0))
            for name, _run, above in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    columns = []
    for mix in MIXES:
        info = ensure_capture(log=lambda m: print(m, file=sys.stderr), mix=mix)
        n = min(args.packets, info.packets)
        print(f"{mix}: {n:,} packets of {Path(info.path).name}", file=sys.stderr)
        columns.append((mix, n, measure(Path(info.path), n, args.runs)))
    lines = [
        SECTION, "",
        "Written by `benchmarks/stages.py --write`: growing prefixes of the pipeline over "
        "the first packets of each capture, in one process, streaming, best of "
        f"{args.runs}; a stage's cost is its prefix minus the prefix it sits on "
        "(microseconds a packet, compiled modules).", "",
        "| stage | over | " + " | ".join(f"`{mix}` ({n:,} packets)" for mix, n, _ in columns)
        + " |",
        "| --- | --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for name, _run, above in STAGES:
        cells = [f"{m[name][1]:.2f}" for _mix, _n, m in columns]
        lines.append(f"| {name} | {above or ''} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
