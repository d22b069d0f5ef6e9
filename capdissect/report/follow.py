"""``capdissect follow``: one TCP connection's byte stream, reassembled as Wireshark does.

Wireshark's Follow TCP Stream (epan/dissectors/packet-tcp.c, ``follow_tcp_tap_listener``
and ``check_follow_fragments``, 4.0) keeps per direction the next sequence number it
expects:

- a segment at that number is written, and so are the held segments it lets follow;
- a segment below it (a retransmission) gives only the bytes past it, if any;
- a segment above it (out of order, or after a loss) is held until the gap closes;
- when the other side acknowledges past the lowest held segment, the bytes in between
  were received but not captured: ``[N bytes missing in capture file]`` (with a NUL, as
  Wireshark writes it) marks them, and the held segment follows.

Sequence numbers are relative to the first one seen in each direction (a SYN counts one),
as Wireshark's are.  Pure: packets in, chunks out; the formats below turn chunks into
text, with every byte a terminal could act on made inert.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from capdissect.addresses import endpoint
from capdissect.dissect.defrag import Defragmenter
from capdissect.dissect.stack import Packet
from capdissect.dissect.tcp import ACK, SYN, TcpHeader
from capdissect.errors import NotTcp
from capdissect.report.tcpdump.hexdump import hex_ascii
from capdissect.tracking.tcp import CLIENT, SERVER, TcpConnection, Update
from capdissect.tracking.tracker import Tracker

MOD: Final = 1 << 32
HALF: Final = 1 << 31



class Chunk(NamedTuple):
    frame: int  # the packet that delivered it (for a gap: the one that revealed it)
    node: int  # Wireshark's node: 0 is the sender of the connection's first packet
    sender: str  # CLIENT or SERVER, as the tracker names them
    data: bytes
    missing: int = 0  # > 0: a gap of this many bytes; *data* is Wireshark's marker


class Followed(NamedTuple):
    conn: TcpConnection
    nodes: tuple[str, str]  # node 0 and node 1 as ``addr:port``
    chunks: tuple[Chunk, ...]


def _before(a: int, b: int) -> bool:
    """a < b in sequence space (RFC 9293 §3.4, modulo 2**32)."""
    return (a - b) % MOD >= HALF


def _after(a: int, b: int) -> bool:
    return (b - a) % MOD >= HALF


@dataclass(slots=True)
class _Held:
    frame: int
    seq: int
    data: bytes


@dataclass(slots=True)
class _Direction:
    base: int | None = None  # the raw sequence number relative numbers count from
    seq: int = 0  # the next relative sequence number expected
    written: int = 0
    held: list[_Held] = field(default_factory=list)


@dataclass(slots=True)
class Reassembler:
    """Wireshark's follow algorithm for one connection; ``feed`` each of its segments."""

    roles: tuple[str, str] = (CLIENT, SERVER)  # the tracker's role of node 0, node 1
    out: list[Chunk] = field(default_factory=list)
    _dirs: tuple[_Direction, _Direction] = (_Direction(), _Direction())
    _first: tuple[bytes, int] | None = None

    def __post_init__(self) -> None:
        self._dirs = (_Direction(), _Direction())

    def feed(self, frame: int, src: tuple[bytes, int], tcp: TcpHeader, seglen: int,
             data: bytes) -> None:
        if self._first is None:
            self._first = src
        node = 0 if src == self._first else 1
        me, peer = self._dirs[node], self._dirs[1 - node]
        if me.base is None:
            me.base = tcp.seq
        seq = (tcp.seq - me.base) % MOD
        if tcp.flags & SYN:
            seq = (seq + 1) % MOD
        if peer.held:
            ack = (tcp.ack - peer.base) % MOD if peer.base is not None and tcp.flags & ACK \
                else tcp.ack
            while self._release(1 - node, frame, ack, True):
                pass
        if me.written == 0 and me.seq == 0:
            me.seq = seq
        offset = 0
        if _before(seq, me.seq):
            end = (seq + seglen) % MOD
            if _after(end, me.seq):  # a retransmission that carries new bytes too
                offset = (me.seq - seq) % MOD
                seglen = (end - me.seq) % MOD
                seq = me.seq
        data = data[offset:]
        if not data or _before(seq, me.seq):
            return
        if seq == me.seq:
            me.seq = (me.seq + seglen) % MOD
            me.written += len(data)  # only here, as Wireshark's bytes_written
            self._write(node, frame, data)
            while self._release(node, frame, 0, False):
                pass
        else:
            me.held.append(_Held(frame, seq, data))

    def _write(self, node: int, frame: int, data: bytes, missing: int = 0) -> None:
        self.out.append(Chunk(frame, node, self.roles[node], data, missing))

    def _release(self, node: int, frame: int, acked: int, use_ack: bool) -> bool:
        """Write the held segment that now fits (or its new part); with *use_ack*, mark the
        gap before the lowest held one if the peer acknowledged past it.  True: again."""
        me = self._dirs[node]
        if not me.held:
            return False
        lowest = me.held[0].seq
        for i, held in enumerate(me.held):
            if _after(lowest, held.seq):
                lowest = held.seq
            if _before(held.seq, me.seq):
                end = (held.seq + len(held.data)) % MOD
                if _after(end, me.seq):
                    new = (me.seq - held.seq) % MOD
                    if len(held.data) > new:
                        self._write(node, held.frame, held.data[new:])
                    me.seq = end
                del me.held[i]
                return True
            if held.seq == me.seq:
                if held.data:
                    self._write(node, held.frame, held.data)
                me.seq = (me.seq + len(held.data)) % MOD
                del me.held[i]
                return True
        if use_ack and _after(acked, lowest):
            gap = (lowest - me.seq) % MOD
            marker = f"[{gap if gap < HALF else gap - MOD} bytes missing in capture file]"
            self._write(node, frame, marker.encode() + b"\0", gap)
            me.seq = lowest
            return True
        return False


def segments(packets: Iterable[Packet]) -> Iterator[tuple[int, TcpConnection, Packet]]:
    """Every whole TCP segment: its frame, its connection (numbered as ``flows`` numbers
    them) and the packet, IP fragments put back together (dissect/defrag.py) as tshark
    does: a segment sent in fragments is the reassembled packet, at the frame of the
    fragment that completed it.  The tracker still takes the packets as captured, so the
    numbers are the ones every other command shows."""
    tracker = Tracker(keep_events=False)
    fragments = Defragmenter()
    for frame, pkt in enumerate(packets, 1):
        seen = tracker.feed(frame, pkt)
        tracker.drain()
        whole = fragments.feed(pkt)
        if whole is pkt:
            if isinstance(seen, Update) and not pkt.partial:
                yield frame, seen.connection, pkt
        elif whole is not None and isinstance(whole.transport, TcpHeader) and whole.ip:
            tcp, ip = whole.transport, whole.ip
            conn = tracker.tcp.connection((ip.src, tcp.src_port), (ip.dst, tcp.dst_port))
            if conn is not None:  # its first fragment opened it (or it was retired since)
                yield frame, conn, whole


def follow(packets: Iterable[Packet], conn: int, name: str = "capture") -> Followed:
    """The reassembled stream of TCP connection *conn* (numbered as ``flows`` does)."""
    found: TcpConnection | None = None
    stream: Reassembler | None = None
    for frame, connection, pkt in segments(packets):
        if connection.id != conn:
            continue
        tcp, ip = pkt.transport, pkt.ip
        assert isinstance(tcp, TcpHeader) and ip is not None
        found = connection
        src = (ip.src, tcp.src_port)
        if stream is None:
            client = (found.client.addr, found.client.port)
            stream = Reassembler((CLIENT, SERVER) if src == client else (SERVER, CLIENT))
        stream.feed(frame, src, tcp, pkt.payload_len, pkt.payload)
    if found is None or stream is None:
        raise NotTcp(name, conn)
    c = endpoint((found.client.addr, found.client.port))
    s = endpoint((found.server.addr, found.server.port))
    nodes = (c, s) if stream.roles[0] == CLIENT else (s, c)
    return Followed(found, nodes, tuple(stream.out))


# ----- formats -----------------------------------------------------------------------------
def _shown(followed: Followed, direction: str) -> Iterator[Chunk]:
    return (c for c in followed.chunks if direction == "both" or c.sender == direction)


def raw_lines(followed: Followed, direction: str = "both") -> Iterator[str]:
    """tshark's ``-z follow,tcp,raw``: a chunk a line in hex, node 1's indented by a tab."""
    for chunk in _shown(followed, direction):
        yield ("\t" if chunk.node else "") + chunk.data.hex()


def _printable(data: bytes) -> str:
    """Bytes as text a terminal cannot act on: printable ASCII, newlines and tabs kept."""
    return "".join(chr(b) if 0x20 <= b < 0x7F or b in (0x0A, 0x09) else "." for b in data)


def text_lines(followed: Followed, mode: str = "ascii", direction: str = "both"
               ) -> Iterator[str]:
    """The stream for reading: a heading per chunk (who, which packet, how many bytes),
    then its bytes as ASCII (``.`` for the rest) or as ``tcpdump -X``'s hex dump."""
    names = {role: f"{role} {_side(followed, role)}" for role in (CLIENT, SERVER)}
    for chunk in _shown(followed, direction):
        if chunk.missing:
            yield f"=== {names[chunk.sender]}: [{chunk.missing} bytes missing in capture " \
                  f"file] (acknowledged in packet {chunk.frame}, never captured)"
            continue
        yield f"=== {names[chunk.sender]}, packet {chunk.frame}, {len(chunk.data)} bytes"
        if mode == "hex":
            yield hex_ascii(chunk.data, indent="\n").lstrip("\n")
        else:
            text = _printable(chunk.data)
            yield text[:-1] if text.endswith("\n") else text


def _side(followed: Followed, role: str) -> str:
    ep = followed.conn.endpoint(role)
    return endpoint((ep.addr, ep.port))


def render(followed: Followed, mode: str, direction: str) -> str:
    """The whole output of ``follow`` in *mode* (ascii, hex, raw)."""
    lines = (raw_lines(followed, direction) if mode == "raw"
             else text_lines(followed, mode, direction))
    return "".join(line + "\n" for line in lines)
