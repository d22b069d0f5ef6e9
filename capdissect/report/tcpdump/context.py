"""What a protocol printer may ask of the printer that called it: the output flags,
the names, and the IP printer for the datagram an ICMP error quotes.

``printer.py``'s ``TcpdumpPrinter`` is the one implementation; the protocol modules
(``arp.py``, ``icmp.py``, ``icmp6.py``) are typed against ``Context`` and never import
the printer, so the dispatch points one way: printer -> protocol printer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Protocol

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


if TYPE_CHECKING:  # a Protocol costs a millisecond to create, and only mypy needs it
    class Context(Protocol):
        """The printer as a protocol printer sees it: the flags, the names, the state a file's
        packets share, and the dispatch to the next protocol's printer."""

        opts: PrintOptions
        names: Names
        # tcpdump's tcp_seq_hash: (addresses, ports) in a canonical order -> (seq, ack) base.
        isn: dict[tuple[bytes, bytes, int], tuple[int, int]]

        def ifname(self, index: int) -> str | None:
            """A pcapng interface's name, for -e on a capture of several interfaces."""

        def addr(self, packed: bytes) -> str:
            """An IPv4 or IPv6 address as tcpdump prints it (-n: numeric)."""

        def print_ip(self, frame: Frame, off: int, length: int, end: int) -> None:
            """print-ip.c ip_print: an IPv4 datagram at *off* (also one an ICMP error quotes)."""

        def print_ip6(self, frame: Frame, off: int, length: int, end: int) -> None:
            """print-ip6.c ip6_print: an IPv6 datagram at *off*."""

        def demux(self, frame: Frame, off: int, length: int, end: int, nh: int,
                  ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
            """print-ip-demux.c ip_demux_print: the payload of *ip*, by its protocol *nh*."""

        def proto_name(self, proto: int) -> str:
            """An IP protocol's name as tcpdump prints it (-n: ip-proto-N)."""

        def endpoints(self, ip: IPv4Header | IPv6Header, proto: int, sport: str,
                      dport: str) -> str:
            """``src.sport > dst.dport: ``, or the ports alone inside a tunnel."""
