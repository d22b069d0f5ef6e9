"""``live --port/--host/--proto EXPRESSION`` as one filter expression in tcpdump's language.

``--port P`` means ``port P`` *plus the ICMP and ICMPv6 errors that quote a datagram or
segment of port P*: a UDP client on port P that gets "port unreachable" must see that
answer, and the error's own header has no ports (it goes from the reporter to the
sender, ICMP protocol), so ``port P`` alone would hide it.

How the quote is found (RFC 792 / RFC 4443: an error carries, after its 8-byte header,
the IP header of the offending packet and at least 8 bytes past it, which hold the
ports of TCP, UDP and SCTP):

- ICMP (IPv4): error types 3 unreachable, 4 source quench, 5 redirect, 11 time
  exceeded, 12 parameter problem.  The quoted IPv4 header starts at ``icmp[8]``; its
  length is ``(icmp[8] & 0xf) * 4``; its protocol is ``icmp[17]``; it must be a first
  fragment (``icmp[14:2] & 0x1fff == 0``), else there are no ports to read.  The quoted
  ports are the two 16-bit words after that header.  libpcap's own ``icmp[...]`` already
  skips the outer header by its real length and refuses outer fragments.
- ICMPv6: error types 1 to 4 (destination unreachable, packet too big, time exceeded,
  parameter problem).  The quoted IPv6 header is ``icmp6[8]`` to ``icmp6[47]``, its next
  header ``icmp6[14]``, the ports ``icmp6[48:2]`` and ``icmp6[50:2]``.  A quote with
  extension headers is not matched: BPF cannot walk them without a loop, and libpcap
  itself reads ``icmp6[...]`` only when ICMPv6 follows the fixed header directly.

``--proto tcp`` or ``udp`` limits both the direct packets and the quoted ones to that
protocol; ``--host H`` is ``host H``; a trailing EXPRESSION is and-ed with the rest.
Pure string building: the result is compiled by libpcap like any other expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

Proto = Literal["tcp", "udp", "all"]

_PROTO_NUMBERS: Final[dict[str, tuple[int, ...]]] = {
    "tcp": (6,),
    "udp": (17,),
    "all": (6, 17, 132),  # tcpdump's `port` covers TCP, UDP and SCTP
}
ICMP_ERROR_TYPES: Final = (3, 4, 5, 11, 12)
ICMP6_ERROR_TYPES: Final = (1, 2, 3, 4)


def _any_of(field: str, values: Sequence[int]) -> str:
    inner = " or ".join(f"{field} == {v}" for v in values)
    return f"({inner})" if len(values) > 1 else inner


def icmp_quoting(ports: Sequence[int] | None, proto: Proto = "all") -> str:
    """ICMP and ICMPv6 errors quoting a *proto* packet from or to one of *ports*
    (any port when *ports* is None)."""
    numbers = _PROTO_NUMBERS[proto]
    quoted_ports = "icmp[8 + ((icmp[8] & 0xf) << 2):2]", "icmp[8 + ((icmp[8] & 0xf) << 2) + 2:2]"
    v4 = [
        "icmp",
        _any_of("icmp[0]", ICMP_ERROR_TYPES),
        _any_of("icmp[17]", numbers),
        "icmp[14:2] & 0x1fff == 0",
    ]
    v6 = [
        "icmp6",
        _any_of("icmp6[0]", ICMP6_ERROR_TYPES),
        _any_of("icmp6[14]", numbers),
    ]
    if ports is not None:
        v4.append(_any_of_ports(quoted_ports, ports))
        v6.append(_any_of_ports(("icmp6[48:2]", "icmp6[50:2]"), ports))
    return f"(({' and '.join(v4)}) or ({' and '.join(v6)}))"


def _any_of_ports(fields: Sequence[str], ports: Sequence[int]) -> str:
    tests = [f"{field} == {port}" for port in ports for field in fields]
    return "(" + " or ".join(tests) + ")"


def build_expression(
    ports: Sequence[int] = (),
    host: str | None = None,
    proto: Proto = "all",
    expression: str | None = None,
) -> str | None:
    """The filter ``live`` hands to the kernel (or to dumpcap); None captures everything."""
    parts: list[str] = []
    qualifier = "" if proto == "all" else f"{proto} "
    if ports:
        direct = " or ".join(f"{qualifier}port {port}" for port in ports)
        parts.append(f"({direct} or {icmp_quoting(ports, proto)})")
    elif proto != "all":
        parts.append(f"({proto} or {icmp_quoting(None, proto)})")
    if host:
        parts.append(f"host {host}")
    if expression and expression.strip():
        parts.append(f"({expression.strip()})")
    return " and ".join(parts) if parts else None
