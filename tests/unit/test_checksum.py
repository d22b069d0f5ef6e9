"""The Internet checksum's two ways of adding words give the same sum (RFC 1071)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from capdissect.dissect import checksum


def _reference(data: bytes) -> int:
    """RFC 1071 §4.1's loop, word by word with end-around carry."""
    total = 0
    for i in range(0, len(data), 2):
        word = data[i] << 8 | (data[i + 1] if i + 1 < len(data) else 0)
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _cases() -> list[bytes]:
    rng = random.Random(1071)
    cases = [b"", b"\x00", b"\x01", b"\xff", b"\x00" * 40, b"\xff" * 40, b"\xff" * 41,
             b"\xff\xfe\x00\x01",  # 0xFFFE + 1: a non-zero sum that folds to 0xFFFF
             bytes.fromhex("0001f203f4f5f6f7")]  # RFC 1071 §3's example
    for length in (*range(1, 24), 1448, 1449, 9000, 65535, 65536):
        cases.append(rng.randbytes(length))
    return cases


@pytest.mark.parametrize("data", _cases(), ids=lambda data: f"{len(data)}B")
def test_both_ways_give_the_reference_sum(data: bytes) -> None:
    assert checksum.words_loop(data) == _reference(data)
    assert checksum.words_bigint(data) == _reference(data)
    assert checksum.ones_sum(data) == _reference(data)


def test_rfc1071_example() -> None:
    # RFC 1071 §3: these eight bytes sum to ddf2 (one's complement, with carries).
    assert checksum.ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2


def test_compiled_flag_follows_the_module() -> None:
    """The loop is chosen exactly when the module is mypyc's build, not its source."""
    compiled = Path(checksum.__file__ or "").suffix != ".py"
    assert compiled is checksum.COMPILED
