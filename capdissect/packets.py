"""The record every capture source yields: one packet as it lay in the file or on the wire."""

from __future__ import annotations

from typing import NamedTuple


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
