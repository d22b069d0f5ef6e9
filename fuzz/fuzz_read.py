"""Coverage-guided fuzzing of the read path with atheris (libFuzzer for Python).

Each input goes through everything ``capdissect read`` does with a file:

* as a whole capture file: ``CaptureFile`` over the bytes (pcap, pcapng, gzip), then for
  each packet the tcpdump printer, ``stack.decode``, the annotator and the tracker;
* and, so that the dissectors are reached without the file container in the way, as one
  packet: byte 0 picks the link type, bytes 1-2 the printer's options, the rest is the
  packet (inputs that start with a capture magic number are files only).

The expected outcome of a bad input is a ``CapdissectError`` (SPEC §6: "raise only the
project's own error types").  Anything else escapes ``one_input`` and atheris reports it
as a crash, writing the input to ``crash-<sha1>``; a hang is caught by libFuzzer's
``-timeout`` and unbounded memory by ``-rss_limit_mb``.

Run it with ``make fuzz`` (which builds the seed corpus and time-boxes the run), or by
hand: ``python fuzz/fuzz_read.py CORPUS_DIR -max_total_time=60``.  Reproduce a crash with
``python fuzz/fuzz_read.py crash-<sha1>``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

import atheris


class SourceOnly(importlib.abc.MetaPathFinder):
    """Import capdissect from its .py files even where setup.py compiled them with mypyc:
    atheris measures coverage in Python bytecode only, and the compiled modules (the
    dissectors, the tracker) are the ones most worth covering."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("capdissect.") or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = Path(entry) / f"{leaf}.py"
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


sys.meta_path.insert(0, SourceOnly())

with atheris.instrument_imports():
    from capdissect.dissect import link
    from capdissect.dissect.stack import decode
    from capdissect.errors import CapdissectError
    from capdissect.packets import RawPacket
    from capdissect.report.annotate import Annotator
    from capdissect.report.tcpdump.context import PrintOptions
    from capdissect.report.tcpdump.printer import TcpdumpPrinter
    from capdissect.sources.files import CaptureFile
    from capdissect.tracking.tracker import Tracker

# Packets per input: enough for the printer's and tracker's state to matter, few enough
# that one input stays fast (libFuzzer values executions per second).
MAX_PACKETS: Final = 64
LINKTYPES: Final = (
    link.EN10MB, link.NULL, link.LOOP, link.RAW, link.RAW_OLD, link.RAW_OLD2, link.IPV4,
    link.IPV6, link.LINUX_SLL, link.LINUX_SLL2, 147,  # 147: a link type nobody decodes
)
MAGICS: Final = (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a", b"\x1f\x8b",
)


HEX_DUMPS: Final = ((0, 0), (1, 0), (2, 0), (0, 1), (0, 2))  # none, -x, -xx, -X, -XX


def options_from(bits: int) -> PrintOptions:
    """16 bits spread over tcpdump's flags, so every combination is reachable."""
    x, big_x = HEX_DUMPS[((bits >> 4) & 7) % len(HEX_DUMPS)]
    return PrintOptions(
        n=min(bits & 3, 2), v=(bits >> 2) & 3, x=x, X=big_x, e=bool(bits & 0x80),
        S=bool(bits & 0x100), K=bool(bits & 0x200), t=((bits >> 10) & 7) % 6,
    )


def _no_ifname(index: int) -> str | None:
    return None


def run_packets(packets: list[RawPacket], options: PrintOptions) -> None:
    """Print, decode, annotate and track *packets* as ``capdissect read`` would."""
    printer = TcpdumpPrinter(options, ifname=_no_ifname)
    # read's annotator (its own tracker, without events) and the tracker flows and
    # timeline use (with events); few open flows, so eviction runs too.
    annotator = Annotator(Tracker(keep_events=False, max_open=8), checksums=options.v > 0)
    tracker = Tracker(max_open=8)
    for frame, raw in enumerate(packets, 1):
        printer.format(raw)
        pkt = decode(raw)
        annotator.annotate(frame, pkt)
        tracker.feed(frame, pkt)
        if frame % 4 == 0:
            tracker.drain()
    tracker.close()
    annotator.tracker.close()


def read_file(data: bytes) -> list[RawPacket]:
    """The packets the readers yield before they stop (a CapdissectError is expected)."""
    packets: list[RawPacket] = []
    try:
        with CaptureFile(io.BytesIO(data), "fuzz", owned=False) as capture:
            for raw in capture:
                packets.append(raw)
                if len(packets) >= MAX_PACKETS:
                    break
    except CapdissectError:
        pass
    return packets


def one_input(data: bytes) -> None:
    packets = read_file(data)
    if packets:
        run_packets(packets, options_from(int.from_bytes(data[-2:], "big")))
    if len(data) >= 3 and not data.startswith(MAGICS):
        raw = RawPacket(1, 0, LINKTYPES[data[0] % len(LINKTYPES)], len(data) - 3, data[3:])
        bits = int.from_bytes(data[1:3], "big")
        run_packets([raw, raw._replace(ts_sec=2)], options_from(bits))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
