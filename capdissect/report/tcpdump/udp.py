"""print-udp.c: ports, length and, with -v, the checksum."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capdissect.dissect.checksum import pseudo_sum, verify
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import (
    IPv6Header,
)
from capdissect.dissect.udp import parse_udp
from capdissect.report.tcpdump.fast import udp_cksum_text
from capdissect.report.tcpdump.frame import Frame
from capdissect.report.tcpdump.ip import final_dst

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context


def print_udp(pr: Context, frame: Frame, off: int, length: int, end: int,
         ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
    """print-udp.c udp_print (no application-layer decoding)."""
    out = frame.out
    buf = frame.buf
    frame.proto = "udp"
    names = pr.names
    if off + 4 > end:
        inner = ip.proto if isinstance(ip, IPv4Header) else ip.next_header
        if inner == 17:
            out.append(f"{pr.addr(ip.src)} > {pr.addr(ip.dst)}: ")
        out.append(" [|udp]")
        return
    sport = int.from_bytes(buf[off : off + 2], "big")
    dport = int.from_bytes(buf[off + 2 : off + 4], "big")
    endpoints = pr.endpoints(ip, 17, names.udp_port(sport), names.udp_port(dport))
    if length < 8:
        out.append(endpoints + f"truncated-udp {length}")
        return
    if off + 6 > end:
        out.append(endpoints + " [|udp]")
        return
    ulen = int.from_bytes(buf[off + 4 : off + 6], "big")
    if ulen == 0 and length > 65535:
        ulen = length
    if ulen < 8:
        out.append(endpoints + f"truncated-udplength {ulen}")
        return
    ulen -= 8
    length -= 8
    length = min(length, ulen)
    if off + 8 > end:
        out.append(endpoints + " [|udp]")
        return
    out.append(endpoints)
    if pr.opts.v and not pr.opts.K and not fragmented:
        udp = parse_udp(buf, off)
        is_v4 = isinstance(ip, IPv4Header)
        if is_v4 and pr.opts.v > 1:
            if udp.checksum == 0:
                out.append("[no cksum] ")
            elif off + 8 + length <= end:
                _udp_cksum(pr, frame, off, length, ip, udp.checksum)
        elif not is_v4 and off + 8 + length <= end:
            _udp_cksum(pr, frame, off, length, ip, udp.checksum)
    if ulen > length and not fragmented:
        out.append(f"UDP, bad length {ulen} > {length}")
    else:
        out.append(f"UDP, length {ulen}")


def _udp_cksum(pr: Context, frame: Frame, off: int, length: int,
               ip: IPv4Header | IPv6Header, field: int) -> None:
    total = length + 8
    initial = pseudo_sum(ip.src, final_dst(frame, ip), 17, total)
    frame.out.append(udp_cksum_text(field, verify(frame.buf[off : off + total], initial)))
