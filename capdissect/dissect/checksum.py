"""The Internet checksum (RFC 1071), computed in C through Python's big integers."""

from __future__ import annotations


def ones_sum(data: bytes) -> int:
    """The folded 16-bit one's-complement sum of *data*, as big-endian words.

    2**16 is 1 modulo 0xFFFF, so the sum of the words is congruent to all of *data* read
    as one big-endian number: ``int.from_bytes`` and ``%`` do the work in C.  Folding a
    non-zero sum never gives 0 but 0xFFFF, hence the last line.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8  # the odd byte is padded with a zero byte (RFC 1071)
    total = value % 0xFFFF
    return 0xFFFF if total == 0 and value else total


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
