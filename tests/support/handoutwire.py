"""Inputs for the handout tests: decoded lesson captures and a crafted hostile pcapng."""

from __future__ import annotations

import struct
from pathlib import Path

from capdissect.dissect.stack import Packet, decode
from capdissect.sources.files import open_capture


def decoded_packets(path: Path) -> list[Packet]:
    with open_capture(path) as capture:
        return [decode(raw) for raw in capture]


def hostile_pcapng(path: Path, payload: bytes, comment: str, iface: str) -> Path:
    """The TCP lesson (handshake, data both ways, FINs) and a UDP datagram, all carrying
    *payload*, every packet with *comment*, on an interface named *iface* (scapy builds
    the frames; the blocks are written by hand so the comment and name are exactly ours)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c, s = IP(src="127.0.0.1", dst="127.0.0.1"), IP(src="127.0.0.1", dst="127.0.0.1")
    n = len(payload)
    frames = [
        eth / c / TCP(sport=40000, dport=30002, flags="S", seq=100),
        eth / s / TCP(sport=30002, dport=40000, flags="SA", seq=500, ack=101),
        eth / c / TCP(sport=40000, dport=30002, flags="A", seq=101, ack=501),
        eth / c / TCP(sport=40000, dport=30002, flags="PA", seq=101, ack=501) / payload,
        eth / s / TCP(sport=30002, dport=40000, flags="PA", seq=501, ack=101 + n) / payload,
        eth / c / TCP(sport=40000, dport=30002, flags="FA", seq=101 + n, ack=501 + n),
        eth / s / TCP(sport=30002, dport=40000, flags="FA", seq=501 + n, ack=102 + n),
        eth / c / TCP(sport=40000, dport=30002, flags="A", seq=102 + n, ack=502 + n),
        eth / c / UDP(sport=40001, dport=30003) / payload,
    ]

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack(
            "<I", len(body) + 12)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)

    raw_comment = comment.encode("utf-8", "surrogateescape")
    with path.open("wb") as out:
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                        + option(0, b"")))
        out.write(block(1, struct.pack("<HHI", 1, 0, 262144) + option(2, iface.encode())
                        + option(0, b"")))
        for i, frame in enumerate(bytes(f) for f in frames):
            ticks = (1_700_000_000 + i) * 1_000_000
            body = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                               len(frame)) + frame + bytes(-len(frame) % 4)
            out.write(block(6, body + option(1, raw_comment) + option(0, b"")))
    return path
