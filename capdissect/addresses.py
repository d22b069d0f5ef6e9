"""Addresses as each audience spells them: netstat's ``127.0.0.1:30002`` and
``::1:30002`` (no brackets) here; tcpdump's and the JSON's in their own modules."""

from __future__ import annotations

import socket


def netstat_address(ep: tuple[bytes, int]) -> str:
    """netstat's numeric spelling: 127.0.0.1:30002, ::1:30002 (no brackets)."""
    addr, port = ep
    family = socket.AF_INET if len(addr) == 4 else socket.AF_INET6
    return f"{socket.inet_ntop(family, addr)}:{port}"
