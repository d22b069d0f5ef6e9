"""First annotations: the role of each segment, before the full state tracker.

For each packet this names its phase and role from the header alone (plus the one
fact the handshake needs: which SYN-ACK an ACK completes), and the loopback checksum
note.  The RFC 9293 per-endpoint state machine will replace the TCP part; this module
is the place it plugs into (``Annotator.annotate``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from capdissect.dissect.checksum import pseudo_sum, verify
from capdissect.dissect.icmp import IcmpHeader
from capdissect.dissect.icmp6 import Icmp6Header
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, TcpHeader
from capdissect.dissect.udp import UdpHeader

MAX_PENDING: Final = 65536  # half-open handshakes remembered; the oldest is forgotten first
LOOPBACK_NOTE: Final = (
    "checksum: 'incorrect' on loopback is expected: the kernel leaves it to the NIC "
    "(offload), and loopback has none; the data is not corrupt"
)


def _loopback(ip: IPv4Header | object) -> bool:
    src = getattr(ip, "src", b"")
    if len(src) == 4:
        return src[0] == 127
    return bool(src == b"\0" * 15 + b"\1")


class Annotator:
    """Names the phase of each packet; keeps only the handshakes still half-open.

    With *checksums* (tcpdump's -v prints them) the loopback checksum note is given
    once, at the first packet it explains.
    """

    def __init__(self, checksums: bool = False) -> None:
        self._checksum_note = checksums
        # (client addr, client port, server addr, server port) -> server ISN from the SYN-ACK
        self._synack: OrderedDict[tuple[bytes, int, bytes, int], int] = OrderedDict()

    def annotate(self, pkt: Packet) -> list[str]:
        seg = pkt.transport
        if isinstance(seg, TcpHeader):
            notes = [self._tcp(pkt, seg)]
            self._note_checksum(pkt, 6, seg.offset, notes)
            return notes
        if isinstance(seg, UdpHeader):
            notes = [f"udp: datagram of {max(seg.length - 8, 0)} bytes; UDP has no "
                     "handshake and no connection state"]
            if seg.checksum:
                self._note_checksum(pkt, 17, seg.offset, notes)
            return notes
        if isinstance(seg, IcmpHeader | Icmp6Header):
            return [self._icmp(seg)]
        if pkt.fragment:
            return ["fragment: a later piece of a fragmented datagram"]
        if pkt.error is not None:
            return [f"damaged: {pkt.error}"]
        return []

    def _tcp(self, pkt: Packet, seg: TcpHeader) -> str:
        ip = pkt.ip
        assert ip is not None
        flags = seg.flags
        here = (ip.src, seg.src_port, ip.dst, seg.dst_port)
        there = (ip.dst, seg.dst_port, ip.src, seg.src_port)
        if flags & RST:
            return "reset: RST aborts the connection"
        if flags & SYN and flags & ACK:
            self._synack[there] = seg.seq
            if len(self._synack) > MAX_PENDING:
                self._synack.popitem(last=False)
            return "handshake 2/3 SYN-ACK: the server accepts and sends its own SYN"
        if flags & SYN:
            return "handshake 1/3 SYN: the client asks to open a connection"
        isn = self._synack.get(here)
        if isn is not None and flags & ACK and seg.ack == (isn + 1) & 0xFFFFFFFF:
            del self._synack[here]
            return "handshake 3/3 ACK: the connection is established"
        if flags & FIN:
            return "teardown: FIN, this side has no more data to send"
        if pkt.payload_len:
            return f"data: {pkt.payload_len} bytes"
        return "ack: acknowledges data or a FIN"

    def _icmp(self, msg: IcmpHeader | Icmp6Header) -> str:
        unreachable = (msg.type, msg.code) in ((3, 3), (1, 4))
        if unreachable:
            return ("icmp: port unreachable, nothing listens on the quoted datagram's "
                    "destination port")
        return "icmp: control message"

    def _note_checksum(self, pkt: Packet, proto: int, offset: int, notes: list[str]) -> None:
        if self._checksum_note and _loopback(pkt.ip) and not self._checksum_ok(pkt, proto,
                                                                              offset):
            notes.append(LOOPBACK_NOTE)
            self._checksum_note = False

    @staticmethod
    def _checksum_ok(pkt: Packet, proto: int, offset: int) -> bool:
        ip = pkt.ip
        assert ip is not None
        data = pkt.raw.data
        length = pkt.payload_offset + pkt.payload_len - offset
        if offset + length > len(data):
            return True  # not all captured: nothing to say
        initial = pseudo_sum(ip.src, ip.dst, proto, length)
        return verify(data[offset : offset + length], initial) == 0
