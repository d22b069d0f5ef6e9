"""Properties of the read path on hostile input (SPEC §6, STYLE "Properties and fuzzing").

On arbitrary bytes and on mutated real captures:

(a) ``CaptureFile`` ends (after at most one packet per 12 bytes of input) and raises
    nothing but ``CapdissectError`` subclasses: no IndexError, struct.error, zlib.error;
(b) each ``parse_*`` dissector, at any offset, raises nothing but ``DissectError``
    subclasses (``parse_options`` and ``parse_mptcp`` raise nothing at all);
(c) ``stack.decode`` never raises;
(d) ``TcpdumpPrinter.format`` never raises, for every combination of tcpdump's options,
    and prints no control character but newline and tab;
(e) the annotator and the ``Tracker`` never raise on any stream of decoded packets.

Hypothesis runs derandomized and without an example database, so a CI run is the same
run every time; ``CAPDISSECT_PROPERTY_EXAMPLES`` raises the number of examples for a
longer search (``make fuzz`` runs the coverage-guided fuzzer, ``fuzz/fuzz_read.py``).
The whole file takes well under 30 s.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import string
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Final, Literal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from capdissect.dissect import icmp, icmp6, ipv4, ipv6, link, mptcp, tcp, tcp_options, udp
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import CapdissectError, DissectError
from capdissect.packets import RawPacket
from capdissect.report.annotate import Annotator
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import CaptureFile
from capdissect.tracking.tracker import Tracker

CORPUS: Final = Path(__file__).parents[1] / "corpus"
EXAMPLES: Final = int(os.environ.get("CAPDISSECT_PROPERTY_EXAMPLES", "150"))
PROPERTY: Final = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # a generous bound: a slow example is a finding
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Small captures of every container shape: pcap in both byte orders, nanosecond pcap,
# pcapng, several link types.  Mutating them reaches deeper than random bytes do.
SEED_FILES: Final = (
    "lwerdna_simple_http.pcap",
    "pcpp_nanosecs_big_endian.pcap",
    "pcpp_IcmpPackets.pcapng",
    "zeek_vlan-pcp-dei.pcapng",
    "tcpdump_ipv6-routing-header.pcap",
    "tcpdump_mptcp-tcprst.pcap",
    "tcpdump_tcp-handshake-nano.pcap",
    "zeek_icmp_icmp6-destunreach-ip6ext-udp.pcap",
    "pcpp_sll2.pcap",
    "zeek_tcp_timeout-with-pings.pcap",
    "tcpdump_icmpv6-RFC2894-RR.pcap",
    "zeek_icmp_icmp6-mldv2.pcap",
)
MAGICS: Final = (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a", b"\x1f\x8b\x08\x00",
)
LINKTYPES: Final = (
    link.EN10MB, link.NULL, link.LOOP, link.RAW, link.RAW_OLD, link.RAW_OLD2, link.IPV4,
    link.IPV6, link.LINUX_SLL, link.LINUX_SLL2, 147, 0xFFFF,
)
# Values that sit on the edges of the length and type fields the readers and dissectors
# trust: zero, one, off-by-one around limits, the largest of each width.
EDGE_VALUES: Final = (
    0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 20, 40, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF,
    0x8000, 0xFFFF, 0x10000, 262144, 262145, 0xFFFFFF, 0x1000000, 0x1000001, 0x7FFFFFFF,
    0x80000000, 0xFFFFFFFF,
)


@cache
def seed_captures() -> tuple[bytes, ...]:
    return tuple((CORPUS / name).read_bytes() for name in SEED_FILES)


@cache
def packet_pool() -> tuple[RawPacket, ...]:
    """Every packet of every corpus capture: real headers of every shape to mutate."""
    packets: list[RawPacket] = []
    for path in sorted(CORPUS.glob("*.pcap*")):
        with CaptureFile(path.open("rb"), path.name, owned=True) as capture:
            packets.extend(itertools.islice(capture, 200))
    return tuple(packets)


@st.composite
def mutations(draw: st.DrawFn, data: bytes, max_ops: int = 6) -> bytes:
    """*data* with a few bytes set, words overwritten with edge values, cuts and inserts."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("set", "word", "cut", "insert", "delete")))
        pos = draw(st.integers(0, len(buf)))
        if op == "set" and pos < len(buf):
            buf[pos] = draw(st.integers(0, 255))
        elif op == "word":
            width = draw(st.sampled_from((1, 2, 4)))
            value = draw(st.sampled_from(EDGE_VALUES)) & ((1 << (8 * width)) - 1)
            order: Literal["big", "little"] = draw(st.sampled_from(("big", "little")))
            buf[pos : pos + width] = value.to_bytes(width, order)
        elif op == "cut":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos : pos + draw(st.integers(1, 24))]
    return bytes(buf)


@st.composite
def mutated_captures(draw: st.DrawFn) -> bytes:
    data = draw(mutations(draw(st.sampled_from(seed_captures())), max_ops=8))
    return gzip.compress(data, mtime=0) if draw(st.integers(0, 9)) == 0 else data


@st.composite
def raw_packets(draw: st.DrawFn) -> RawPacket:
    """A mutated corpus packet (sometimes on another link type), or arbitrary bytes."""
    if draw(st.integers(0, 4)) == 0:
        data = draw(st.binary(max_size=256))
        linktype = draw(st.sampled_from(LINKTYPES))
        wire_len = draw(st.sampled_from((len(data), len(data) + 100, 0, 262145)))
    else:
        source = draw(st.sampled_from(packet_pool()))
        data = draw(mutations(source.data))
        linktype = (source.linktype if draw(st.integers(0, 9))
                    else draw(st.sampled_from(LINKTYPES)))
        wire_len = draw(st.sampled_from((len(data), source.wire_len, len(data) + 1)))
    sec = draw(st.one_of(st.integers(0, 4), st.sampled_from((1_700_000_000, 2**32 - 1))))
    return RawPacket(sec, draw(st.integers(0, 999_999_999)), linktype, wire_len, data)


print_options: Final = st.builds(
    PrintOptions, n=st.integers(0, 2), v=st.integers(0, 3), x=st.integers(0, 2),
    X=st.integers(0, 2), e=st.booleans(), S=st.booleans(), K=st.booleans(),
    t=st.integers(0, 5),
)


def read_all(data: bytes) -> int:
    """Read every packet of *data*; a CapdissectError is an accepted ending."""
    bound = len(data) // 12 + 1  # a pcap record or pcapng block takes at least 16 bytes
    count = 0
    try:
        with CaptureFile(io.BytesIO(data), "prop", owned=False) as capture:
            for _packet in capture:
                count += 1
                assert count <= bound, "more packets than the bytes can hold: a loop"
    except CapdissectError:
        pass
    return count


# ----- (a) the capture readers ---------------------------------------------------------------
@PROPERTY
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_read_or_refused(data: bytes) -> None:
    read_all(data)


@PROPERTY
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_arbitrary_bytes_after_a_magic_number(magic: bytes, rest: bytes) -> None:
    read_all(magic + rest)


@PROPERTY
@given(mutated_captures())
# Found by the fuzzer: a gzip header naming an unknown method, corrupt deflate data.
@example(b"\x1f\x8b\x09\x00" + bytes(20))
@example(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 40)
def test_mutated_captures_are_read_or_refused(data: bytes) -> None:
    read_all(data)


def test_every_seed_capture_reads_whole() -> None:
    """The mutations start from good files: unmutated, each reads to its end."""
    for data in seed_captures():
        assert read_all(data) > 0


# ----- (b) each dissector --------------------------------------------------------------------
def _icmp_all(buf: bytes, offset: int, end: int) -> None:
    header = icmp.parse_icmp(buf[:end], offset)
    icmp.quote_offset(header)
    icmp.parse_quoted(buf[:end], header)


def _icmp6_all(buf: bytes, offset: int, end: int) -> None:
    icmp6.upper_layer(buf, offset, end)
    header = icmp6.parse_icmp6(buf, offset, end)
    icmp6.quote_offset(header)
    icmp6.parse_quoted(buf, header, end)


def _ipv6_all(buf: bytes, offset: int, end: int) -> None:
    ipv6.parse_fragment(buf, offset, end)
    for kind in (ipv6.HOPOPTS, ipv6.ROUTING, ipv6.FRAGMENT, ipv6.AH, ipv6.DSTOPTS):
        ipv6.extension_length(buf, offset, kind, end)
    ipv6.walk_extensions(buf, ipv6.parse_ipv6(buf, offset, end), end)


def _tcp_all(buf: bytes, offset: int, end: int) -> None:
    header = tcp.parse_tcp(buf, offset, end)
    for option in header.options.items:
        tcp_options.decode_option(option)
    tcp.parse_tcp(buf, offset, end, with_options=False)


DISSECTORS: Final[dict[str, Callable[[bytes, int, int], object]]] = {
    "link": lambda buf, offset, end: parse_link_all(buf[offset:end]),
    "ipv4": ipv4.parse_ipv4,
    "ipv6": _ipv6_all,
    "tcp": _tcp_all,
    "udp": udp.parse_udp,
    "icmp": _icmp_all,
    "icmp6": _icmp6_all,
}


def parse_link_all(data: bytes) -> None:
    for linktype in LINKTYPES:
        with contextlib.suppress(DissectError):
            link.parse_link(linktype, data)


@st.composite
def buffers_and_offsets(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A buffer, an offset (past the end too) and a capture end between them and the end."""
    if draw(st.booleans()):
        buf = draw(st.binary(max_size=160))
    else:
        buf = draw(mutations(draw(st.sampled_from(packet_pool())).data))
    offset = draw(st.integers(0, len(buf) + 8))
    end = draw(st.integers(min(offset, len(buf)), len(buf)))
    return buf, offset, end


@pytest.mark.parametrize("name", sorted(DISSECTORS))
def test_dissectors_raise_only_dissect_errors(name: str) -> None:
    dissector = DISSECTORS[name]

    @PROPERTY
    @given(buffers_and_offsets())
    def check(case: tuple[bytes, int, int]) -> None:
        buf, offset, end = case
        with contextlib.suppress(DissectError):
            dissector(buf, offset, end)

    check()


@PROPERTY
@given(buffers_and_offsets(), st.integers(0, 64))
def test_option_walk_never_raises(case: tuple[bytes, int, int], header_len: int) -> None:
    buf, offset, end = case
    options = tcp_options.parse_options(buf, offset, offset + header_len, end)
    assert options.problem in (None, tcp_options.BAD, tcp_options.TRUNCATED, tcp_options.CUT)
    for option in options.items:
        tcp_options.decode_option(option)
        if option.kind == tcp_options.MPTCP:
            mptcp.parse_mptcp(bytes((option.kind, option.length)) + option.data)


@PROPERTY
@given(st.binary(max_size=40))
def test_mptcp_never_raises(option: bytes) -> None:
    mptcp.parse_mptcp(option)
    mptcp.parse_mptcp(b"\x1e" + bytes((len(option) + 2,)) + option)


# ----- (c) decode ----------------------------------------------------------------------------
def decode_checked(raw: RawPacket) -> Packet:
    pkt = decode(raw)
    assert pkt.raw is raw
    assert pkt.error is None or isinstance(pkt.error, DissectError)
    pkt.payload  # noqa: B018 - the property must not raise either
    return pkt


@PROPERTY
@given(raw_packets())
def test_decode_never_raises(raw: RawPacket) -> None:
    decode_checked(raw)


# ----- (d) the tcpdump printer ---------------------------------------------------------------
# tcpdump's output is printable ASCII, newline and tab (it escapes the rest, as the -X
# column and RST data show); so is ours, whatever the capture holds.
ALLOWED: Final = frozenset(string.printable) - frozenset("\r\x0b\x0c")


def assert_terminal_safe(text: str) -> None:
    bad = sorted({c for c in text if c not in ALLOWED})
    assert not bad, f"unsafe characters {bad!r} in {text!r}"


@PROPERTY
@given(print_options, st.lists(raw_packets(), min_size=1, max_size=6))
def test_printer_never_raises(options: PrintOptions, packets: list[RawPacket]) -> None:
    printer = TcpdumpPrinter(options)
    for raw in packets:
        assert_terminal_safe(printer.format(raw))


def edge_packets() -> list[RawPacket]:
    """One packet of each seed capture, whole and cut in half, plus empty and absurd ones."""
    packets = []
    for name in SEED_FILES[:6]:
        with CaptureFile((CORPUS / name).open("rb"), name, owned=True) as capture:
            first = next(iter(capture))
        packets += [first, first._replace(data=first.data[: len(first.data) // 2])]
    packets += [
        RawPacket(0, 0, link.EN10MB, 0, b""),
        RawPacket(2**40, 999_999_999, link.RAW, 70000, b"\x45" + bytes(30)),
        RawPacket(2**62, 0, link.LINUX_SLL2, 20, bytes(20)),  # no calendar holds the year
    ]
    return packets


def all_print_options() -> Sequence[PrintOptions]:
    return [
        PrintOptions(n, v, x, big_x, e, s, k, t)
        for n, v, x, big_x, e, s, k, t in itertools.product(
            range(3), range(4), range(3), range(3), (False, True), (False, True),
            (False, True), range(6),
        )
    ]


def test_printer_every_option_combination() -> None:
    """Every combination of tcpdump's flags (5,184) over packets whole, cut and absurd."""
    packets = edge_packets()
    for options in all_print_options():
        printer = TcpdumpPrinter(options)
        for raw in packets:
            assert_terminal_safe(printer.format(raw))


# ----- (e) the annotator and the tracker -----------------------------------------------------
@st.composite
def packet_streams(draw: st.DrawFn) -> list[RawPacket]:
    """A real conversation, reordered, partly mutated, with times that may run backwards."""
    pool = packet_pool()
    start = draw(st.integers(0, len(pool) - 1))
    packets = list(pool[start : start + draw(st.integers(1, 24))])
    packets = draw(st.permutations(packets)) if draw(st.booleans()) else packets
    stream = []
    for raw in packets:
        if draw(st.integers(0, 3)) == 0:
            raw = raw._replace(data=draw(mutations(raw.data, max_ops=3)))
        if draw(st.integers(0, 5)) == 0:
            raw = raw._replace(ts_sec=draw(st.sampled_from((0, raw.ts_sec - 1000, 2**33))))
        stream.append(raw)
    stream += draw(st.lists(raw_packets(), max_size=4))
    return stream


@PROPERTY
@given(packet_streams(), st.integers(1, 8))
def test_tracker_never_raises(stream: list[RawPacket], max_open: int) -> None:
    linger = draw_linger(max_open)
    tracker = Tracker(max_open=max_open, linger=linger)  # as flows and timeline use it
    annotator = Annotator(Tracker(keep_events=False, max_open=max_open, linger=linger),
                          checksums=True)  # as read uses it
    for frame, raw in enumerate(stream, 1):
        pkt = decode_checked(raw)
        for note in annotator.annotate(frame, pkt):
            assert_terminal_safe(note)
        tracker.feed(frame, pkt)
        if frame % 3 == 0:
            tracker.drain()
    tracker.close()
    annotator.tracker.close()
    assert tracker.packets == len(stream)


def draw_linger(max_open: int) -> float:
    """Short and long lingering, so that expiry runs on some streams and not others."""
    return 0.5 if max_open % 2 else 120.0
