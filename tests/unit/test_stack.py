"""Whole-packet decoding and the first annotations, on the bundled lesson capture."""

from __future__ import annotations

from pathlib import Path

from capdissect.dissect.stack import decode
from capdissect.dissect.tcp import TcpHeader
from capdissect.dissect.udp import UdpHeader
from capdissect.packets import RawPacket
from capdissect.report.annotate import LOOPBACK_NOTE, Annotator
from capdissect.sources import open_capture

CAPTURES = Path(__file__).parents[2] / "captures"


def lesson() -> list[RawPacket]:
    with open_capture(CAPTURES / "tcp-basic.pcap") as cap:
        return list(cap)


def test_decode_lesson_segments() -> None:
    packets = [decode(raw) for raw in lesson()]
    assert all(isinstance(p.transport, TcpHeader) and p.error is None for p in packets)
    payloads = [p.payload for p in packets if p.payload_len]
    assert payloads == [b"hello world", b"who are you"]


def test_annotations_name_the_handshake_and_teardown() -> None:
    annotator = Annotator(checksums=True)
    notes = [annotator.annotate(i, decode(raw)) for i, raw in enumerate(lesson(), 1)]
    firsts = [n[0].split(":")[0] for n in notes]
    assert firsts[:3] == ["handshake 1/3 SYN", "handshake 2/3 SYN-ACK", "handshake 3/3 ACK"]
    assert firsts.count("teardown FIN") == 2 and firsts.count("data") == 2
    # The state changes of SPEC 3.2, under the packet that caused them.
    assert any(line.startswith("client 127.0.0.1.") and line.endswith(
        "SYN_SENT -> ESTABLISHED") for line in notes[1])
    assert any(line.endswith("LAST_ACK -> CLOSED") for line in notes[-1])
    # The loopback checksum note comes once, with the first packet it explains.
    flat = [line for group in notes for line in group]
    assert flat.count(LOOPBACK_NOTE) == 1 and LOOPBACK_NOTE in notes[0]


def test_udp_and_damage() -> None:
    with open_capture(CAPTURES / "udp-basic.pcap") as cap:
        packets = [decode(raw) for raw in cap]
    assert all(isinstance(p.transport, UdpHeader) for p in packets)
    cut = lesson()[0]
    damaged = decode(cut._replace(data=cut.data[:30]))
    assert damaged.transport is None and damaged.error is not None
    assert Annotator().annotate(1, damaged)[0].startswith("damaged: ip: truncated")
