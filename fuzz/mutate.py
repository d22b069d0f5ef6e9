"""A structure-aware mutator for pcap, pcapng and gzip captures (issue 21's campaign).

Byte flipping rarely gets past a file header; this mutator knows the layouts and lies in
the places readers trust: the pcap file header (magic, version, snapshot length, link
type) and record headers (timestamps, captured and wire lengths); pcapng blocks (type,
total length and trailer, section versions and byte order, interface link types, snapshot
lengths and ``if_tsresol``/``if_tsoffset``/end-of-options options, packet interface ids,
lengths and timestamps); the IPv4, IPv6, TCP and UDP length fields inside the packets;
whole records and blocks (cut, dropped, repeated, swapped); and the gzip wrapper (bad
CRC or size, corrupt deflate data, a cut, trailing garbage, several members).

Seeds are the first packets of each capture listed in ``fuzz/seeds.txt`` (``tests/corpus``
and ``captures/``), so every mutant is small and every command runs in milliseconds.
Everything is drawn from one ``random.Random(seed)``: the same seed gives the same mutants.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
# The seed captures, listed (not globbed) so that a capture added to the repository does
# not change the mutants of a fixed seed (a failure of the test names its mutant by number).
SEED_LIST: Final = Path(__file__).with_name("seeds.txt")
SEED_PACKETS: Final = 12  # records or packet blocks kept from each seed capture
PCAP_MAGICS: Final = (0xA1B2C3D4, 0xA1B23C4D)
SHB: Final = 0x0A0D0D0A
PACKET_BLOCKS: Final = (2, 3, 6)
# Values that sit on the edges readers and printers must handle.
EDGES_32: Final = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 262144, 262145,
                   999_999, 1_000_000, 999_999_999, 1_000_000_000, 0x7FFFFFFF, 0x80000000,
                   0xFFFFFFFE, 0xFFFFFFFF)
LINK_TYPES: Final = (0, 1, 12, 14, 101, 104, 108, 113, 147, 228, 229, 276, 0xFFFF, 0x10001)


@dataclass
class Capture:
    """A seed taken apart: a pcap (``header`` and ``records``) or a pcapng (``blocks``),
    each record or block as its raw bytes, in the file's byte order."""

    kind: str  # "pcap" or "pcapng"
    order: str
    header: bytes = b""
    units: list[bytes] = field(default_factory=list)

    def join(self) -> bytes:
        return self.header + b"".join(self.units)


def load_seeds() -> list[Capture]:
    seeds = []
    for name in SEED_LIST.read_text().split():
        capture = parse((ROOT / name).read_bytes())
        if capture is not None and capture.units:
            seeds.append(capture)
    return seeds


def parse(raw: bytes) -> Capture | None:
    """The first SEED_PACKETS records or packet blocks of a well-formed capture."""
    if len(raw) >= 24:
        for order in "<>":
            if struct.unpack_from(order + "I", raw)[0] in PCAP_MAGICS:
                return _parse_pcap(raw, order)
        if struct.unpack_from("<I", raw)[0] == SHB:
            order = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            return _parse_pcapng(raw, order)
    return None


def _parse_pcap(raw: bytes, order: str) -> Capture:
    capture = Capture("pcap", order, raw[:24])
    pos = 24
    while pos + 16 <= len(raw) and len(capture.units) < SEED_PACKETS:
        caplen = struct.unpack_from(order + "I", raw, pos + 8)[0]
        if pos + 16 + caplen > len(raw):
            break
        capture.units.append(raw[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return capture


def _parse_pcapng(raw: bytes, order: str) -> Capture:
    capture = Capture("pcapng", order)
    pos = 0
    packets = 0
    while pos + 12 <= len(raw) and packets < SEED_PACKETS:
        btype, total = struct.unpack_from(order + "II", raw, pos)
        if total < 12 or pos + total > len(raw):
            break
        capture.units.append(raw[pos : pos + total])
        packets += btype in PACKET_BLOCKS
        pos += total
    return capture


class Mutator:
    """``mutant()`` gives the next mutant: (what was done, the file's bytes)."""

    def __init__(self, seed: int, seeds: list[Capture] | None = None) -> None:
        self.rng = random.Random(seed)
        self.seeds = seeds if seeds is not None else load_seeds()
        self._structure: list[Callable[[Capture], str]] = [
            self._record_field, self._record_field, self._packet_lengths,
            self._packet_lengths, self._file_header, self._drop, self._repeat, self._swap,
        ]

    def mutant(self) -> tuple[str, bytes]:
        rng = self.rng
        seed = self.rng.choice(self.seeds)
        capture = Capture(seed.kind, seed.order, seed.header, list(seed.units))
        done = [rng.choice(self._structure)(capture) for _ in range(rng.choice((1, 1, 2, 3)))]
        data = capture.join()
        roll = rng.random()
        if roll < 0.15:
            data, what = self._cut(data)
            done.append(what)
        elif roll < 0.22:
            data, what = self._flip(data)
            done.append(what)
        if rng.random() < 0.25:
            data, what = self._gzip(data)
            done.append(what)
        return f"{seed.kind}: {'; '.join(done)}", data

    # ----- file and record headers ----------------------------------------------------------
    def _value32(self) -> int:
        rng = self.rng
        return rng.choice(EDGES_32) if rng.random() < 0.7 else rng.getrandbits(32)

    def _file_header(self, capture: Capture) -> str:
        rng = self.rng
        if capture.kind == "pcap":
            head = bytearray(capture.header)
            o = capture.order
            which = rng.choice(("magic", "version", "snaplen", "linktype"))
            if which == "magic":
                struct.pack_into(o + "I", head, 0, rng.choice((*PCAP_MAGICS, 0xA1B2C3D5,
                                                                  rng.getrandbits(32))))
            elif which == "version":
                struct.pack_into(o + "HH", head, 4, rng.choice((2, 1, 3)), rng.choice((4, 3, 0)))
            elif which == "snaplen":
                struct.pack_into(o + "I", head, 16, self._value32())
            else:
                struct.pack_into(o + "I", head, 20, rng.choice(LINK_TYPES)
                                 | (rng.choice((0, 0, 0x10000000)) if rng.random() < 0.2 else 0))
            capture.header = bytes(head)
            return f"pcap header {which}"
        return self._section(capture)

    def _section(self, capture: Capture) -> str:
        """pcapng: a section header's version, byte-order magic or length, or an IDB."""
        rng = self.rng
        o = capture.order
        shbs = [i for i, u in enumerate(capture.units) if struct.unpack_from(o + "I", u)[0] == SHB]
        idbs = [i for i, u in enumerate(capture.units) if struct.unpack_from(o + "I", u)[0] == 1]
        if idbs and (not shbs or rng.random() < 0.6):
            return self._interface(capture, rng.choice(idbs))
        i = rng.choice(shbs)
        unit = bytearray(capture.units[i])
        which = rng.choice(("version", "byte-order", "length", "section-length"))
        if which == "version":
            struct.pack_into(o + "HH", unit, 12, rng.choice((1, 1, 2, 0)), rng.choice((0, 1, 2, 3)))
        elif which == "byte-order":
            struct.pack_into(o + "I", unit, 8, rng.choice((0x4D3C2B1A, 0x1A2B3C4E)))
        elif which == "length":
            struct.pack_into(o + "I", unit, 4, rng.choice((0, 12, 24, 28, len(unit) + 4,
                                                           len(unit) - 4, 0x200000)))
        else:
            struct.pack_into(o + "q", unit, 16, rng.choice((-1, 0, 1 << 40)))
        capture.units[i] = bytes(unit)
        return f"section header {which}"

    def _interface(self, capture: Capture, i: int) -> str:
        rng = self.rng
        o = capture.order
        unit = bytearray(capture.units[i])
        which = rng.choice(("linktype", "snaplen", "tsresol", "tsoffset", "end-of-options",
                            "option-length"))
        if which == "linktype":
            struct.pack_into(o + "H", unit, 8, rng.choice(LINK_TYPES) & 0xFFFF)
        elif which == "snaplen":
            struct.pack_into(o + "I", unit, 12, self._value32())
        else:
            body = bytes(unit[16:-4])
            if which == "tsresol":
                value = bytes([rng.choice((0, 3, 6, 9, 18, 19, 20, 0x80 | 10, 0x80 | 63,
                                           0x80 | 64, 0xFF))])
                body = _option(o, 9, value * rng.choice((1, 1, 1, 2))) + body
                if rng.random() < 0.2:
                    body = _option(o, 9, b"\x06") + body
            elif which == "tsoffset":
                size = rng.choice((8, 8, 4))
                body = _option(o, 14, struct.pack(o + "q", rng.choice(
                    (-1, 1, 2**31 + 5, 2**32 + 5, -(2**32), 2**62)))[:size]) + body
            elif which == "end-of-options":
                body = struct.pack(o + "HH", 0, 4) + bytes(4) + body
            else:
                body = struct.pack(o + "HH", 2, rng.choice((0xFFFF, 40, 3))) + b"lo\0\0" + body
            unit = bytearray(_block(o, 1, bytes(unit[8:16]) + body))
        capture.units[i] = bytes(unit)
        return f"interface {which}"

    def _record_field(self, capture: Capture) -> str:
        rng = self.rng
        o = capture.order
        i = rng.randrange(len(capture.units))
        unit = bytearray(capture.units[i])
        if capture.kind == "pcap":
            which = rng.choice(("ts_sec", "ts_frac", "caplen", "wire_len", "wire_len"))
            at = {"ts_sec": 0, "ts_frac": 4, "caplen": 8, "wire_len": 12}[which]
            caplen = len(unit) - 16
            value = rng.choice((self._value32(), max(caplen - 1, 0), caplen + 1, caplen * 2))
            struct.pack_into(o + "I", unit, at, value & 0xFFFFFFFF)
            capture.units[i] = bytes(unit)
            return f"record {i} {which}"
        btype = struct.unpack_from(o + "I", unit)[0]
        which = rng.choice(("type", "length", "trailer", "interface", "caplen", "wire_len",
                            "timestamp", "comment"))
        if which == "type":
            struct.pack_into(o + "I", unit, 0, rng.choice((1, 2, 3, 4, 5, 6, 0xBAD, SHB, 7)))
        elif which == "length":
            struct.pack_into(o + "I", unit, 4, rng.choice((0, 8, 12, 13, len(unit) - 4,
                                                           len(unit) + 4, 0x1000000 + 4)))
        elif which == "trailer":
            struct.pack_into(o + "I", unit, len(unit) - 4, rng.choice((0, len(unit) + 4, 12)))
        elif btype in (2, 6) and len(unit) >= 32:
            field_at: int | None = {"interface": 8, "timestamp": 12, "caplen": 20,
                                    "wire_len": 24, "comment": None}[which]
            if field_at is None:
                body = bytes(unit[8:-4]) + _option(o, 1, b"\x1b]0;x\x07<b>" * rng.randint(0, 3),
                                                   rng.choice((None, 0xFFFF, 1)))
                unit = bytearray(_block(o, btype, body))
            elif which == "interface":
                struct.pack_into(o + ("H" if btype == 2 else "I"), unit, field_at,
                                 rng.choice((0, 1, 3)))
            else:
                caplen = struct.unpack_from(o + "I", unit, 20)[0]
                struct.pack_into(o + "I", unit, field_at, rng.choice(
                    (self._value32(), max(caplen - 1, 0), caplen + 1)))
        capture.units[i] = bytes(unit)
        return f"block {i} {which}"

    # ----- packets: the IP and transport length fields ---------------------------------------
    def _packet_lengths(self, capture: Capture) -> str:
        rng = self.rng
        o = capture.order
        packets = [i for i, u in enumerate(capture.units)
                   if capture.kind == "pcap" or struct.unpack_from(o + "I", u)[0] == 6]
        if not packets:
            return "no packet to change"
        i = rng.choice(packets)
        unit = bytearray(capture.units[i])
        start = 16 if capture.kind == "pcap" else 28
        data_len = (len(unit) - 16 if capture.kind == "pcap"
                    else struct.unpack_from(o + "I", unit, 20)[0])
        end = min(start + data_len, len(unit))
        ip = _find_ip(unit, start, end)
        if ip is None:
            return self._flip_in(unit, capture, i, start, end)
        version = unit[ip] >> 4
        which = rng.choice(("ip-header-length", "ip-length", "protocol", "fragment",
                            "transport-length", "transport-length"))
        if version == 4:
            ihl = (unit[ip] & 0x0F) * 4
            transport = ip + ihl
            if which == "ip-header-length":
                unit[ip] = 0x40 | rng.choice((0, 1, 4, 5, 6, 15))
            elif which == "ip-length":
                struct.pack_into("!H", unit, ip + 2, rng.choice((0, 19, 20, 21, ihl + 7, 0xFFFF,
                                                                 rng.getrandbits(16))))
            elif which == "protocol":
                unit[ip + 9] = rng.choice((1, 4, 6, 17, 41, 58, 47, 50, 132, 255))
            elif which == "fragment":
                struct.pack_into("!H", unit, ip + 6, rng.choice((0x2000, 0x0001, 0x3FFF, 0x8000)))
            proto = unit[ip + 9]
        else:
            transport = ip + 40
            if which in ("ip-header-length", "ip-length"):
                struct.pack_into("!H", unit, ip + 4, rng.choice((0, 1, 8, 20, 0xFFFF,
                                                                 rng.getrandbits(16))))
            elif which == "protocol":
                unit[ip + 6] = rng.choice((0, 6, 17, 43, 44, 58, 59, 60, 41, 4))
            elif which == "fragment":
                unit[ip + 6] = 44
            proto = unit[ip + 6]
        if which == "transport-length" and transport + 20 <= end:
            if proto == 6:
                unit[transport + 12] = rng.choice((0, 1, 4, 5, 6, 15)) << 4 | (
                    unit[transport + 12] & 0x0F)
                if rng.random() < 0.5 and transport + 22 <= end:  # an option's length byte
                    unit[transport + 20] = rng.choice((2, 3, 4, 8, 30))
                    unit[transport + 21] = rng.choice((0, 1, 2, 40, 255))
            elif proto == 17:
                struct.pack_into("!H", unit, transport + 4, rng.choice((0, 7, 8, 9, 0xFFFF)))
            else:
                unit[transport] = rng.choice((3, 11, 1, 2, 4, 128))
        capture.units[i] = bytes(unit)
        return f"packet {i} ipv{version} {which}"

    def _flip_in(self, unit: bytearray, capture: Capture, i: int, start: int, end: int) -> str:
        if end > start:
            pos = self.rng.randrange(start, end)
            unit[pos] ^= 1 << self.rng.randrange(8)
        capture.units[i] = bytes(unit)
        return f"packet {i} bit flipped"

    # ----- whole records and blocks -------------------------------------------------------
    def _drop(self, capture: Capture) -> str:
        if len(capture.units) < 2:
            return "nothing to drop"
        i = self.rng.randrange(len(capture.units))
        del capture.units[i]
        return f"unit {i} dropped"

    def _repeat(self, capture: Capture) -> str:
        i = self.rng.randrange(len(capture.units))
        capture.units.insert(i, capture.units[i])
        return f"unit {i} repeated"

    def _swap(self, capture: Capture) -> str:
        if len(capture.units) < 2:
            return "nothing to swap"
        i = self.rng.randrange(len(capture.units) - 1)
        capture.units[i], capture.units[i + 1] = capture.units[i + 1], capture.units[i]
        return f"units {i} and {i + 1} swapped"

    # ----- bytes: cuts and flips, then gzip -------------------------------------------------
    def _cut(self, data: bytes) -> tuple[bytes, str]:
        at = self.rng.randrange(len(data) + 1)
        return data[:at], f"cut at {at}"

    def _flip(self, data: bytes) -> tuple[bytes, str]:
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            if buf:
                buf[self.rng.randrange(len(buf))] = self.rng.getrandbits(8)
        return bytes(buf), "bytes changed"

    def _gzip(self, data: bytes) -> tuple[bytes, str]:
        rng = self.rng
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        which = rng.choice(("whole", "whole", "members", "bad-crc", "bad-size", "corrupt",
                            "cut", "trailing-garbage", "zero-padding"))
        if which == "members":
            half = len(data) // 2
            packed = gzip.compress(data[:half], mtime=0) + gzip.compress(data[half:], mtime=0)
        elif which == "bad-crc":
            packed = packed[:-8] + struct.pack("<I", zlib.crc32(data) ^ 1) + packed[-4:]
        elif which == "bad-size":
            packed = packed[:-4] + struct.pack("<I", len(data) + 1)
        elif which == "corrupt" and len(packed) > 20:
            buf = bytearray(packed)
            at = rng.randrange(10, len(buf) - 8)
            buf[at : at + 4] = rng.randbytes(4)
            packed = bytes(buf)
        elif which == "cut":
            packed = packed[: rng.randrange(2, len(packed))]
        elif which == "trailing-garbage":
            packed += rng.choice((b"garbage", b"\x1f", b"\x1f\x8b\x08", rng.randbytes(16)))
        elif which == "zero-padding":
            packed += bytes(rng.choice((1, 4, 512)))
        return packed, f"gzip {which}"


def _find_ip(buf: bytearray, start: int, end: int) -> int | None:
    """Where an IPv4 or IPv6 header starts in a packet, trying the usual link headers
    (Ethernet with or without a VLAN tag, raw IP, BSD loopback, Linux SLL and SLL2)."""
    for offset in (14, 18, 0, 4, 16, 20):
        at = start + offset
        if at + 40 <= end and buf[at] >> 4 in (4, 6) and (buf[at] >> 4 == 6 or buf[at] & 0x0F >= 5):
            if offset in (14, 18) and bytes(buf[at - 2 : at]) not in (b"\x08\x00", b"\x86\xdd"):
                continue
            return at
    return None


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack(order + "II", btype, len(body) + 12) + body + struct.pack(
        order + "I", len(body) + 12)


def _option(order: str, code: int, value: bytes, length: int | None = None) -> bytes:
    length = len(value) if length is None else length
    return struct.pack(order + "HH", code, length) + value + bytes(-len(value) % 4)
