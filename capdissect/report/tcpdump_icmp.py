"""ICMP (RFC 792) as tcpdump's print-icmp.c prints it.  Being written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capdissect.dissect.ipv4 import IPv4Header
from capdissect.report.frame import Frame

if TYPE_CHECKING:
    from capdissect.report.tcpdump import TcpdumpPrinter


def print_icmp(pr: TcpdumpPrinter, frame: Frame, off: int, length: int, end: int,
               ip: IPv4Header, fragmented: bool) -> None:
    frame.out.append("unsupported: ICMP")
