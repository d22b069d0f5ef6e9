"""What a protocol printer may ask of the printer that called it: the output flags,
the names, and the IP printer for the datagram an ICMP error quotes.

``printer.py``'s ``TcpdumpPrinter`` is the one implementation; the protocol modules
(``arp.py``, ``icmp.py``, ``icmp6.py``) are typed against ``Context`` and never import
the printer, so the dispatch points one way: printer -> protocol printer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from capdissect.dissect.ipv4 import IPv4Header
    from capdissect.dissect.ipv6 import IPv6Header
    from capdissect.report.tcpdump.frame import Frame
    from capdissect.report.tcpdump.names import Names


@dataclass(frozen=True, slots=True)
class PrintOptions:
    """tcpdump's output flags; counts where tcpdump counts (-vv, -nn, -XX, -ttt)."""

    n: int = 0
    v: int = 0
    x: int = 0
    X: int = 0
    e: bool = False
    S: bool = False
    K: bool = False
    t: int = 0  # 0 default, 1 -t, 2 -tt, 3 -ttt, 4 -tttt, 5 -ttttt


class Context(Protocol):
    """The printer as a protocol printer sees it."""

    opts: PrintOptions
    names: Names

    def addr(self, packed: bytes) -> str:
        """An IPv4 or IPv6 address as tcpdump prints it (-n: numeric)."""

    def print_ip(self, frame: Frame, off: int, length: int, end: int) -> None:
        """print-ip.c ip_print: a (quoted) IPv4 datagram at *off*."""

    def final_dst(self, frame: Frame, ip: IPv4Header | IPv6Header) -> bytes:
        """The destination for the pseudo-header: the last address of a routing header."""
