"""``read --plain -nn`` and ``read -nn -v -X`` before and after a change, in one run.

Issue #14 moved every module; its promise was that ``read`` stays within 5 % of the
times before the move.  This builds the base commit (default: the last one before the
redesign) compiled with mypyc in a git worktree of its own (cached under
~/.cache/capdissect-bench), runs both trees on the same captures with the same Python,
interleaved (base, this, base, this...), and reports the medians and their ratio.

    python benchmarks/redesign_bench.py [--base COMMIT] [--runs 11] [--write]

``--write`` replaces the "Before and after the redesign" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench import ensure_capture, write_section  # noqa: E402

BASE = "8290c73"  # main before issue #14's redesign
CACHE = Path.home() / ".cache" / "capdissect-bench"
SECTION = "## Before and after the redesign"
LESSON = ROOT / "captures" / "tcp-basic.pcap"
FLAGS = (("--plain", "-nn"), ("-nn", "-v", "-X", "--plain"))


def base_tree(commit: str) -> Path:
    """A worktree of *commit* with its hot modules compiled in place (built once)."""
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = CACHE / f"base-{sha}"
    stamp = tree / ".compiled"
    if not stamp.exists():
        if tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT,
                       check=True, capture_output=True)
        print(f"compiling {sha} with mypyc (minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                       cwd=tree, check=True, capture_output=True)
        stamp.touch()
    return tree


def timed(tree: Path, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "capdissect", *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tree)
    return time.perf_counter() - start


def compiled(tree: Path) -> bool:
    """Whether *tree*'s fast printer runs compiled (a pure tree would be no comparison)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = ("import importlib,sys\n"
            "for n in ('capdissect.report.tcpdump.fast','capdissect.report.tcpdump_fast'):\n"
            "    try: m=importlib.import_module(n)\n"
            "    except ImportError: continue\n"
            "    sys.exit(0 if m.__file__.endswith('.so') else 1)\n"
            "sys.exit(1)")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tree).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    base = base_tree(args.base)
    for tree in (base, ROOT):
        if not compiled(tree):
            sys.exit(f"{tree}: the hot modules are not compiled (make install)")
    for tree in (base, ROOT):  # byte-compiled beforehand: no run pays for writing .pyc
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "capdissect")],
                       check=True, stdout=subprocess.DEVNULL)
    bench = Path(ensure_capture(log=lambda m: print(m, file=sys.stderr)).path)
    rows = []
    for capture in (bench, LESSON):
        for flags in FLAGS:
            argv = ["read", str(capture), *flags]
            timed(base, argv), timed(ROOT, argv)  # warm the page cache and both trees
            before, after = [], []
            for _ in range(args.runs):
                before.append(timed(base, argv))
                after.append(timed(ROOT, argv))
            b, a = statistics.median(before), statistics.median(after)
            rows.append(f"| `read {capture.name} {' '.join(flags)}` | {b:.3f} s | "
                        f"{a:.3f} s | {a / b:.3f} |")
            print(rows[-1], file=sys.stderr)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    text = "\n".join([
        SECTION, "",
        f"`benchmarks/redesign_bench.py`: the commit before issue #14 ({args.base}) and "
        f"this one ({head}), both compiled, one Python, interleaved, median of "
        f"{args.runs} runs (target: after/before at most 1.05).", "",
        "| command | before | after | after/before |", "| --- | --- | --- | --- |",
        *rows, ""])
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
