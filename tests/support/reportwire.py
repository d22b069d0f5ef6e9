"""Hand-made packets for the report tests: real header bytes on the RAW link type, decoded
by capdissect's own decoder, so the reports see exactly what a capture would give them.

Checksums are left 0 (nothing in tracking or reporting verifies them).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import ACK, FIN, PSH, SYN
from capdissect.packets import RawPacket

RAW_LINKTYPE = 101
Ep = tuple[str, int]


def _addr(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


def ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    s, d = _addr(src), _addr(dst)
    if len(s) == 4:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                           s, d) + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, s, d) + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp_port_unreachable(quoted: bytes) -> bytes:
    return struct.pack("!BBHI", 3, 3, 0, 0) + quoted[:28]


@dataclass
class Wire:
    """Packets in capture order; ``t`` is the capture time of the next one."""

    t: float = 1_600_000_000.0
    packets: list[Packet] = field(default_factory=list)

    def add(self, data: bytes, dt: float = 0.001) -> None:
        self.t += dt
        sec = int(self.t)
        nsec = round((self.t - sec) * 1e9)
        self.packets.append(decode(RawPacket(sec, nsec, RAW_LINKTYPE, len(data), data)))

    def tcp(self, src: Ep, dst: Ep, flags: int, seq: int, ack: int = 0, data: bytes = b"",
            dt: float = 0.001) -> None:
        self.add(ip(src[0], dst[0], 6, tcp(src[1], dst[1], seq, ack, flags, data)), dt)

    def udp(self, src: Ep, dst: Ep, data: bytes, dt: float = 0.001) -> bytes:
        datagram = ip(src[0], dst[0], 17, udp(src[1], dst[1], data))
        self.add(datagram, dt)
        return datagram

    def unreachable(self, reporter: str, to: str, datagram: bytes, dt: float = 0.001) -> None:
        self.add(ip(reporter, to, 1, icmp_port_unreachable(datagram)), dt)


def lesson(w: Wire, client: Ep, server: Ep) -> None:
    """The who-are-you / hello-world lesson, 11 segments, the client closing first."""
    w.tcp(client, server, SYN, 1000)
    w.tcp(server, client, SYN | ACK, 5000, 1001)
    w.tcp(client, server, ACK, 1001, 5001)
    w.tcp(client, server, PSH | ACK, 1001, 5001, b"hello world")
    w.tcp(server, client, ACK, 5001, 1012)
    w.tcp(server, client, PSH | ACK, 5001, 1012, b"who are you")
    w.tcp(client, server, ACK, 1012, 5012)
    w.tcp(client, server, FIN | ACK, 1012, 5012)
    w.tcp(server, client, ACK, 5012, 1013, dt=0.04)
    w.tcp(server, client, FIN | ACK, 5012, 1013, dt=0.16)
    w.tcp(client, server, ACK, 1013, 5013)
