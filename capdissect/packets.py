"""The records every layer may use: the packet every capture source yields, and the
batch of whole pcap records ``read``'s fast path prints without a RawPacket each.

``RecordBatch``: The whole pcap records of one buffer, found in one pass.

A RawPacket per record costs about 0.9 µs in CPython, as much as printing the packet on
``read``'s fast path.  A ``RecordBatch`` holds only the buffer and the offset of each
record in it; its accessors decode the 16-byte record header when asked, and ``packet``
builds the RawPacket for code that wants one.  Compiled by mypyc with the fast printer
(setup.py, and report/tcpdump/fast.py for why); it runs as plain Python without a compiler.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class RawPacket(NamedTuple):
    """One captured packet.

    ``ts_sec``/``ts_nsec`` keep the file's full timestamp precision (pcap stores seconds
    and a fraction); ``wire_len`` is the length on the wire, ``len(data)`` the captured
    length.  A NamedTuple because the readers build one per packet on the hot path.
    """

    ts_sec: int
    ts_nsec: int
    linktype: int
    wire_len: int
    data: bytes
    ifindex: int = 0  # pcapng interface id (0 for classic pcap)
    comment: str | None = None  # pcapng opt_comment, kept as data

    @property
    def ts(self) -> float:
        return self.ts_sec + self.ts_nsec / 1e9

REC_HDR_LEN: Final = 16
# libpcap refuses records larger than this (MAXIMUM_SNAPLEN, pcap-int.h); so do we,
# so that a corrupt length never makes us allocate gigabytes.
MAX_RECORD: Final = 262144


def snapshot_length(snaplen: int) -> int:
    """libpcap's snapshot length for a file's (or interface's) *snaplen*: 0 or larger
    than the maximum means the maximum (pcapint_adjust_snapshot)."""
    return snaplen if 0 < snaplen <= MAX_RECORD else MAX_RECORD


def u32(buf: bytes, i: int, big_endian: bool) -> int:
    """The unsigned 32-bit number at *i* in *buf* (the framing's fields, read in place)."""
    if big_endian:
        return (buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]
    return (buf[i + 3] << 24) | (buf[i + 2] << 16) | (buf[i + 1] << 8) | buf[i]


def record_length(buf: bytes, pos: int, big_endian: bool) -> int:
    """The captured length in the record header at *pos*."""
    return u32(buf, pos + 8, big_endian)


def scan_records(buf: bytes, pos: int, big_endian: bool) -> tuple[list[int], int]:
    """The offsets of the records from *pos* on that lie whole in *buf* with a sane
    length, and where the first one that does not starts (or the end of *buf*)."""
    size = len(buf)
    offsets: list[int] = []
    while pos + REC_HDR_LEN <= size:
        caplen = u32(buf, pos + 8, big_endian)
        end = pos + REC_HDR_LEN + caplen
        if caplen > MAX_RECORD or end > size:
            break
        offsets.append(pos)
        pos = end
    return offsets, pos


class RecordBatch:
    """Records of a classic pcap file lying whole in one buffer."""

    def __init__(self, buf: bytes, offsets: list[int], big_endian: bool, nanosecond: bool,
                 snaplen: int, linktype: int) -> None:
        self.buf = buf
        self.offsets = offsets
        self.big_endian = big_endian
        self.scale = 1 if nanosecond else 1000
        # libpcap (sf-pcap.c) cuts a record longer than the file's snapshot length down
        # to it.
        self.snaplen = snaplen
        self.linktype = linktype

    def __len__(self) -> int:
        return len(self.offsets)

    def ts_sec(self, i: int) -> int:
        return u32(self.buf, self.offsets[i], self.big_endian)

    def ts_nsec(self, i: int) -> int:
        frac = u32(self.buf, self.offsets[i] + 4, self.big_endian)
        if self.scale == 1 and frac >= 0x80000000:
            # libpcap reads the fraction as a signed 32-bit number and divides it by 1000
            # toward zero for microseconds (sf-pcap.c); tcpdump prints that as %06u.  So
            # 0xffffffff ns prints as .000000: keep what tcpdump shows.
            return ((-((0x100000000 - frac) // 1000)) & 0xFFFFFFFF) * 1000
        return frac * self.scale

    def wire_len(self, i: int) -> int:
        return u32(self.buf, self.offsets[i] + 12, self.big_endian)

    def data(self, i: int) -> bytes:
        start, caplen = self.span(i)
        return self.buf[start:start + caplen]

    def span(self, i: int) -> tuple[int, int]:
        """Where record *i*'s frame lies in ``buf``: its start and captured length."""
        pos = self.offsets[i]
        return pos + REC_HDR_LEN, min(u32(self.buf, pos + 8, self.big_endian), self.snaplen)

    def packet(self, i: int) -> RawPacket:
        return _new_tuple(RawPacket, (self.ts_sec(i), self.ts_nsec(i), self.linktype,
                                      self.wire_len(i), self.data(i), 0, None))

    def packets(self) -> list[RawPacket]:
        return [self.packet(i) for i in range(len(self.offsets))]


# A NamedTuple's __new__ is Python even in a compiled module: called as
# ``_new_tuple(Cls, (every field...))`` it costs about 100 ns instead of 190.  The hot
# dissectors and the tracker build their records this way; every field must be given,
# defaults included.
_new_tuple: Final = tuple.__new__
