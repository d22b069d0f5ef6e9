"""MPTCP options (RFC 8684) as tcpdump's print-mptcp.c prints them.  Being written."""

from __future__ import annotations


def format_mptcp(option: bytes, flags: int, verbose: int) -> str | None:
    return " unsupported"
