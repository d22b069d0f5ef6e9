"""The Internet checksum (RFC 1071), computed in C through memoryview.cast.

Summing native-order 16-bit words and byte-swapping the folded result gives the same
answer as summing big-endian words (RFC 1071 §2(B)), and lets ``sum`` run in C.
"""

from __future__ import annotations

import sys
from typing import Final

_LITTLE: Final = sys.byteorder == "little"


def ones_sum(data: bytes) -> int:
    """The folded 16-bit one's-complement sum of *data*, as big-endian words."""
    if len(data) & 1:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def verify(data: bytes, initial: int = 0) -> int:
    """Return 0 when *data* (checksum field included) sums correctly, else ~sum.

    *initial* is a pseudo-header's sum.
    """
    total = ones_sum(data) + initial
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def should_be(field: int, computed: int) -> int:
    """What the checksum field should hold, given the field and ``verify``'s result.

    The same arithmetic as tcpdump's in_cksum_shouldbe (RFC 1624 incremental update).
    """
    total = field + computed
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total & 0xFFFF


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The sum of the IPv4 or IPv6 pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1)."""
    if len(src) == 4:
        return ones_sum(src + dst) + proto + length
    return ones_sum(src + dst) + (length >> 16) + (length & 0xFFFF) + proto
