"""tcpdump's -x and -X hex dumps (print-ascii.c layout).

-X is most of what ``read -v -X`` does, so the bytes become text in C: one
``bytes.hex`` and one ``translate`` for the whole packet, then each line is three slices
of those, with its "0x0010:" label taken from a table.  (Compiled by mypyc with the fast
printer, see fast.py.)
"""

from __future__ import annotations

from typing import Final

# Printable ASCII (0x21-0x7e, "isgraph") stays; everything else, space included, is '.'.
_ASCII: Final = bytes(b if 0x21 <= b <= 0x7E else 0x2E for b in range(256))
# "0x0000", "0x0010", ...: the offset labels of the first lines (most packets are short).
_LABELS: Final = tuple(f"0x{line * 16:04x}" for line in range(256))
# A line of hex is 8 groups of 4 digits with a space between: 39 characters.
_HEX_LINE: Final = 39


def _label(offset: int) -> str:
    return _LABELS[offset >> 4] if offset < 4096 and not offset & 15 else f"0x{offset:04x}"


def hex_ascii(data: bytes, indent: str = "\n\t", offset: int = 0) -> str:
    """-X: 16 bytes a line, hex in 2-byte groups, then the printable characters."""
    hexes = data.hex(" ", -2)
    chars = data.translate(_ASCII).decode("ascii")
    parts: list[str] = []
    size = len(data)
    for start in range(0, size, 16):
        h = hexes[start * 5 // 2 : start * 5 // 2 + _HEX_LINE]
        if start + 16 > size:
            h = h.ljust(_HEX_LINE)
        parts += (indent, _label(offset + start), ":  ", h, "  ", chars[start : start + 16])
    return "".join(parts)


def hex_only(data: bytes, indent: str = "\n\t", offset: int = 0) -> str:
    """-x: 16 bytes a line, hex in 2-byte groups."""
    hexes = data.hex(" ", -2)
    parts: list[str] = []
    for start in range(0, len(data), 16):
        h = hexes[start * 5 // 2 : start * 5 // 2 + _HEX_LINE]
        parts += (indent, _label(offset + start), ":  ", h)
    return "".join(parts)


def printable(data: bytes) -> str:
    """util-print.c fn_print_char for each byte: M- for the high bit, ^X for controls,
    so payload text never puts a raw control character on the terminal."""
    chars = []
    for byte in data:
        if byte & 0x80:
            chars.append("M-")
            byte &= 0x7F
        chars.append("^" + chr(byte ^ 0x40) if byte < 0x20 or byte == 0x7F else chr(byte))
    return "".join(chars)
