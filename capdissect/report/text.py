"""Make any string safe for a terminal: no control characters, no escape sequences.

Reports built from a capture only print what capdissect formatted (addresses, numbers,
state names), never payload bytes; still, every string goes through ``clean`` before it
reaches a terminal, so nothing read from a file can move the cursor or change colours
(SPEC §6).  Like tcpdump, a character that must not be printed becomes ``.``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Cc: C0/C1 controls (ESC starts terminal sequences); Cf: format characters such as
# bidirectional overrides, which can reorder what a reader sees; Zl/Zp: line and paragraph
# separators; Cs/Co/Cn: surrogates, private use, unassigned.
_UNSAFE: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


class _Table(dict[int, str]):
    """str.translate's table, filled on first use of each code point (not 1.1 M at import)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = "." if unicodedata.category(char) in _UNSAFE else char
        self[code] = value
        return value


_TABLE: Final = _Table()


def clean(text: str) -> str:
    """*text* with every control or format character replaced by ``.``."""
    if text.isprintable():  # the common case, checked in C
        return text
    return text.translate(_TABLE)
