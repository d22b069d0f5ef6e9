"""Addresses as each audience spells them, defined once.

- ``text``: an address alone, numeric (``127.0.0.1``, ``::1``), as tcpdump -n and the
  JSON write it;
- ``dotted``: an endpoint as tcpdump writes it, port after a dot (``127.0.0.1.30002``,
  ``::1.30002``), for the annotations and the analysis findings;
- ``endpoint``: an endpoint as SPEC §4's JSON, the tables and the ladders write it
  (``127.0.0.1:30002``, ``[::1]:30002``);
- ``netstat_address``: netstat's numeric spelling (``::1:30002``, no brackets).

tcpdump's spelling with names (without -n) is ``report/tcpdump/names.py``'s, which falls
back on ``text``.
"""

from __future__ import annotations

import socket
from typing import Final


def text(packed: bytes | bytearray | memoryview) -> str:
    """An IPv4 or IPv6 address as text; any other length as hex (a damaged header).

    A capture has few distinct addresses and spells them twice a packet, so the last
    _KEPT spellings are kept (inet_ntop costs about five times a dict lookup)."""
    if type(packed) is not bytes:  # a bytearray or memoryview: not a dict key
        return _spell(bytes(packed))
    known = _SPELLED.get(packed)
    if known is None:
        if len(_SPELLED) >= _KEPT:
            _SPELLED.clear()  # a flood of random sources must not grow it
        known = _SPELLED[packed] = _spell(packed)
    return known


_SPELLED: dict[bytes, str] = {}
_KEPT: Final = 4096


def _spell(packed: bytes) -> str:
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if len(packed) == 16:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return packed.hex()


def dotted(ep: tuple[bytes, int]) -> str:
    """tcpdump's spelling: 127.0.0.1.30002, ::1.30002."""
    return f"{text(ep[0])}.{ep[1]}"


def endpoint(ep: tuple[bytes, int]) -> str:
    """SPEC §4's spelling: 127.0.0.1:30002, [::1]:30002."""
    addr, port = ep
    return f"{text(addr)}:{port}" if len(addr) == 4 else f"[{text(addr)}]:{port}"


def netstat_address(ep: tuple[bytes, int]) -> str:
    """netstat's numeric spelling: 127.0.0.1:30002, ::1:30002 (no brackets)."""
    return f"{text(ep[0])}:{ep[1]}"
