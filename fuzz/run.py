"""Time-boxed fuzz run for ``make fuzz``: build the seed corpus, run the fuzzer, report.

The seeds are made at run time from ``tests/corpus/*.pcap*`` (nothing is copied into the
repository): each capture whole, and each of its first packets alone in a one-packet
pcap, which gives the mutator short inputs that reach the dissectors at once.  The
fuzzer is ``fuzz/fuzz_read.py`` under atheris, with libFuzzer's limits: ``-timeout``
(a hang is a crash), ``-rss_limit_mb`` (so is unbounded memory) and
``-max_total_time``.  The summary line gives the executions and the crashes; a crash
fails the run and its input is kept (``crash-*``, ``timeout-*``, ``oom-*`` in the
work directory) to be turned into a regression test.

Without atheris (it ships wheels for Linux x86-64; elsewhere it needs clang and
libFuzzer), the run falls back to the Hypothesis properties of
``tests/properties/test_properties.py`` with many more examples, inside the same time box.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
CORPUS: Final = ROOT / "tests" / "corpus"
HARNESS: Final = ROOT / "fuzz" / "fuzz_read.py"
PACKETS_PER_FILE: Final = 8  # one-packet seeds taken from the start of each capture
MAX_LEN: Final = 4096  # libFuzzer's input size limit: a few packets, fast to run
ARTIFACTS: Final = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


def one_packet_pcaps(path: Path) -> list[bytes]:
    """The first packets of a classic pcap, each as a pcap file of its own."""
    raw = path.read_bytes()
    if len(raw) < 24:
        return []
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(raw[:4])
    if order is None:
        return []
    seeds = []
    pos = 24
    for _ in range(PACKETS_PER_FILE):
        if pos + 16 > len(raw):
            break
        caplen = struct.unpack_from(order + "I", raw, pos + 8)[0]
        record = raw[pos : pos + 16 + caplen]
        if len(record) < 16 + caplen:
            break
        seeds.append(raw[:24] + record)
        pos += 16 + caplen
    return seeds


def make_seeds(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(CORPUS.glob("*.pcap*")):
        shutil.copyfile(path, directory / path.name)
        count += 1
        for index, seed in enumerate(one_packet_pcaps(path)):
            (directory / f"{path.name}.{index}.pcap").write_bytes(seed)
            count += 1
    return count


def run_atheris(workdir: Path, seconds: int) -> int:
    seeds = workdir / "seeds"
    corpus = workdir / "corpus"  # what the fuzzer learns; kept when FUZZ_DIR is given
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts = workdir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    print(f"fuzz: {make_seeds(seeds)} seeds from {CORPUS.relative_to(ROOT)}, "
          f"{seconds} s, work directory {workdir}", flush=True)
    log = workdir / "fuzz.log"
    argv = [
        sys.executable, str(HARNESS), str(corpus), str(seeds),
        f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
        f"-max_len={MAX_LEN}", "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
    ]
    started = time.monotonic()
    with log.open("wb") as out:
        # libFuzzer stops by itself at max_total_time; the margin covers loading the seeds.
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                              timeout=seconds + 300, check=False)
    elapsed = time.monotonic() - started
    text = log.read_text("utf-8", "replace")
    executions = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    crashes = sorted(p for p in artifacts.iterdir() if p.name.startswith(ARTIFACTS))
    runs = int(executions.group(1)) if executions else 0
    print(f"fuzz: {runs} executions in {elapsed:.0f} s, {len(crashes)} crashes "
          f"(atheris, exit status {proc.returncode})")
    for crash in crashes:
        print(f"fuzz: crash input {crash} (reproduce: {sys.executable} {HARNESS} {crash})")
    if crashes or proc.returncode != 0:
        print("\n".join(text.splitlines()[-40:]), file=sys.stderr)
        return 1
    return 0


def run_hypothesis(seconds: int) -> int:
    """The fallback: the property tests with many examples, stopped at the time box."""
    print("fuzz: atheris is not installed here (it needs a wheel for this platform, or "
          "clang and libFuzzer); running the Hypothesis properties for longer instead",
          flush=True)
    env = {**os.environ, "CAPDISSECT_PROPERTY_EXAMPLES": "5000"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(ROOT / "tests" / "test_properties.py")]
    try:
        proc = subprocess.run(argv, env=env, timeout=max(seconds, 60), check=False)
    except subprocess.TimeoutExpired:
        print(f"fuzz: time box of {seconds} s reached without a failing example")
        return 0
    return proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz")
    parser.add_argument("--dir", type=Path, default=None,
                        help="work directory, kept between runs (default: a new temporary one)")
    args = parser.parse_args()
    if importlib.util.find_spec("atheris") is None:
        return run_hypothesis(args.seconds)
    if args.dir is not None:
        return run_atheris(args.dir.resolve(), args.seconds)
    with tempfile.TemporaryDirectory(prefix="capdissect-fuzz-") as tmp:
        status = run_atheris(Path(tmp), args.seconds)
        if status:  # keep the crashing inputs: copy them next to the current directory
            kept = Path.cwd() / "fuzz-artifacts"
            shutil.copytree(Path(tmp) / "artifacts", kept, dirs_exist_ok=True)
            print(f"fuzz: crashing inputs kept in {kept}")
        return status


if __name__ == "__main__":
    sys.exit(main())
