"""Colour for a terminal: the words a learner looks for, picked out of capdissect's text.

One highlighter serves every text report (annotations, ladders, tables, netstat): TCP
states (RFC 9293's names and netstat's spellings), phases, analysis findings and
addresses get an ANSI colour; everything else is left as it is.  Quoted payloads
(``"hello world"``) are skipped, so nothing from a capture is coloured as if it were
ours.  Only the command line decides whether to colour (a terminal, ``--color``,
``NO_COLOR``); ``--plain`` is tcpdump's text and never reaches this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

from capdissect.tracking.analysis import NAMES as FINDING_NAMES
from capdissect.tracking.states import TcpState

RESET: Final = "\x1b[0m"
# SGR codes: bold cyan phases, states by how far the connection got, red findings,
# blue addresses; the help's headings bold, its options cyan, its examples green.
STYLES: Final = {
    "phase": "1;36",
    "open": "1;32",  # LISTEN, SYN_*, ESTABLISHED
    "closing": "1;33",  # FIN_WAIT_*, CLOSE_WAIT, CLOSING, LAST_ACK
    "closed": "1;35",  # TIME_WAIT, CLOSED, CLOSE
    "finding": "1;31",
    "address": "34",
    "heading": "1",
    "option": "36",
    "example": "32",
}

_OPEN: Final = ("LISTEN", "SYN_SENT", "SYN_RECEIVED", "SYN_RECV", "ESTABLISHED")
_CLOSED: Final = ("TIME_WAIT", "CLOSED", "CLOSE")
_STATES: Final = sorted({*(s.value for s in TcpState), *(s.netstat for s in TcpState)},
                        key=len, reverse=True)
_FINDINGS: Final = sorted(FINDING_NAMES, key=len, reverse=True)

_PATTERN: Final = re.compile(
    r'(?P<quoted>"(?:[^"\\]|\\.)*")'
    rf"|(?P<state>\b(?:{'|'.join(_STATES)})\b)"
    r"|(?P<phase>\b(?:handshake|teardown|reset|data)\b)"
    rf"|(?P<finding>\b(?:{'|'.join(f.replace('_', '[ _]') for f in _FINDINGS)})\b)"
    r"|(?P<address>\b\d{1,3}(?:\.\d{1,3}){3}(?:[.:]\d+)?\b"
    r"|\[[0-9a-fA-F.]*:[0-9a-fA-F:.]*\](?::\d+)?"  # [::1]:30002
    # tcpdump's ::1.30002, fe80::1: a "::" or all eight groups (never a time's 05:05:27)
    r"|(?<![\w:.])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"
    r"|(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?)"
    r"(?:\.\d+)?"
    r"|\blocalhost(?:\.[\w-]+)?)")


def paint(text: str, style: str) -> str:
    """*text* in one of ``STYLES``."""
    return f"\x1b[{STYLES[style]}m{text}{RESET}"


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "quoted" or kind is None:
        return text
    if kind == "state":
        kind = "open" if text in _OPEN else "closed" if text in _CLOSED else "closing"
    return paint(text, kind)


def highlight(text: str) -> str:
    """*text* (one line or several) with states, phases, findings and addresses coloured."""
    return _PATTERN.sub(_replace, text)


def highlight_lines(texts: Iterable[str]) -> Iterator[str]:
    """``highlight`` over a stream of texts, as the reports yield them."""
    return map(highlight, texts)
