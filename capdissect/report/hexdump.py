"""tcpdump's -x and -X hex dumps (print-ascii.c layout), built with C-speed bytes methods."""

from __future__ import annotations

from typing import Final

# Printable ASCII (0x21-0x7e, "isgraph") stays; everything else, space included, is '.'.
_ASCII: Final = bytes(b if 0x21 <= b <= 0x7E else 0x2E for b in range(256))


def hex_ascii(data: bytes, indent: str = "\n\t", offset: int = 0) -> str:
    """-X: 16 bytes a line, hex in 2-byte groups, then the printable characters."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        hexes = chunk.hex(" ", -2)
        lines.append(
            f"{indent}0x{offset + start:04x}:  {hexes:<39}  {chunk.translate(_ASCII).decode()}"
        )
    return "".join(lines)


def hex_only(data: bytes, indent: str = "\n\t", offset: int = 0) -> str:
    """-x: 16 bytes a line, hex in 2-byte groups."""
    return "".join(
        f"{indent}0x{offset + start:04x}:  {data[start : start + 16].hex(' ', -2)}"
        for start in range(0, len(data), 16)
    )
