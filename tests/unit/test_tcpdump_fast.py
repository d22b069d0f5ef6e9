"""The fast path (report/tcpdump/fast.py) prints exactly what the full printer prints.

Every packet of the corpus (and of a capture with the shapes the fast path must refuse)
goes through two printers side by side: one with the fast path, one without.  The texts
must be equal, and the fast path must have taken a fair share of the packets, so that
this test cannot pass by the fast path declining everything.  The same check runs on
the module as plain Python, which is what a machine without a C compiler runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from capdissect.packets import RawPacket
from capdissect.report.tcpdump import fast as tcpdump_fast
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import open_capture

TESTS = Path(__file__).parent.parent
# The tcpdump corpus, and the bundled real loopback captures (many shapes of TCP and UDP
# over 127.0.0.1 and ::1).
SOURCES = [TESTS / "corpus", TESTS / "corpus-extra", TESTS.parent / "captures"]
OPTION_SETS = {
    "nn": PrintOptions(n=2),
    "nn-v": PrintOptions(n=2, v=1),
    "nn-v-X": PrintOptions(n=2, v=1, X=1),
    "nn-vK": PrintOptions(n=2, v=1, K=True),
    "XX": PrintOptions(n=2, X=2),
    "x": PrintOptions(n=2, x=1),
    "n-S": PrintOptions(n=1, S=True),
    "names": PrintOptions(),
}


def corpus_packets() -> Iterator[RawPacket]:
    for path in sorted(p for folder in SOURCES for p in folder.glob("*.pcap*")):
        with open_capture(path) as capture:
            try:
                yield from capture
            except Exception:  # the damaged files: their readable packets are enough
                continue


class Counting:
    """Stands in for a FastPath and counts the packets it takes."""

    def __init__(self, fast: Any) -> None:
        self.fast = fast
        self.taken = 0

    def format(self, sec: int, nsec: int, wire_len: int, data: bytes) -> str | None:
        before = dict(self.fast.isn)
        text: str | None = self.fast.format(sec, nsec, wire_len, data)
        self.taken += text is not None
        # A packet it declines goes to the full printer: it must leave no trace.
        assert text is not None or self.fast.isn == before
        return text


def compare(module: ModuleType, options: PrintOptions, packets: list[RawPacket]) -> int:
    """Print *packets* with and without the fast path of *module*; return how many the
    fast path took."""
    fast = TcpdumpPrinter(options)
    counting = Counting(module.FastPath(fast.names, fast.isn, v=options.v, x=options.x,
                                        X=options.X, S=options.S, K=options.K))
    fast.fast = counting  # type: ignore[assignment]
    full = TcpdumpPrinter(options)
    full.fast = None
    for number, pkt in enumerate(packets, 1):
        assert fast.format(pkt) == full.format(pkt), f"packet {number}"
    return counting.taken


@pytest.fixture(scope="module")
def packets() -> list[RawPacket]:
    return list(corpus_packets())


@pytest.fixture(scope="module")
def pure_module() -> ModuleType:
    """report/tcpdump/fast.py loaded from its source, whether or not a compiled copy exists."""
    # Not tcpdump_fast.__file__: when another compiled module imports it first, mypyc's
    # group library names a path that does not exist (capdissect/capdissect/...).
    source = Path(importlib.import_module("capdissect.report.tcpdump").__path__[0]) / "fast.py"
    spec = importlib.util.spec_from_file_location("tcpdump_fast_pure", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", OPTION_SETS)
def test_fast_path_prints_what_the_full_printer_prints(name: str,
                                                       packets: list[RawPacket]) -> None:
    taken = compare(tcpdump_fast, OPTION_SETS[name], packets)
    assert taken > len(packets) // 3, f"the fast path took only {taken} of {len(packets)}"


@pytest.mark.parametrize("name", ["nn", "nn-v-X"])
def test_the_python_source_agrees_too(name: str, packets: list[RawPacket],
                                      pure_module: ModuleType) -> None:
    taken = compare(pure_module, OPTION_SETS[name], packets)
    assert taken > len(packets) // 3


def test_options_it_does_not_cover_leave_it_out() -> None:
    for options in (PrintOptions(e=True), PrintOptions(t=3), PrintOptions(v=2)):
        assert TcpdumpPrinter(options).fast is None


def test_refuses_what_it_does_not_print(packets: list[RawPacket]) -> None:
    """Shapes the full printer must take: a cut frame, IPv4 options, a fragment, a wire
    length shorter than the capture, ICMP."""
    printer = TcpdumpPrinter(PrintOptions(n=2))
    assert printer.fast is not None
    tcp4 = next(p for p in packets if p.linktype == 1 and p.data[12:14] == b"\x08\x00"
                and p.data[23] == 6 and p.data[14] == 0x45
                and printer.fast.format(p.ts_sec, p.ts_nsec, p.wire_len, p.data))
    data = tcp4.data
    fast = TcpdumpPrinter(PrintOptions(n=2)).fast
    assert fast is not None
    assert fast.format(tcp4.ts_sec, 0, len(data), data) is not None
    cut = data[:-1]
    options = data[:14] + b"\x46" + data[15:]
    fragment = data[:20] + b"\x20" + data[21:]
    icmp = data[:23] + b"\x01" + data[24:]
    for shape, wire in ((cut, len(data)), (options, len(data)), (fragment, len(data)),
                        (icmp, len(data)), (data, len(data) - 1)):
        assert fast.format(tcp4.ts_sec, 0, wire, shape) is None, shape[:24].hex()
    # A pcap fraction of a second or more (a damaged record): tcpdump prints the number
    # as it is, "27.1234567", which the full printer does.
    assert fast.format(tcp4.ts_sec, 1_234_567_000, len(data), data) is None
    full = TcpdumpPrinter(PrintOptions(n=2)).format(tcp4._replace(ts_nsec=1_234_567_000))
    assert full.split(" ", 1)[0].endswith(".1234567")


def have_compiler() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None and not os.environ.get("CAPDISSECT_PURE")


@pytest.mark.skipif(not have_compiler(), reason="no C compiler (or CAPDISSECT_PURE): the "
                    "modules run as Python")
def test_compiled_where_a_compiler_is() -> None:
    """`make install` compiles the hot modules (setup.py); a silent build failure
    would leave read four times slower with every other test passing."""
    from capdissect import packets as records
    from capdissect.dissect import checksum
    from capdissect.report.json import packet as packet_json
    from capdissect.report.tcpdump import hexdump
    for module in (tcpdump_fast, hexdump, checksum, records, packet_json):
        # The suffix of __spec__.origin says compiled or not, but its directory cannot be
        # trusted: mypyc's group library may name a path that does not exist
        # (capdissect/capdissect/...).  The package's own folder holds both files.
        assert Path(module.__spec__.origin or "").suffix in (".so", ".pyd"), (
            f"{module.__name__} is not compiled: make install")
        package, _, leaf = module.__name__.rpartition(".")
        folder = Path(importlib.import_module(package).__path__[0])
        source = folder / f"{leaf}.py"
        compiled = max(folder.glob(f"{leaf}.*.so"), key=lambda p: p.stat().st_mtime)
        assert source.stat().st_mtime <= compiled.stat().st_mtime, (
            f"{module.__name__}: the compiled copy is older than its source: make install")


def test_a_bug_in_the_fast_path_costs_one_packet_not_the_run() -> None:
    """read's batch loop: when the fast path raises, the packets before it keep their
    text, the failing one gets the 'cannot print' line, and the rest are printed."""
    from capdissect.commands.read import _batch_lines

    class Failing:
        """A fast path that prints like the real one but fails on one packet's bytes."""

        def __init__(self, real: Any, bad: bytes) -> None:
            self.real = real
            self.bad = bad

        def format(self, sec: int, nsec: int, wire_len: int, data: bytes) -> str | None:
            if data == self.bad:
                raise IndexError("planted")
            text: str | None = self.real.format(sec, nsec, wire_len, data)
            return text

        def format_batch(self, batch: Any, first: int, out: list[str]) -> int:
            for i in range(first, len(batch)):
                text = self.format(batch.ts_sec(i), batch.ts_nsec(i), batch.wire_len(i),
                                   batch.data(i))
                if text is None:
                    return i
                out.append(text)
            return len(batch)

    path = TESTS.parent / "captures" / "tcp-basic.pcap"
    with open_capture(path) as capture:
        packets = list(capture)
    reference = TcpdumpPrinter(PrintOptions(n=2))
    expected = [reference.format(p) for p in packets]
    printer = TcpdumpPrinter(PrintOptions(n=2))
    printer.fast = Failing(printer.fast, packets[2].data)  # type: ignore[assignment]
    with open_capture(path) as capture:
        texts = list(_batch_lines(capture.batches(), printer, None))
    assert len(texts) == len(expected) == 11
    assert texts[:2] == expected[:2] and texts[3:] == expected[3:]
    assert texts[2] == ("[capdissect: cannot print packet 3 (IndexError: planted); "
                        "please report it with the capture]")


def test_a_declined_packet_leaves_the_sequence_table_alone() -> None:
    """A capture that starts mid-connection with a SACK (which the fast path leaves to
    the full printer): its first packet sets the relative-sequence base, and tcpdump
    prints it with absolute numbers, as the full printer does."""
    path = TESTS.parent / "captures" / "tcp-basic.pcap"
    with open_capture(path) as capture:
        ack = list(capture)[2]  # the handshake's ACK: nop,nop,TS in 12 option bytes
    assert ack.data[54:58] == b"\x01\x01\x08\x0a"
    sack = ack.data[:54] + b"\x01\x01\x05\x0a" + bytes(range(8)) + ack.data[66:]
    mid_stream = ack._replace(data=sack)
    fast = TcpdumpPrinter(PrintOptions(n=2))
    full = TcpdumpPrinter(PrintOptions(n=2))
    full.fast = None
    first = fast.format(mid_stream)
    assert first == full.format(mid_stream)
    assert ", ack 1327294000, " in first  # absolute: this packet set the base
    second = fast.format(mid_stream)
    assert second == full.format(mid_stream)
    assert ", ack 1, " in second  # relative to it from then on
