"""Benchmark ``capdissect export`` (SPEC §5, issue 17): packets/s, -j 2 against -j 1, bytes.

    .venv/bin/python benchmarks/export_bench.py [--capture FILE] [--pieces N] [--runs R]
                                                [--write]

Three figures, each the median of R runs of the whole process (``capdissect export``,
interpreter start-up included, output in a fresh temporary directory):

1. **packets/s per process**: the capture exported with ``-j 1``, all tables, and with
   ``--tables packets`` alone (target: 100,000 a second per core, compiled modules);
2. **-j 2 against -j 1 over many files**: the capture cut into N pieces (editcap -c),
   exported with ``-j 1`` and ``-j 2`` (target 1.8x; on a 2-CPU machine shared with other
   work it can only be less);
3. **Parquet bytes per packet**: the size of the packets table over the packets in it
   (target 20 or fewer), and of every table.

Without ``--capture`` it uses the cached benchmark capture of ``benchmarks/gen_capture.py``
(the one ``benchmarks/bench.py`` times).  ``--write`` puts the figures in
benchmarks/RESULTS.md as its "Export" section, replacing an older one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from bench import write_section

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
SECTION: Final = "## Export"
CAPDISSECT: Final = [sys.executable, "-m", "capdissect"]
TIMEOUT_S: Final = 3600
TABLES: Final = ("packets", "flows", "events", "sockets", "files")


def export(inputs: list[str], out: Path, *args: str) -> float:
    """Wall seconds of one ``capdissect export`` process writing to *out* (made afresh)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([*CAPDISSECT, "export", *inputs, "-o", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"export failed: {done.stderr.strip()}")
    return seconds


def median_time(runs: int, inputs: list[str], out: Path, *args: str) -> tuple[float, list[float]]:
    times = [export(inputs, out, *args) for _ in range(runs)]
    return statistics.median(times), times


def table_bytes(out: Path) -> dict[str, int]:
    return {t: sum(p.stat().st_size for p in (out / t).glob("*.parquet")) for t in TABLES}


def count_packets(out: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "packets").glob("*.parquet"))


def split(capture: Path, pieces: int, packets: int, into: Path) -> list[str]:
    editcap = shutil.which("editcap")
    if editcap is None:
        raise SystemExit("editcap (Debian: tshark's wireshark-common) is needed to cut pieces")
    into.mkdir()
    per_piece = max(packets // pieces, 1)
    subprocess.run([editcap, "-c", str(per_piece), str(capture), str(into / "piece.pcap")],
                   check=True, capture_output=True, timeout=TIMEOUT_S)
    return sorted(str(p) for p in into.iterdir())


def cached_capture() -> Path:
    sys.path.insert(0, str(HERE))
    from gen_capture import ensure_capture

    return Path(ensure_capture(log=lambda text: print(text, file=sys.stderr)).path)


def compiled() -> bool:
    import capdissect.dissect.tcp as tcp

    return str(tcp.__file__).endswith(".so")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark capdissect export.")
    parser.add_argument("--capture", type=Path, help="this file instead of the cached one")
    parser.add_argument("--pieces", type=int, default=16, help="files for the -j rows")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (median)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    capture = args.capture or cached_capture()
    with tempfile.TemporaryDirectory(prefix="capdissect-export-bench-") as tmp:
        work = Path(tmp)
        out = work / "out"
        all_s, all_runs = median_time(args.runs, [str(capture)], out, "-j", "1")
        sizes = table_bytes(out)
        packets = count_packets(out)
        only_s, only_runs = median_time(args.runs, [str(capture)], out, "-j", "1",
                                        "--tables", "packets")
        pieces = split(capture, args.pieces, packets, work / "pieces")
        one_s, one_runs = median_time(args.runs, pieces, out, "-j", "1")
        two_s, two_runs = median_time(args.runs, pieces, out, "-j", "2")
    rows = [
        ("export -j 1, all tables", f"{packets / all_s:,.0f} packets/s", all_runs),
        ("export -j 1, --tables packets", f"{packets / only_s:,.0f} packets/s", only_runs),
        (f"export -j 1, {len(pieces)} files", f"{packets / one_s:,.0f} packets/s", one_runs),
        (f"export -j 2, {len(pieces)} files",
         f"{packets / two_s:,.0f} packets/s, {one_s / two_s:.2f}x -j 1", two_runs),
    ]
    lines = [
        SECTION, "",
        "Written by `benchmarks/export_bench.py --write` (run by `make bench`). Targets "
        "(issue 17): at least 100,000 packets/s per process with the compiled modules, "
        "`-j 2` at least 1.8x `-j 1` over many files, at most 20 Parquet bytes per packet "
        "in the packets table.", "",
        f"Capture: `{capture.name}`, {packets:,} packets, {capture.stat().st_size / 1e6:.1f} MB; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, compiled modules: {'yes' if compiled() else 'no'}; "
        f"median of {args.runs} runs.", "",
        "| what | result | runs (s) |", "| --- | --- | --- |",
        *(f"| {what} | {result} | {', '.join(f'{t:.2f}' for t in runs)} |"
          for what, result, runs in rows),
        "", "| table | bytes | bytes per packet |", "| --- | --- | --- |",
        *(f"| {t} | {sizes[t]:,} | {sizes[t] / max(packets, 1):.1f} |" for t in TABLES),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
