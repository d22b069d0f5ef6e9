"""A SYN flood's worth of flows (issue 9, SPEC 6): memory stays bounded, every flow counted.

    .venv/bin/python benchmarks/synflood.py [--flows 1000000] [--write]

Builds (in a temporary directory) a capture of N distinct SYN-only flows, each a SYN
from its own address and port that is never answered (the shape of a SYN flood: every
flow half-open, none ever finishes), runs ``capdissect flows FILE --json`` on it as a
whole process, and checks that the JSON lists every flow while peak memory stays under
200 MB.  The tracker keeps at most ``max_open`` connections open at once and retires the
oldest beyond that (they are still listed, as S0, and counted as "evicted").  Crafted
packets: a real flood is not something to make on a shared machine.  ``--write``
rewrites benchmarks/SYNFLOOD.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Final

from bench import measure

HERE: Final = Path(__file__).resolve().parent
RESULT: Final = HERE / "SYNFLOOD.md"
LIMIT_MB: Final = 200.0
RAW: Final = 101  # LINKTYPE_RAW: no link header to fake


def write_flood(path: Path, flows: int) -> None:
    ip = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIBBHHH")
    record = struct.Struct("<IIII")
    server = bytes([10, 0, 0, 1])
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, RAW))
        chunk = []
        for i in range(flows):
            client = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
            syn = (ip.pack(0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, client, server)
                   + tcp.pack(1024 + i % 60000, 80, (i * 7919) & 0xFFFFFFFF, 0, 0x50, 0x02,
                              65535, 0, 0))
            # 100,000 SYNs a second of capture time
            chunk.append(record.pack(1_700_000_000 + i // 100_000, (i % 100_000) * 10, 40, 40)
                         + syn)
            if len(chunk) == 100_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/SYNFLOOD.md")
    args = parser.parse_args()
    capdissect = str(Path(sys.executable).with_name("capdissect"))
    with tempfile.TemporaryDirectory(prefix="capd-synflood-") as tmp:
        pcap = Path(tmp) / "synflood.pcap"
        write_flood(pcap, args.flows)
        out = Path(tmp) / "flows.json"
        sample = measure([capdissect, "flows", str(pcap), "--json"], stdout=out)
        doc = json.loads(out.read_text())
        listed = len(doc["tcp"])
        evicted = doc.get("evicted", 0)
    ok = sample.exit_code == 0 and listed == args.flows and sample.max_rss_mb < LIMIT_MB
    line = (f"| {args.flows:,} SYN-only flows | {sample.wall_s:.1f} s | "
            f"{sample.max_rss_mb:.0f} MB | {listed:,} | {evicted:,} | {'yes' if ok else 'no'} |")
    print(line)
    if args.write:
        RESULT.write_text(
            "# SYN flood: bounded memory (issue 9)\n\n"
            "Written by `benchmarks/synflood.py --write`; reproduce with "
            "`.venv/bin/python benchmarks/synflood.py --write`.\n\n"
            f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.  `capdissect flows FILE "
            "--json` as a whole process on a crafted capture of distinct, never-answered "
            "SYNs; peak memory is the process's VmHWM (see bench.py).  Target: under "
            f"{LIMIT_MB:.0f} MB, every flow listed.\n\n"
            "| capture | wall time | peak memory | flows listed | retired early | met |\n"
            "| --- | ---: | ---: | ---: | ---: | --- |\n" + line + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
