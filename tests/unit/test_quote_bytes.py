"""The payload quoted on an annotated data line (``annotate.quote_bytes``): printable
ASCII as it is but the quote and the backslash, escaped; newline, carriage return and tab
as ``\\n``, ``\\r``, ``\\t``; every other byte as ``\\xNN`` (lower-case hex).  Checked
against that rule spelt a byte at a time, on every byte, every pair of bytes and seeded
random payloads mixing the kinds."""

from __future__ import annotations

import random

from capdissect.report.annotate import quote_bytes

_NAMED = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def rule(data: bytes) -> str:
    return "".join(_NAMED.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}")
                   for b in data)


def test_every_byte_and_every_pair() -> None:
    assert quote_bytes(b"") == ""
    for first in range(256):
        assert quote_bytes(bytes([first])) == rule(bytes([first])), first
        pairs = bytes(b for second in range(256) for b in (first, second))
        assert quote_bytes(pairs) == rule(pairs), first


def test_payloads_of_every_kind() -> None:
    draw = random.Random(19)
    kinds = (range(256), range(0x20, 0x7F), (0x22, 0x5C), (0x0A, 0x0D, 0x09), range(0x80, 0x100))
    for _ in range(20_000):
        data = bytes(draw.choice(draw.choice(kinds)) for _ in range(draw.randrange(48)))
        assert quote_bytes(data) == rule(data), data
    text = b'GET /a\\b "x" HTTP/1.1'
    assert quote_bytes(text) == 'GET /a\\\\b \\"x\\" HTTP/1.1'
    assert quote_bytes(b"\x1b[31m\x00\xff\x7f") == "\\x1b[31m\\x00\\xff\\x7f"
