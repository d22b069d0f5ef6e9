"""The pcapng reader's run of packets read in place (``_packets_in_buffer``) gives what
its block-by-block way gives: the same packets, comments and interfaces, and on a
damaged file the same packets before the damage and the same error, offsets included.

The block-by-block way is forced by a stream that hands out a few bytes a read: then no
block after the first ever lies whole in the reader's buffer, so every block goes
through ``_block`` and ``_epb``.  Files: every pcapng we have (corpus, damaged, repro),
crafted ones (big-endian, options, comments, several interfaces, if_tsresol), and a few
hundred seeded mutants of them (flipped bytes, cut ends).
"""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import pytest

from capdissect.errors import CaptureError
from capdissect.packets import RawPacket
from capdissect.sources.pcapng import EPB, IDB, PcapngReader
from capdissect.sources.stream import ChunkReader
from tests.unit.test_capture import block, option, shb

TESTS = Path(__file__).parents[1]
SEED = 20261205
MUTANTS = 300


class Trickle:
    """A stream giving at most *step* bytes a read."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data = data
        self.pos = 0
        self.step = step

    def read(self, size: int = -1, /) -> bytes:
        n = self.step if size < 0 else min(size, self.step)
        piece = self.data[self.pos:self.pos + n]
        self.pos += len(piece)
        return piece

    def close(self) -> None:
        pass


class Whole(Trickle):
    def read(self, size: int = -1, /) -> bytes:
        piece = self.data[self.pos:] if size < 0 else self.data[self.pos:self.pos + size]
        self.pos += len(piece)
        return piece


def read_all(stream: Trickle) -> tuple[list[RawPacket], list[object], str | None]:
    """The packets, the interfaces and the error (None: read to the end)."""
    packets: list[RawPacket] = []
    reader = None
    try:
        reader = PcapngReader(ChunkReader(stream))
        for packet in reader:
            packets.append(packet)
    except CaptureError as exc:
        return packets, [] if reader is None else list(reader.interfaces), str(exc)
    return packets, list(reader.interfaces), None


def crafted(order: str) -> bytes:
    """A section in *order* with two interfaces (one in nanoseconds), packets on both,
    packets with a comment, with other options, and with no options."""
    idb0 = block(order, IDB, struct.pack(order + "HHI", 1, 0, 262144)
                 + option(order, 2, b"lo") + option(order, 0, b""))
    idb1 = block(order, IDB, struct.pack(order + "HHI", 101, 0, 96)
                 + option(order, 9, b"\x09") + option(order, 0, b""))
    blocks = [shb(order), idb0, idb1]
    for i in range(40):
        data = bytes(range(i % 7, i % 7 + 40 + i))
        ifid = i % 2
        caplen = min(len(data), 96) if ifid else len(data)
        opts = b""
        if i % 5 == 1:
            opts = option(order, 1, f"comment {i}".encode()) + option(order, 0, b"")
        elif i % 5 == 2:
            opts = option(order, 2, b"\0\0\0\x01") + option(order, 0, b"")  # epb_flags
        elif i % 5 == 3:
            opts = option(order, 1, b"one") + option(order, 1, b"two")
        elif i % 10 == 4:
            opts = option(order, 1, b"")  # an empty comment, no end option
        body = struct.pack(order + "IIIII", ifid, i, 1_000_000 * i + 17, caplen, len(data) + 3)
        body += data[:caplen] + b"\0" * (-caplen % 4) + opts
        blocks.append(block(order, EPB, body))
        if i == 20:
            blocks.append(block(order, 5, b"statistics"))  # a block we skip
    return b"".join(blocks)


def pcapng_files() -> dict[str, bytes]:
    files = {"crafted-le": crafted("<"), "crafted-be": crafted(">"),
             "two-sections": crafted("<") + crafted(">")}
    for path in sorted(TESTS.glob("*/*.pcapng")) + sorted(TESTS.glob("*/*.pcapng.gz")):
        data = path.read_bytes()
        files[path.name] = gzip.decompress(data) if path.suffix == ".gz" else data
    return files


FILES = pcapng_files()


def _same_both_ways(data: bytes) -> tuple[list[RawPacket], list[object], str | None]:
    whole = read_all(Whole(data))
    assert whole == read_all(Trickle(data))
    return whole


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_file_reads_the_same_in_runs_and_block_by_block(name: str) -> None:
    packets, _interfaces, _error = _same_both_ways(FILES[name])
    assert packets or name.startswith(("C0", "D"))


def test_the_run_reads_the_packets() -> None:
    """The run is not skipped: on a whole file its first packet comes with the next 20,
    read in place up to the statistics block, where the reader then stands."""
    data = FILES["crafted-le"]
    chunks = ChunkReader(Whole(data))
    packets = iter(PcapngReader(chunks))
    next(packets)
    assert chunks.offset == data.index(block("<", 5, b"statistics"))


def test_mutants_read_the_same_both_ways() -> None:
    rng = random.Random(SEED)
    sources = [data for data in FILES.values() if 0 < len(data) < 200_000]
    errors = 0
    for _ in range(MUTANTS):
        data = bytearray(rng.choice(sources))
        for _flip in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(data), 4096))
            data[at] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)):]
        errors += _same_both_ways(bytes(data))[2] is not None
    assert errors  # the mutants do reach the checks
