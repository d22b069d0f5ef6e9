"""Malformed captures, made by the test suite, read by capdissect and by tcpdump (SPEC §6).

Every file here is generated in a temporary directory from the corpus or from crafted
bytes: a small pcap and a small pcapng cut at every record (block) boundary and inside
each record; a wrong magic number; a zero, a small and a huge snapshot length; record
and block lengths that are 0, 1, not a multiple of 4, absurd or past the end; an IPv4
header-length lie; TCP options of length 0, 1 and past the header; IPv6 extension-header
chains of 64 headers and a routing header with a huge length; ICMP and ICMPv6 errors
quoting cut packets.

Each file is run through ``capdissect read F --plain -nn -v -X`` (the console script, with
TZ=UTC) and ``tcpdump -r F -nn -v -X``.  For every file:

* capdissect prints no traceback and ends within the timeout;
* its exit status is tcpdump's.  tcpdump (libpcap 1.10) exits 1 when a file is cut or
  corrupt, after printing every whole packet before the damage, with one line such as
  ``tcpdump: pcap_loop: truncated dump file; tried to read 16 header bytes, only got 6``
  (or, before the first packet, ``tcpdump: truncated dump file; ...``);
* when capdissect stops with an error it prints one clear ``capdissect: ...`` line on
  stderr (besides the ``reading from file`` banner);
* every packet tcpdump printed is printed identically, and no packet more.

Where capdissect deliberately differs from tcpdump, the case says so (``deviation``) and
checks what capdissect does instead.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.support.compare import capdissect_command, fixed_env, split_blocks

CORPUS: Final = Path(__file__).parents[1] / "corpus"
OPTIONS: Final = ("-nn", "-v", "-X")
TIMEOUT_S: Final = 60.0
TCPDUMP: Final = shutil.which("tcpdump")

pytestmark = [pytest.mark.tcpdump,
              pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")]


# ----- building files ------------------------------------------------------------------------
def pcap_header(linktype: int = 1, snaplen: int = 262144, magic: int = 0xA1B2C3D4) -> bytes:
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(data: bytes, sec: int = 1_000_000_000, caplen: int | None = None,
                wire_len: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    wire_len = len(data) if wire_len is None else wire_len
    return struct.pack("<IIII", sec, 0, caplen, wire_len) + data


def pcap(*packets: bytes, linktype: int = 1) -> bytes:
    return pcap_header(linktype) + b"".join(
        pcap_record(p, 1_000_000_000 + i) for i, p in enumerate(packets)
    )


def block(btype: int, body: bytes, total: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12 if total is None else total
    return struct.pack("<II", btype, length) + body + struct.pack("<I", len(body) + 12)


SHB: Final = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int = 1, options: bytes = b"") -> bytes:
    return block(1, struct.pack("<HHI", linktype, 0, 262144) + options)


def epb(data: bytes, iface: int = 0, ticks: int = 1_000_000_000_000_000,
        caplen: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    return block(6, struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, caplen,
                                len(data)) + data)


def corpus_records(name: str, count: int) -> tuple[bytes, list[bytes]]:
    """The file header and the first *count* records (header + data) of a corpus pcap."""
    raw = (CORPUS / name).read_bytes()
    records = []
    pos = 24
    for _ in range(count):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        records.append(raw[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return raw[:24], records


def corpus_blocks(name: str, count: int) -> list[bytes]:
    """The first *count* blocks of a little-endian corpus pcapng."""
    raw = (CORPUS / name).read_bytes()
    blocks = []
    pos = 0
    for _ in range(count):
        total = struct.unpack_from("<I", raw, pos + 4)[0]
        blocks.append(raw[pos : pos + total])
        pos += total
    return blocks


@dataclass(frozen=True)
class Packets:
    """Real packets of the corpus to build on (a TCP SYN, a UDP datagram, over Ethernet)."""

    syn: bytes  # Ethernet + IPv4 + TCP SYN with mss, sackOK, TS, nop, wscale
    http: list[bytes]


def corpus_packets() -> Packets:
    _, records = corpus_records("lwerdna_simple_http.pcap", 6)
    return Packets(records[0][16:], [r[16:] for r in records])


ETH_V4: Final = bytes(12) + b"\x08\x00"  # Ethernet, zero addresses, IPv4
ETH_V6: Final = bytes(12) + b"\x86\xdd"


def ipv4(payload: bytes, proto: int = 6, ihl: int = 5, total: int | None = None,
         options: bytes = b"") -> bytes:
    total = 20 + len(options) + len(payload) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0x4000, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + options + payload


def ipv6(payload: bytes, nh: int = 6, plen: int | None = None) -> bytes:
    plen = len(payload) if plen is None else plen
    return (struct.pack("!IHBB", 0x60000000, plen, nh, 64) + bytes(15) + b"\x01"
            + bytes(15) + b"\x02" + payload)


def tcp(options: bytes = b"", payload: bytes = b"", dataofs: int | None = None,
        flags: int = 0x02) -> bytes:
    offset = (20 + len(options)) // 4 if dataofs is None else dataofs
    # Port 30002 (the lessons'): tcpdump has no application printer for it.
    return struct.pack("!HHIIBBHHH", 40000, 30002, 1000, 0, offset << 4, flags, 65535, 0,
                       0) + options + payload


def udp(payload: bytes = b"hello") -> bytes:
    return struct.pack("!HHHH", 40000, 53000, 8 + len(payload), 0) + payload


def hop_chain(kind: int, count: int, last: int) -> bytes:
    """*count* 8-byte extension headers of *kind*, each naming the next; the last names
    *last*.  Each carries one PadN option, so it is well formed on its own."""
    headers = [bytes((kind if i < count - 1 else last, 0, 1, 4, 0, 0, 0, 0))
               for i in range(count)]
    return b"".join(headers)


def icmp_error(quote: bytes, icmp_type: int = 3, code: int = 3) -> bytes:
    return struct.pack("!BBHI", icmp_type, code, 0, 0) + quote


def icmp6_error(quote: bytes, icmp_type: int = 1, code: int = 4) -> bytes:
    return struct.pack("!BBHI", icmp_type, code, 0, 0) + quote


# ----- the cases -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # Set when capdissect deliberately differs from tcpdump: why, and a check of what
    # capdissect does instead (it gets both runs).
    deviation: str = ""
    check: Callable[[Run, Run], None] | None = None
    # Set when capdissect differs from tcpdump by mistake: the bug, reported; the case
    # is an expected failure until it is fixed (strict, so the fix is noticed).
    bug: str = ""
    # capdissect's error line must end with tcpdump's own message (libpcap's wording).
    same_message: bool = False


def truncation_cases() -> Iterator[Case]:
    """A 5-packet pcap and a 6-block pcapng, cut at and between every boundary."""
    header, records = corpus_records("lwerdna_simple_http.pcap", 5)
    small = header + b"".join(records)
    cuts = {0, 2, 12, 23, 24}
    pos = 24
    for record in records:
        caplen = len(record) - 16
        cuts |= {pos, pos + 8, pos + 16, pos + 16 + caplen // 2}
        pos += len(record)
    cuts.add(len(small))
    for cut in sorted(cuts):
        yield Case(f"pcap-cut-at-{cut}", small[:cut])
    blocks = corpus_blocks("pcpp_IcmpPackets.pcapng", 6)
    small = b"".join(blocks)
    cuts = set()
    pos = 0
    for blk in blocks:
        cuts |= {pos, pos + 4, pos + 8, pos + len(blk) // 2, pos + len(blk) - 2}
        pos += len(blk)
    cuts.add(len(small))
    for cut in sorted(cuts - {0}):  # an empty file: see test_empty_file
        yield Case(f"pcapng-cut-at-{cut}", small[:cut])


def file_cases(pk: Packets) -> Iterator[Case]:
    two = pk.http[:2]
    yield Case("pcap-wrong-magic", pcap_header(magic=0xA1B2C3D5) + pcap_record(two[0]))
    yield Case("pcap-snaplen-zero", pcap_header(snaplen=0) + b"".join(
        pcap_record(p) for p in two))
    yield Case("pcap-snaplen-huge", pcap_header(snaplen=0xFFFFFFFF) + b"".join(
        pcap_record(p) for p in two))
    # Records longer than the snapshot length are cut to it, as libpcap does.
    yield Case("pcap-snaplen-smaller-than-records", pcap_header(snaplen=54) + b"".join(
        pcap_record(p) for p in two))
    yield Case("pcap-record-length-past-end",
               pcap_header() + pcap_record(two[0]) + pcap_record(two[1], caplen=1000))
    yield Case("pcap-record-length-huge",
               pcap_header() + pcap_record(two[0]) + pcap_record(two[1], caplen=0x7FFFFFFF))
    yield Case("pcap-record-length-just-over-limit",
               pcap_header() + pcap_record(two[0]) + pcap_record(two[1], caplen=262145))
    yield Case("pcap-record-length-zero",
               pcap_header() + pcap_record(b"", wire_len=60) + pcap_record(two[1]))
    yield Case("pcap-wire-length-below-captured",
               pcap_header() + pcap_record(two[0], wire_len=20) + pcap_record(two[1]))
    yield Case("pcap-garbage-after-header", pcap_header() + bytes(range(256)) * 4)

    start = SHB + idb()
    for total, what in ((0, "zero"), (1, "one"), (26, "not-multiple-of-4"),
                        (0x10000, "past-end"), (0x7FFFFFF0, "huge")):
        body = struct.pack("<IIIII", 0, 0, 1, len(two[1]), len(two[1])) + two[1]
        yield Case(f"pcapng-block-length-{what}",
                   start + epb(two[0]) + block(6, body, total=total) + epb(two[0]))
    yield Case("pcapng-byte-order-magic-wrong",
               block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4E, 1, 0, -1)) + idb()
               + epb(two[0]))
    yield Case("pcapng-captured-length-past-block",
               start + epb(two[0]) + epb(two[1], caplen=len(two[1]) + 64))
    yield Case("pcapng-undefined-interface", start + epb(two[0]) + epb(two[1], iface=3))
    yield Case("pcapng-packet-before-interface", SHB + epb(two[0]) + idb() + epb(two[1]))
    yield Case("pcapng-block-too-short-for-a-packet", start + epb(two[0]) + block(6, bytes(8))
               + epb(two[1]))
    yield Case("pcapng-interface-block-too-short", SHB + block(1, bytes(4)) + epb(two[0]))
    yield Case("pcapng-comment-length-past-block",
               start + block(6, epb(two[0])[8:-4] + struct.pack("<HH", 1, 0xFFFF) + b"abcd")
               + epb(two[1]))
    yield Case("pcapng-simple-packet-blocks",
               start + block(3, struct.pack("<I", len(two[0])) + two[0])
               + block(3, struct.pack("<I", len(two[1])) + two[1]))
    yield Case("pcapng-simple-packet-block-too-short",
               start + block(3, struct.pack("<I", len(two[0])) + two[0])
               + block(3, struct.pack("<I", 5000) + two[1]) + epb(two[0]))
    yield Case("pcapng-timestamps-in-seconds",
               SHB + idb(options=struct.pack("<HHB3x", 9, 1, 0) + bytes(4))
               + epb(two[0], ticks=1_600_000_000) + epb(two[1], ticks=1_600_000_001))
    yield Case(
        "pcapng-second-section-big-endian",
        start + epb(two[0]) + big_endian_section(two[1]),
        deviation="libpcap reads every block of a file in the first section's byte order, "
        "so a big-endian section after a little-endian one looks like a block of absurd "
        "length (exit 1); the pcapng spec gives each section its own byte order, and "
        "capdissect reads it",
        check=check_second_section,
    )
    yield Case("pcapng-unknown-block-skipped",
               start + epb(two[0]) + block(0x0BAD, b"ignored") + epb(two[1]))
    # if_tsoffset (option 14) so large that no calendar holds the year: tcpdump prints
    # "[Error converting time]" for the timestamp and goes on (util-print.c).
    yield Case("pcapng-timestamp-offset-out-of-range",
               SHB + idb(options=struct.pack("<HHq", 14, 8, 2**62) + bytes(4))
               + epb(two[0]) + epb(two[1]))
    yield Case(
        "pcapng-several-link-types",
        start + idb(linktype=101) + epb(two[0]) + epb(two[0][14:], iface=1),
        deviation="libpcap refuses a pcapng whose interfaces have different link types "
        "(`an interface has a type 101 different from the type of the first interface`, "
        "exit 1, no packet); SPEC §3.2 asks capdissect to read them, each packet with "
        "its own interface's link type",
        check=check_several_link_types,
    )


def section(major: int = 1, minor: int = 0, padding: int = 0) -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1)
                 + bytes(padding))


def option(code: int, value: bytes, length: int | None = None) -> bytes:
    length = len(value) if length is None else length
    return struct.pack("<HH", code, length) + value + bytes(-len(value) % 4)


def libpcap_strict_cases(pk: Packets) -> Iterator[Case]:
    """What libpcap 1.10 refuses in a pcapng (sf-pcapng.c), each where tcpdump stops: the
    same packets before it, exit 1, and libpcap's own message (issue 21, C5)."""
    two = pk.http[:2]
    ok = epb(two[0])

    def strict(name: str, data: bytes) -> Case:
        return Case(name, data, same_message=True)

    yield strict("pcapng-trailer-length-differs",
                 SHB + idb() + ok + epb(two[1])[:-4] + struct.pack("<I", 99) + ok)
    yield strict("pcapng-second-section-trailer-differs",
                 SHB + idb() + ok + section()[:-4] + struct.pack("<I", 12) + idb() + ok)
    yield strict("pcapng-version-1.1", section(1, 1) + idb() + ok)
    yield strict("pcapng-version-2.0", section(2, 0) + idb() + ok)
    yield Case("pcapng-version-1.2", section(1, 2) + idb() + ok)
    yield strict("pcapng-second-section-major-2", SHB + idb() + ok + section(2, 0) + idb() + ok)
    yield strict("pcapng-first-section-over-1-mib", section(padding=1 << 20) + idb() + ok)
    yield Case("pcapng-second-section-before-interface", SHB + SHB + idb() + ok)
    # libpcap skips any block before the first interface as one of the first section's,
    # a section header too: one that is not whole in its own byte order is passed over.
    yield Case("pcapng-section-with-bad-magic-before-interface",
               SHB + block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4E, 1, 0, -1))
               + idb() + ok)
    yield Case("pcapng-section-with-big-endian-magic-and-little-endian-length",
               SHB + block(0x0A0D0D0A, struct.pack(">I", 0x1A2B3C4D)
                           + struct.pack("<HHq", 1, 0, -1)) + idb() + ok)
    yield strict("pcapng-tsresol-length-2", SHB + idb(options=option(9, b"\x06\x00")) + ok)
    yield strict("pcapng-tsresol-twice",
                 SHB + idb(options=option(9, b"\x06") + option(9, b"\x09")) + ok)
    yield strict("pcapng-tsresol-10-to-minus-20", SHB + idb(options=option(9, b"\x14")) + ok)
    yield Case("pcapng-tsresol-10-to-minus-19",
               SHB + idb(options=option(9, b"\x13")) + epb(two[0], ticks=10**19 + 5))
    yield strict("pcapng-tsresol-2-to-minus-64", SHB + idb(options=option(9, b"\xc0")) + ok)
    yield strict("pcapng-tsoffset-length-4", SHB + idb(options=option(14, bytes(4))) + ok)
    yield strict("pcapng-tsoffset-twice",
                 SHB + idb(options=option(14, bytes(8)) + option(14, bytes(8))) + ok)
    yield strict("pcapng-end-of-options-with-a-value",
                 SHB + idb(options=option(0, bytes(4))) + ok)
    yield strict("pcapng-interface-option-cut", SHB + idb(options=option(2, bytes(4), 40)) + ok)
    yield strict("pcapng-captured-length-over-snaplen",
                 SHB + block(1, struct.pack("<HHI", 1, 0, 60)) + epb(two[0][:60])
                 + epb(two[1]))
    yield strict("pcapng-second-interface-other-snaplen",
                 SHB + idb() + ok + block(1, struct.pack("<HHI", 1, 0, 100))
                 + epb(two[1], iface=1))
    # Classic pcap versions: libpcap reads 2.0-2.4 and 543.0; before 2.3 (and in 543.0)
    # the record header holds the wire length first, in 2.3 maybe (sf-pcap.c).
    for major, minor in ((1, 0), (3, 0), (2, 5)):
        yield strict(f"pcap-version-{major}.{minor}",
                     struct.pack("<IHHiIII", 0xA1B2C3D4, major, minor, 0, 0, 262144, 1)
                     + pcap_record(two[0]))
    for major, minor in ((2, 2), (2, 3), (543, 0), (2, 4)):
        swapped = pcap_record(two[0], caplen=len(two[0]), wire_len=len(two[0]) + 40)
        yield Case(f"pcap-version-{major}.{minor}-lengths",
                   struct.pack("<IHHiIII", 0xA1B2C3D4, major, minor, 0, 0, 262144, 1)
                   + swapped[:8] + swapped[12:16] + swapped[8:12] + swapped[16:]
                   + pcap_record(two[1]))
    # tcpdump's clock (util-print.c): seconds whose 32-bit form has the sign bit set are
    # "[Error converting time]", in every format; above 2^32 the full value is converted.
    for offset in (-1, 2**31 + 5, 2**32 + 5, 5 - 2**32):
        yield Case(f"pcapng-time-offset-{offset}",
                   SHB + idb(options=option(14, struct.pack("<q", offset))) + epb(two[0], ticks=0))


def big_endian_section(packet: bytes) -> bytes:
    """A whole big-endian section (SHB, IDB, EPB) holding *packet*."""

    def be_block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack(">II", btype, len(body) + 12) + body + struct.pack(
            ">I", len(body) + 12)

    ticks = 2_000_000_000_000_000
    return (be_block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
            + be_block(1, struct.pack(">HHI", 1, 0, 262144))
            + be_block(6, struct.pack(">IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                      len(packet), len(packet)) + packet))


def check_second_section(mine: Run, theirs: Run) -> None:
    assert theirs.returncode == 1 and "pcapng block size" in theirs.stderr
    assert mine.returncode == 0
    expected = split_blocks(theirs.stdout)
    got = split_blocks(mine.stdout)
    assert len(expected) == 1 and len(got) == 2 and got[0] == expected[0]
    assert got[1].startswith("03:33:20.000000 IP ")  # the big-endian section's packet


def check_several_link_types(mine: Run, theirs: Run) -> None:
    assert theirs.returncode == 1 and "different from the type" in theirs.stderr
    assert mine.returncode == 0
    blocks = split_blocks(mine.stdout)
    assert len(blocks) == 2
    # The RAW packet prints what the Ethernet one prints after its link header.
    assert blocks[0].split(" IP ", 1)[1].split("\n")[0] == blocks[1].split(" IP ", 1)[1].split(
        "\n")[0]


def packet_cases(pk: Packets) -> Iterator[Case]:
    syn_tcp = pk.syn[34:]  # the SYN's TCP header with its 20 bytes of options
    ports = udp()

    def one(name: str, *packets: bytes, linktype: int = 1) -> Case:
        return Case(name, pcap(pk.http[0], *packets, pk.http[1], linktype=linktype))

    # IPv4 header-length lies.
    yield one("ipv4-ihl-below-5", ETH_V4 + ipv4(tcp(), ihl=3))
    yield one("ipv4-ihl-past-total-length", ETH_V4 + ipv4(tcp(), ihl=15, total=40))
    yield one("ipv4-ihl-past-capture", ETH_V4 + ipv4(b"", ihl=15, total=60))
    yield one("ipv4-total-length-below-20", ETH_V4 + ipv4(tcp(), total=12))
    yield one("ipv4-total-length-past-capture", ETH_V4 + ipv4(tcp(), total=1500))
    yield one("ipv4-option-length-zero", ETH_V4 + ipv4(tcp(), ihl=6, options=b"\x07\x00\x00\x00"))
    yield one("ipv4-option-length-past-header",
              ETH_V4 + ipv4(tcp(), ihl=6, options=b"\x07\x27\x04\x00"))
    # TCP options whose length is 0, 1 or runs past the header; data offsets that lie.
    yield one("tcp-option-length-zero", ETH_V4 + ipv4(tcp(b"\x02\x00\x05\xb4")))
    yield one("tcp-option-length-one", ETH_V4 + ipv4(tcp(b"\x08\x01\x00\x00")))
    yield one("tcp-option-past-header", ETH_V4 + ipv4(tcp(b"\x01\x01\x08\x0a")))
    yield one("tcp-option-sack-odd-length", ETH_V4 + ipv4(tcp(b"\x05\x07\x00\x00\x00\x01\x00\x00")))
    yield one("tcp-option-past-capture",
              ETH_V4 + ipv4(syn_tcp[:-6], total=20 + len(syn_tcp)))
    yield one("tcp-data-offset-below-5", ETH_V4 + ipv4(tcp(dataofs=3)))
    yield one("tcp-data-offset-past-packet", ETH_V4 + ipv4(tcp(dataofs=15)))
    yield one("tcp-header-cut", ETH_V4 + ipv4(tcp()[:13], total=40))
    # IPv6 extension-header chains: 64 hop-by-hop (only the first may be hop-by-hop, so
    # tcpdump complains at the second), 64 destination options, a routing header with
    # the largest length, a header running past the payload, fragments in a chain.
    yield one("ipv6-64-hop-by-hop", ETH_V6 + ipv6(hop_chain(0, 64, 6) + tcp(), nh=0))
    yield one("ipv6-64-destination-options",
              ETH_V6 + ipv6(hop_chain(60, 64, 6) + tcp(), nh=60))
    yield one("ipv6-64-destination-options-udp",
              ETH_V6 + ipv6(hop_chain(60, 64, 17) + ports, nh=60))
    yield one("ipv6-routing-header-huge-length",
              ETH_V6 + ipv6(bytes((6, 255, 0, 0, 0, 0, 0, 0)) + tcp(), nh=43))
    yield one("ipv6-hop-by-hop-past-payload",
              ETH_V6 + ipv6(bytes((6, 3, 1, 4, 0, 0, 0, 0)) + bytes(8), nh=0))
    yield one("ipv6-payload-length-past-capture", ETH_V6 + ipv6(tcp(), plen=400))
    yield one("ipv6-fragment-chain",
              ETH_V6 + ipv6(b"".join(bytes((44, 0, 0, 0, 0, 0, 0, i)) for i in range(40))
                            + bytes((6, 0, 0, 0, 0, 0, 0, 40)) + tcp(), nh=44))
    # ICMP errors quoting packets cut short, or whose quoted header lies.
    quoted_udp = ipv4(ports, proto=17)
    yield one("icmp-quote-cut-in-ip-header", ETH_V4 + ipv4(icmp_error(quoted_udp[:10]), 1))
    yield one("icmp-quote-without-ports", ETH_V4 + ipv4(icmp_error(quoted_udp[:20]), 1))
    yield one("icmp-quote-half-the-ports", ETH_V4 + ipv4(icmp_error(quoted_udp[:22]), 1))
    yield one("icmp-quote-ihl-lie", ETH_V4 + ipv4(icmp_error(
        ipv4(ports, proto=17, ihl=15)), 1))
    yield one("icmp-quote-ihl-below-5", ETH_V4 + ipv4(icmp_error(
        ipv4(ports, proto=17, ihl=2)), 1))
    yield one("icmp-time-exceeded-quoting-tcp-cut",
              ETH_V4 + ipv4(icmp_error(ipv4(tcp())[:24], icmp_type=11, code=0), 1))
    yield one("icmp-quote-of-icmp-error",
              ETH_V4 + ipv4(icmp_error(ipv4(icmp_error(quoted_udp[:20]), 1)), 1))
    quoted6 = ipv6(ports, nh=17)
    yield one("icmp6-quote-cut-in-ip6-header", ETH_V6 + ipv6(icmp6_error(quoted6[:20]), 58))
    yield one("icmp6-quote-without-ports", ETH_V6 + ipv6(icmp6_error(quoted6[:40]), 58))
    yield one("icmp6-quote-extension-overrun", ETH_V6 + ipv6(icmp6_error(
        ipv6(bytes((17, 255, 1, 4, 0, 0, 0, 0)) + ports, nh=0)), 58))
    yield one("icmp6-quote-64-extensions", ETH_V6 + ipv6(icmp6_error(
        ipv6(hop_chain(60, 64, 17) + ports, nh=60)), 58))
    yield one("icmp6-packet-too-big-cut", ETH_V6 + ipv6(icmp6_error(quoted6[:8], 2, 0), 58))


def all_cases() -> list[Case]:
    pk = corpus_packets()
    return [*truncation_cases(), *file_cases(pk), *libpcap_strict_cases(pk),
            *packet_cases(pk)]


# ----- running both tools --------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run(argv: list[str]) -> Run:
    try:
        proc = subprocess.run(argv, env=fixed_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Run(-1, "", "", True)
    return Run(proc.returncode, proc.stdout.decode("latin-1"),
               proc.stderr.decode("utf-8", "replace"), False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, Run, Run]]:
    """Every case run through both tools, in parallel (each run is a fresh process)."""
    directory = tmp_path_factory.mktemp("malformed")
    cases = all_cases()
    capdissect = capdissect_command()

    def both(case: Case) -> tuple[Case, Run, Run]:
        path = directory / f"{case.name}.pcap"
        path.write_bytes(case.data)
        mine = run([*capdissect, "read", str(path), "--plain", *OPTIONS])
        theirs = run([str(TCPDUMP), "-r", str(path), *OPTIONS])
        return case, mine, theirs

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return {case.name: (case, mine, theirs) for case, mine, theirs in pool.map(both, cases)}


CASE_PARAMS: Final = [
    pytest.param(case.name, marks=pytest.mark.xfail(reason=case.bug, strict=True))
    if case.bug else case.name
    for case in all_cases()
]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("reading from file")
            and not line.startswith("Warning: interface names")]


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_malformed_capture(results: dict[str, tuple[Case, Run, Run]], name: str) -> None:
    case, mine, theirs = results[name]
    assert not mine.timed_out, "capdissect did not finish: a hang"
    assert not theirs.timed_out
    assert "Traceback" not in mine.stderr, mine.stderr
    assert "cannot print packet" not in mine.stdout, mine.stdout
    problems = error_lines(mine.stderr)
    if mine.returncode:
        assert len(problems) == 1 and problems[0].startswith("capdissect: "), mine.stderr
    else:
        assert not problems, mine.stderr
    if case.check is not None:
        case.check(mine, theirs)
        return
    assert mine.returncode == theirs.returncode, (
        f"exit {mine.returncode}, tcpdump {theirs.returncode}\n"
        f"capdissect: {mine.stderr}\ntcpdump: {theirs.stderr}")
    if case.same_message:
        theirs_message = error_lines(theirs.stderr)[-1].split(": ", 1)[1]
        assert problems[0].endswith(": " + theirs_message.removeprefix("pcap_loop: ")), (
            f"capdissect: {problems[0]}\ntcpdump: {theirs_message}")
    expected = split_blocks(theirs.stdout)
    got = split_blocks(mine.stdout)
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, f"packet {index + 1}:\n--- tcpdump\n{want}--- capdissect\n{have}"
    assert len(got) == len(expected), f"{len(got)} packets, tcpdump printed {len(expected)}"


def test_empty_file(tmp_path: Path) -> None:
    """An empty file: tcpdump says its file header is cut (exit 1); capdissect says the
    file is empty, which is the same verdict in plainer words."""
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    mine = run([*capdissect_command(), "read", str(path), "--plain", *OPTIONS])
    theirs = run([str(TCPDUMP), "-r", str(path), *OPTIONS])
    assert theirs.returncode == mine.returncode == 1
    assert error_lines(mine.stderr) == [f"capdissect: {path}: empty file, not a capture"]
    assert mine.stdout == theirs.stdout == ""


def gzip_cases() -> dict[str, bytes]:
    """Damaged gzip streams around a good pcap (tcpdump reads no gzip: capdissect only)."""
    whole = gzip.compress((CORPUS / "lwerdna_simple_http.pcap").read_bytes(), mtime=0)
    corrupt = bytearray(whole)
    corrupt[len(whole) // 2 : len(whole) // 2 + 16] = b"\xff" * 16
    bad_crc = bytearray(whole)
    bad_crc[-8:-4] = bytes(4)
    return {
        "unknown-method": b"\x1f\x8b\x09\x00" + bytes(20),  # found by the fuzzer
        "corrupt-deflate-data": bytes(corrupt),  # zlib.error, found by the fuzzer
        "cut-in-half": whole[: len(whole) // 2],
        "bad-crc": bytes(bad_crc),
        "only-the-magic": b"\x1f\x8b",
    }


@pytest.mark.parametrize("name", sorted(gzip_cases()))
def test_damaged_gzip(tmp_path: Path, name: str) -> None:
    """One line and exit 1, and whatever was decompressed before the damage is printed as
    ``zcat F | tcpdump -r -`` prints it (zcat writes out what it inflated before the
    damage, garbled bytes included, and so do we)."""
    path = tmp_path / f"{name}.pcap.gz"
    path.write_bytes(gzip_cases()[name])
    mine = run([*capdissect_command(), "read", str(path), "--plain", *OPTIONS])
    assert not mine.timed_out and "Traceback" not in mine.stderr, mine.stderr
    assert mine.returncode == 1
    problems = error_lines(mine.stderr)
    assert len(problems) == 1 and problems[0].startswith(f"capdissect: {path}: "), mine.stderr
    theirs = subprocess.run(f"zcat {path} | {TCPDUMP} -r - {' '.join(OPTIONS)}", shell=True,
                            env=fixed_env(), capture_output=True, timeout=TIMEOUT_S,
                            check=False)
    assert split_blocks(mine.stdout) == split_blocks(theirs.stdout.decode("latin-1"))


def test_cut_gzip_prints_the_packets_before_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip_cases()["cut-in-half"])
    mine = run([*capdissect_command(), "read", str(path), "--plain", "-nn"])
    theirs = subprocess.run(f"zcat {path} | {TCPDUMP} -r - -nn", shell=True, env=fixed_env(),
                            capture_output=True, timeout=TIMEOUT_S, check=False)
    assert mine.returncode == theirs.returncode == 1
    assert split_blocks(mine.stdout) == split_blocks(theirs.stdout.decode("latin-1"))
