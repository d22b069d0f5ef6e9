"""ICMPv6 (RFC 4443) as tcpdump's print-icmp6.c prints it.  Being written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capdissect.dissect.ipv6 import IPv6Header
from capdissect.report.frame import Frame

if TYPE_CHECKING:
    from capdissect.report.tcpdump import TcpdumpPrinter


def print_icmp6(pr: TcpdumpPrinter, frame: Frame, off: int, length: int, end: int,
               ip: IPv6Header, fragmented: bool) -> None:
    frame.out.append("unsupported: ICMPv6")
