"""IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5): fragments in, datagrams out.

``Defragmenter.feed`` takes the decoded packets in capture order.  A packet that is no
fragment comes back as it is.  A fragment is held (``None``) until its datagram is
complete; the fragment that completes it comes back as the whole datagram, decoded: the
first fragment's link and IP headers (IPv4: total length, flags and checksum rewritten;
IPv6: the Fragment header taken out, the payload length rewritten), then every fragment's
data in order.  Wireshark reassembles so before TCP or UDP sees the segment, which it
shows at the frame of the fragment that completed it; so do follow and the tracker.

Where fragments disagree, the receiving kernel's rule is kept rather than Wireshark's
(which keeps the first copy of overlapping bytes and flags them): Linux's, for both IP
versions (RFC 5722 with erratum 3089; net/ipv4/inet_fragment.c inet_frag_queue_insert,
ip_frag_queue, net/ipv6/reassembly.c ip6_frag_queue):

- a fragment whose bytes are all held already is a duplicate, and ignored;
- a fragment that overlaps held bytes otherwise drops the whole datagram, and its later
  fragments start a new one, which never completes;
- so does an empty fragment, one past the end a last fragment set, a last fragment
  ending before bytes already held or where another last fragment did not, and a
  datagram longer than an IP length can say;
- a non-last fragment's length must be a multiple of 8: IPv4 cuts it down to one, IPv6
  drops the fragment.

A fragment the capture cut short (snap length) cannot be put back; it is passed on as it
is.  Memory is bounded: a datagram waits at most ``timeout`` seconds of capture time
(Linux's ipfrag_time, 30), and at most ``max_pending`` datagrams holding ``max_bytes``
bytes (Linux's ipfrag_high_thresh, 4 MiB) wait at once.  Past a bound the oldest datagram
is given up (Linux instead drops every fragment until its timeouts free memory; a capture
reader keeps up better by forgetting the oldest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from capdissect.dissect.checksum import verify
from capdissect.dissect.ipv4 import FLAG_MF, OFFSET_MASK, IPv4Header
from capdissect.dissect.ipv6 import walk_extensions
from capdissect.dissect.stack import Packet, decode
from capdissect.errors import DissectError
from capdissect.packets import RawPacket

MAX_PENDING: Final = 1024
MAX_BYTES: Final = 4 << 20
TIMEOUT: Final = 30.0
MAX_LENGTH: Final = 65535  # IPv4 total length; IPv6 payload length (no jumbograms)

Key = tuple[bytes, bytes, int, int]  # source, destination, identification, protocol
HELD, DUPLICATE, DROP = 0, 1, 2  # what _add did with a fragment


@dataclass(slots=True)
class _Piece:
    """One fragment's place in its datagram, parsed out of the captured packet."""

    key: Key
    start: int
    more: bool
    data: bytes
    limit: int  # the most data this IP version's length field can say
    # What the whole datagram is given from its first fragment: the bytes before the
    # data (IPv6: before the Fragment header), where the IP header starts, and for IPv6
    # the Fragment header's next header and the Next Header byte naming it.
    head: bytes = b""
    ip_at: int = 0
    v4: bool = True
    next_header: int = 0
    names_at: int = 0

    @property
    def end(self) -> int:
        return self.start + len(self.data)


@dataclass(slots=True)
class _Datagram:
    first_ts: float
    pieces: list[tuple[int, int, bytes]] = field(default_factory=list)  # sorted by start
    end: int = -1  # set by the last fragment
    first: _Piece | None = None  # the fragment at offset 0
    size: int = 0


class Defragmenter:
    def __init__(self, timeout: float = TIMEOUT, max_pending: int = MAX_PENDING,
                 max_bytes: int = MAX_BYTES) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self._pending: dict[Key, _Datagram] = {}  # oldest first
        self._bytes = 0

    def feed(self, pkt: Packet) -> Packet | None:
        """*pkt*, or None while its datagram waits, or the whole datagram it completes."""
        piece = _piece(pkt)
        if piece is None:
            return pkt
        ts = pkt.raw.ts
        self._expire(ts)
        datagram = self._pending.get(piece.key)
        if datagram is None:
            datagram = self._pending[piece.key] = _Datagram(ts)
        done = _add(datagram, piece)
        if done == DROP:
            self._drop(piece.key)
            return None
        if done == DUPLICATE:
            return None
        self._bytes += len(piece.data)
        whole = _whole(datagram)
        if whole is None:
            while len(self._pending) > self.max_pending or self._bytes > self.max_bytes:
                self._drop(next(iter(self._pending)))
            return None
        self._drop(piece.key)
        raw = pkt.raw
        return decode(RawPacket(raw.ts_sec, raw.ts_nsec, raw.linktype, len(whole), whole,
                                raw.ifindex))

    def _expire(self, ts: float) -> None:
        for key, datagram in list(self._pending.items()):
            if ts - datagram.first_ts <= self.timeout:
                break
            self._drop(key)

    def _drop(self, key: Key) -> None:
        datagram = self._pending.pop(key, None)
        if datagram is not None:
            self._bytes -= datagram.size


def _add(datagram: _Datagram, piece: _Piece) -> int:
    """Hold *piece* in *datagram*: HELD, or a DUPLICATE to ignore, or DROP the datagram."""
    start, end = piece.start, piece.end
    if end == start or end > piece.limit:
        return DROP
    if not piece.more:
        if end < max((e for _, e, _ in datagram.pieces), default=0) or (
                datagram.end >= 0 and end != datagram.end):
            return DROP
        datagram.end = end
    elif datagram.end >= 0 and end > datagram.end:
        return DROP
    touching = [(s, e) for s, e, _ in datagram.pieces if s < end and start < e]
    if touching:
        covered = touching[0][0]
        for s, e in touching:
            covered = e if s <= covered else covered  # held pieces never overlap
        return DUPLICATE if touching[0][0] <= start and covered >= end else DROP
    datagram.pieces.append((start, end, piece.data))
    datagram.pieces.sort()
    datagram.size += len(piece.data)
    if start == 0:
        datagram.first = piece
    return HELD


def _whole(datagram: _Datagram) -> bytes | None:
    """The reassembled packet's bytes, once every byte is held."""
    first = datagram.first
    if datagram.end < 0 or first is None:
        return None
    reached = 0
    for start, end, _ in datagram.pieces:
        if start != reached:
            return None
        reached = end
    if reached != datagram.end:
        return None
    return _headers(first, reached) + b"".join(d for _, _, d in datagram.pieces)


def _headers(first: _Piece, length: int) -> bytes:
    """The first fragment's headers, rewritten for *length* bytes of reassembled data."""
    out, at = bytearray(first.head), first.ip_at
    if first.v4:
        hdr_len = (out[at] & 0x0F) * 4
        out[at + 2 : at + 4] = (hdr_len + length).to_bytes(2, "big")
        flags = int.from_bytes(out[at + 6 : at + 8], "big") & ~(FLAG_MF | OFFSET_MASK)
        out[at + 6 : at + 8] = flags.to_bytes(2, "big")
        out[at + 10 : at + 12] = b"\0\0"
        out[at + 10 : at + 12] = verify(bytes(out[at : at + hdr_len])).to_bytes(2, "big")
    else:
        out[first.names_at] = first.next_header
        out[at + 4 : at + 6] = (len(out) - at - 40 + length).to_bytes(2, "big")
    return bytes(out)


def _piece(pkt: Packet) -> _Piece | None:
    """*pkt*'s fragment, or None when it is no fragment or the capture cut it short."""
    ip, data = pkt.ip, pkt.raw.data
    if ip is None:
        return None
    if isinstance(ip, IPv4Header):
        if not ip.flags_frag & (FLAG_MF | OFFSET_MASK) or ip.total_len < ip.hdr_len:
            return None
        start, stop, more = ip.offset + ip.hdr_len, ip.offset + ip.total_len, ip.more_fragments
        if more:
            stop -= (stop - start) & 7  # Linux's ip_frag_queue cuts a non-last one to 8s
        piece = _Piece((ip.src, ip.dst, ip.ident, ip.proto), ip.frag_offset, more,
                       data[start:stop], MAX_LENGTH - ip.hdr_len)
    else:
        if not (pkt.fragment or pkt.partial or pkt.error is not None):
            return None
        stop = ip.offset + 40 + ip.payload_len
        try:
            upper = walk_extensions(data, ip, min(len(data), stop))
        except DissectError:
            return None
        frag = upper.fragment
        if frag is None or not (frag.frag_offset or frag.more):
            return None  # no Fragment header, or an atomic fragment (RFC 6946)
        start, more = upper.fragment_at + 8, frag.more
        if more and (stop - start) & 7:
            return None  # RFC 8200 §4.5: dropped (the sender hears a Parameter Problem)
        piece = _Piece((ip.src, ip.dst, frag.ident, -1), frag.frag_offset, more,
                       data[start:stop], MAX_LENGTH - (upper.fragment_at - ip.offset - 40))
        piece.v4, piece.next_header = False, frag.next_header
        piece.names_at = upper.names_fragment_at
        start = upper.fragment_at
    if stop > len(data) or stop < start:
        return None  # cut short by the capture: nothing to put back
    if piece.start == 0:
        piece.head, piece.ip_at = data[:start], ip.offset
    return piece


__all__ = ["Defragmenter"]
