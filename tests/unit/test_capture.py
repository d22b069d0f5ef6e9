"""The pcap and pcapng readers, on files built byte by byte from the format specs."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import pytest

from capdissect.errors import CaptureError, TruncatedFile
from capdissect.sources.files import PROGRESS, CaptureFile, open_capture

FRAME = bytes(range(60))  # any 60 bytes: the readers do not look inside


def pcap(order: str = "<", nano: bool = False, linktype: int = 1,
         records: list[tuple[int, int, bytes, int]] | None = None) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, data, wire_len in records or []:
        out += struct.pack(order + "IIII", sec, frac, len(data), wire_len) + data
    return out


def read_all(raw: bytes) -> tuple[CaptureFile, list]:
    cap = CaptureFile(io.BytesIO(raw), "test", owned=True)
    return cap, list(cap)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_precisions(order: str, nano: bool) -> None:
    frac = 123456789 if nano else 123456
    cap, pkts = read_all(pcap(order, nano, 1, [(1000, frac, FRAME, 80), (1001, 0, FRAME[:10], 10)]))
    assert cap.format == "pcap" and cap.linktype == 1 and cap.snaplen == 65535
    assert [p.ts_sec for p in pkts] == [1000, 1001]
    assert pkts[0].ts_nsec == (123456789 if nano else 123456000)
    assert pkts[0].wire_len == 80 and pkts[0].data == FRAME
    assert pkts[1].data == FRAME[:10]


def test_pcap_truncated_record_yields_whole_packets_first() -> None:
    raw = pcap("<", False, 1, [(1, 0, FRAME, 60), (2, 0, FRAME, 60)])[:-7]
    cap = CaptureFile(io.BytesIO(raw), "cut.pcap", owned=True)
    seen = []
    with pytest.raises(TruncatedFile) as info:
        for pkt in cap:
            seen.append(pkt)
    assert len(seen) == 1
    assert "cut.pcap" in str(info.value) and "needs 60 bytes, only 53 there" in str(info.value)


def test_pcap_absurd_record_length_is_an_error_not_an_allocation() -> None:
    raw = pcap() + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF)
    with pytest.raises(CaptureError, match="larger than"):
        read_all(raw)


def test_not_a_capture_and_empty() -> None:
    with pytest.raises(CaptureError, match="unknown file format"):
        read_all(b"hello world, not a capture")
    with pytest.raises(CaptureError, match="empty"):
        read_all(b"")


def test_gzip_is_transparent() -> None:
    raw = pcap("<", False, 1, [(5, 6, FRAME, 60)])
    _, pkts = read_all(gzip.compress(raw))
    assert len(pkts) == 1 and pkts[0].ts_sec == 5 and pkts[0].data == FRAME


# ---- pcapng -------------------------------------------------------------------------------

def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, 262144)
    if tsresol is not None:
        body += option(order, 9, bytes([tsresol])) + option(order, 0, b"")
    return block(order, 1, body)


def epb(order: str, ifid: int, ticks: int, data: bytes, comment: str | None = None) -> bytes:
    body = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) + 4) + data + b"\0" * (-len(data) % 4)
    if comment:
        body += option(order, 1, comment.encode()) + option(order, 0, b"")
    return block(order, 6, body)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_comments(order: str) -> None:
    raw = (
        shb(order)
        + idb(order, 1)  # microseconds by default
        + idb(order, 113, tsresol=9)  # LINUX_SLL, nanoseconds
        + epb(order, 0, 1_700_000_000_123_456, FRAME, comment="first <b>")
        + epb(order, 1, 1_700_000_001_987_654_321, FRAME[:20])
        + block(order, 3, struct.pack(order + "I", 60) + FRAME)  # SPB on interface 0
        + block(order, 0x0BAD, b"skipped")  # an unknown block is skipped
    )
    cap, pkts = read_all(raw)
    assert cap.format == "pcapng" and cap.linktype == 1
    assert [(p.linktype, p.ts_sec, p.ts_nsec) for p in pkts] == [
        (1, 1_700_000_000, 123_456_000),
        (113, 1_700_000_001, 987_654_321),
        (1, 0, 0),
    ]
    assert pkts[0].comment == "first <b>" and pkts[1].comment is None
    assert pkts[0].wire_len == 64 and pkts[2].data == FRAME


def test_pcapng_obsolete_packet_block_and_binary_resolution() -> None:
    order = "<"
    body = struct.pack(order + "HHIIII", 0, 0, 0, 3 << 10 | 512, len(FRAME), 60) + FRAME
    raw = shb(order) + idb(order, 101, tsresol=0x80 | 10) + block(order, 2, body)
    _, pkts = read_all(raw)
    # 2**-10 s units: 3 s and 512/1024 s.
    assert (pkts[0].ts_sec, pkts[0].ts_nsec, pkts[0].linktype) == (3, 500_000_000, 101)


def test_pcapng_bad_block_length() -> None:
    order = "<"
    raw = shb(order) + idb(order, 1) + struct.pack("<II", 6, 13) + b"\0" * 8
    with pytest.raises(CaptureError, match="length of 13 that is not a multiple of 4"):
        read_all(raw)


def test_pcapng_packet_for_undefined_interface() -> None:
    order = "<"
    raw = shb(order) + idb(order, 1) + epb(order, 3, 0, FRAME)
    with pytest.raises(CaptureError, match="interface 3"):
        read_all(raw)


@pytest.mark.parametrize("order", ["<", ">"])
def test_batches_hold_the_same_records_as_iteration(order: str, tmp_path: Path) -> None:
    """read's batches (sources/records.py) and the RawPacket iterator agree, across
    chunk boundaries (records of up to 200 KB over 1 MiB chunks) and with the snapshot
    length cut libpcap applies."""
    sizes = [60, 1, 0, 200_000, 1500, 70_000, 65_535] * 12
    records = [(i, i * 7, bytes([i % 251]) * size, size + 4) for i, size in enumerate(sizes)]
    raw = bytearray(pcap(order, False, 1, records))
    struct.pack_into(order + "I", raw, 16, 65535)  # snaplen: the 200 KB records are cut
    path = tmp_path / "batches.pcap"
    path.write_bytes(bytes(raw))
    with open_capture(path) as capture:
        packets = list(capture)
    with open_capture(path) as capture:
        batched = [pkt for batch in capture.batches() for pkt in batch.packets()]
    assert batched == packets
    assert len(packets) == len(records)
    assert [len(p.data) for p in packets] == [min(size, 65535) for size in sizes]
    assert [p.wire_len for p in packets] == [size + 4 for size in sizes]


def test_batches_end_as_iteration_does() -> None:
    raw = pcap("<", False, 1, [(1, 0, FRAME, 60), (2, 0, FRAME, 60)])[:-7]
    cap = CaptureFile(io.BytesIO(raw), "cut.pcap", owned=True)
    seen = []
    with pytest.raises(TruncatedFile, match="needs 60 bytes, only 53 there"):
        for batch in cap.batches():
            seen.extend(batch.packets())
    assert [p.ts_sec for p in seen] == [1]


def test_progress_hook_hears_of_each_chunk_of_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap("<", False, 1, [(i, 0, FRAME * 20, 1200) for i in range(3000)]))
    size = path.stat().st_size
    heard: list[tuple[int, int]] = []
    token = PROGRESS.set(lambda done, total: heard.append((done, total)))
    try:
        with open_capture(path) as capture:
            assert sum(1 for _ in capture) == 3000
    finally:
        PROGRESS.reset(token)
    assert len(heard) >= size >> 20  # at least once per MiB
    assert all(total == size for _, total in heard)
    assert [done for done, _ in heard] == sorted(done for done, _ in heard)
    assert heard[-1][0] == size
