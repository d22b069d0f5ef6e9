"""The Internet checksum (RFC 1071).

``ones_sum`` is the one sum every checksum here starts from.  It has two ways to add
the words, which give the same number: a loop over the bytes in machine integers,
which is what runs when this module is compiled with mypyc (``setup.py``'s HOT list),
and Python's big integers, which is what runs when it is not.  Compiled, the loop adds
a 1,448-byte segment in about 0.7 us against 2.4 us for the big integer; interpreted,
the loop would be forty times slower than the big integer.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64

# True when mypyc compiled this module: its functions are then builtins, not Python
# functions (a compiled module's function has no __code__).
COMPILED: Final = not hasattr(lambda: None, "__code__")


def ones_sum(data: bytes) -> int:
    """The folded 16-bit one's-complement sum of *data*, as big-endian words; an odd
    last byte is padded with a zero byte (RFC 1071).  0 only when every byte is 0."""
    return words_loop(data) if COMPILED else words_bigint(data)


def words_loop(data: bytes) -> int:
    """``ones_sum`` a word at a time, in 64-bit integers when compiled: a word is at most
    0xFFFF, so 2**47 of them still fit before folding."""
    n: i64 = len(data)
    total: i64 = 0
    i: i64 = 0
    while i + 1 < n:
        total += (data[i] << 8) | data[i + 1]
        i += 2
    if i < n:
        total += data[i] << 8
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def words_bigint(data: bytes) -> int:
    """``ones_sum`` in C through Python's big integers.

    2**16 is 1 modulo 0xFFFF, so the sum of the words is congruent to all of *data* read
    as one big-endian number: ``int.from_bytes`` and ``%`` do the work.  Folding a
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
