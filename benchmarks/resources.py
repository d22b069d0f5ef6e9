"""Resource cases of issue 21: memory follows the work, never the input.

    .venv/bin/python benchmarks/resources.py [--scale 0.1] [--write]

Builds (in a temporary directory) four crafted captures and runs each command that
reads them as a whole process, recording its peak RSS (the child's ``VmHWM``, as
bench.py measures it), wall time, exit status and output size:

- one TCP connection of 1.5M packets (a handshake, then data and ACKs): ``flows
  --json``, ``timeline`` (text, ``--json``, ``--svg``), ``sockets`` and ``sockets --every``;
- a SYN flood of 1M never-answered SYNs (synflood.py's capture): ``flows --json``,
  ``sockets``, ``sockets --every`` and ``timeline --svg``;
- 5,000 SYNs made into a handout (the most a handout takes): ``handout -o x.html`` and
  ``-o x.md``;
- a pcapng file with 1M empty blocks before its interface block: ``read --plain -nn`` and
  ``flows --json``.

Every run must stay under 200 MB, and the drawings must degrade with a note instead of
growing: the SVG of the long connection says which segments it does not draw, the
SVG of the flood and the handout which flows.  ``--scale`` shrinks every case but the
handout's (a quick look; the file says so).  ``--write`` rewrites benchmarks/RESOURCES.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, NamedTuple

from bench import Sample, machine, measure
from synflood import write_flood

HERE: Final = Path(__file__).resolve().parent
RESULT: Final = HERE / "RESOURCES.md"
LIMIT_MB: Final = 200.0
RAW: Final = 101  # LINKTYPE_RAW: no link header to fake
_IP: Final = struct.Struct("!BBHHHBBH4s4s")
_TCP: Final = struct.Struct("!HHIIBBHHH")
_RECORD: Final = struct.Struct("<IIII")


def _segment(i: int, src: tuple[bytes, int], dst: tuple[bytes, int], seq: int, ack: int,
             flags: int, payload: bytes = b"") -> bytes:
    tcp = _TCP.pack(src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535,
                    0, 0) + payload
    ip = _IP.pack(0x45, 0, 20 + len(tcp), i & 0xFFFF, 0x4000, 64, 6, 0, src[0], dst[0])
    data = ip + tcp
    # 100,000 packets a second of capture time
    return _RECORD.pack(1_700_000_000 + i // 100_000, (i % 100_000) * 10, len(data),
                        len(data)) + data


def write_one_connection(path: Path, packets: int) -> None:
    """One loopback connection: a handshake, then 16-byte segments, each ACKed."""
    client, server = (bytes([127, 0, 0, 1]), 40000), (bytes([127, 0, 0, 1]), 30002)
    c_seq, s_seq = 1000, 5000
    payload = b"0123456789abcdef"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, RAW))
        chunk = [_segment(0, client, server, c_seq, 0, 0x02),
                 _segment(1, server, client, s_seq, c_seq + 1, 0x12),
                 _segment(2, client, server, c_seq + 1, s_seq + 1, 0x10)]
        c_seq += 1
        for i in range(3, packets):
            if i % 2:
                chunk.append(_segment(i, client, server, c_seq, s_seq + 1, 0x18, payload))
                c_seq += len(payload)
            else:
                chunk.append(_segment(i, server, client, s_seq + 1, c_seq, 0x10))
            if len(chunk) >= 100_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def write_blocks_before_idb(path: Path, blocks: int) -> None:
    """A pcapng section with *blocks* empty 12-byte blocks of an unknown type before its
    interface block, then ten SYNs."""
    with path.open("wb") as out:
        out.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
        empty = struct.pack("<III", 0x0BAD, 12, 12) * 10_000
        for _ in range(blocks // 10_000):
            out.write(empty)
        out.write(struct.pack("<III", 0x0BAD, 12, 12) * (blocks % 10_000))
        out.write(struct.pack("<IIHHII", 1, 20, RAW, 0, 65535, 20))
        for i in range(10):
            record = _segment(i, (bytes([10, 0, 0, 2]), 1024 + i), (bytes([10, 0, 0, 1]), 80),
                              i, 0, 0x02)
            ts_sec, ts_usec, caplen, _ = _RECORD.unpack_from(record)
            data = record[_RECORD.size:]
            ts = ts_sec * 1_000_000 + ts_usec
            pad = b"\0" * (-len(data) % 4)
            length = 32 + len(data) + len(pad)
            out.write(struct.pack("<IIIIIII", 6, length, 0, ts >> 32, ts & 0xFFFFFFFF,
                                  caplen, caplen) + data + pad + struct.pack("<I", length))


class Run(NamedTuple):
    case: str
    args: tuple[str, ...]  # after "capdissect", with F for the capture and OUT for a file
    note: str = ""  # text the output must contain (a drawing that degraded says so)


class Case(NamedTuple):
    name: str
    write: Callable[[Path, int], None]
    size: int  # packets, flows or blocks at scale 1
    suffix: str
    runs: tuple[Run, ...]
    scaled: bool = True  # --scale shrinks it (the handout case is small anyway)


SVG_NOTE: Final = "are not drawn: a drawing shows the first"
HANDOUT_NOTE: Final = "are not drawn: a handout draws the first"
SVG_FLOWS_NOTE: Final = "are not drawn: a timeline drawing shows the first"
CASES: Final = (
    Case("1.5M-packet single connection", write_one_connection, 1_500_000, ".pcap", (
        Run("conn", ("flows", "F", "--json")),
        Run("conn", ("timeline", "F")),
        Run("conn", ("timeline", "F", "--json")),
        Run("conn", ("timeline", "F", "--svg", "OUT.svg"), SVG_NOTE),
        Run("conn", ("sockets", "F")),
        Run("conn", ("sockets", "F", "--every")),
    )),
    Case("1M SYN flood", write_flood, 1_000_000, ".pcap", (
        Run("flood", ("flows", "F", "--json")),
        Run("flood", ("sockets", "F")),
        Run("flood", ("sockets", "F", "--every")),
        Run("flood", ("timeline", "F", "--svg", "OUT.svg"), SVG_FLOWS_NOTE),
    )),
    Case("5,000-SYN handout", write_flood, 5_000, ".pcap", (
        Run("handout", ("handout", "F", "-o", "OUT.html"), HANDOUT_NOTE),
        Run("handout", ("handout", "F", "-o", "OUT.md"), HANDOUT_NOTE),
    ), scaled=False),
    Case("1M blocks before the IDB", write_blocks_before_idb, 1_000_000, ".pcapng", (
        Run("blocks", ("read", "F", "--plain", "-nn")),
        Run("blocks", ("flows", "F", "--json")),
    )),
)


class Result(NamedTuple):
    case: str
    size: int
    command: str
    sample: Sample
    out_bytes: int
    note_ok: bool

    @property
    def ok(self) -> bool:
        return self.sample.exit_code == 0 and self.sample.max_rss_mb < LIMIT_MB and self.note_ok


def run_case(case: Case, size: int, tmp: Path, capdissect: str) -> list[Result]:
    capture = tmp / f"{case.runs[0].case}{case.suffix}"
    case.write(capture, size)
    results = []
    for i, run in enumerate(case.runs):
        argv, written = [capdissect], None
        for arg in run.args:
            if arg == "F":
                arg = str(capture)
            elif arg.startswith("OUT."):
                written = tmp / f"out{i}{arg[3:]}"
                arg = str(written)
            argv.append(arg)
        stdout = tmp / "stdout"
        sample = measure(argv, stdout=stdout)
        target = written if written is not None else stdout
        out_bytes = target.stat().st_size if target.exists() else 0
        note_ok = True
        if run.note:
            note_ok = target.exists() and run.note in target.read_text("utf-8", "replace")
        results.append(Result(case.name, size, "capdissect " + " ".join(run.args), sample,
                              out_bytes, note_ok))
        print(f"{case.name}: {results[-1].command}: {sample.max_rss_mb:.0f} MB, "
              f"{sample.wall_s:.1f} s, exit {sample.exit_code}, {out_bytes:,} bytes"
              f"{'' if note_ok else ', NOTE MISSING'}", flush=True)
        target.unlink(missing_ok=True)
    capture.unlink()
    return results


def build() -> str:
    """Whether the capdissect the runs use is the compiled (mypyc) build or pure Python:
    asked of the interpreter beside it, from /, so no source tree on sys.path answers."""
    probe = subprocess.run([sys.executable, "-c", "from capdissect.tracking import tcp; "
                            "print(tcp.__file__)"], capture_output=True, text=True, cwd="/",
                           check=False)
    return "pure Python" if probe.stdout.strip().endswith(".py") else "compiled (mypyc)"


def markdown(results: list[Result], scale: float) -> str:
    info = {**machine(), "build": build()}
    lines = [
        "# Resource cases: memory follows the work, never the input (issue 21)",
        "",
        "Written by `benchmarks/resources.py --write` (part of `make bench`); each command "
        "runs as a whole process on a crafted capture, peak memory is its `VmHWM`.  Every "
        f"run must stay under {LIMIT_MB:.0f} MB and exit 0; `timeline --svg` and `handout` "
        "must end their drawing with a note saying what they left out.",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.  Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
    ]
    if scale != 1:
        lines += [f"**Scaled run (`--scale {scale:g}`): every case is {scale:g} of its full "
                  "size.**", ""]
    lines += ["| case | size | command | peak RSS | wall | output | note | ok |",
              "|---|---:|---|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r.case} | {r.size:,} | `{r.command}` | {r.sample.max_rss_mb:.0f} MB "
                     f"| {r.sample.wall_s:.1f} s | {r.out_bytes:,} B | "
                     f"{'yes' if r.note_ok else 'MISSING'} | {'yes' if r.ok else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="shrink every case to this fraction (a quick look)")
    parser.add_argument("--case", action="append", default=[],
                        help="run only the cases whose name contains this (repeatable)")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/RESOURCES.md")
    args = parser.parse_args()
    capdissect = str(Path(sys.executable).with_name("capdissect"))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="capd-resources-") as tmp:
        for case in CASES:
            if args.case and not any(c in case.name for c in args.case):
                continue
            size = max(int(case.size * args.scale), 10) if case.scaled else case.size
            results += run_case(case, size, Path(tmp), capdissect)
    if args.write:
        RESULT.write_text(markdown(results, args.scale), encoding="utf-8")
        print(f"wrote {RESULT}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
