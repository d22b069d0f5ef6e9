"""ARP (RFC 826) as tcpdump's one-line summary: outside capdissect's dissection scope,
but a capture of loopback or Ethernet traffic is full of it, and one line says enough."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from capdissect.report.tcpdump.frame import Frame

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

_HEADER: Final = struct.Struct("!HHBBH")  # hardware, protocol, their lengths, operation
HARDWARE: Final = {1: "Ethernet", 6: "IEEE 802", 15: "Frame Relay", 24: "IEEE 1394"}
OPERATIONS: Final = {1: "Request", 2: "Reply", 3: "Reverse Request", 4: "Reverse Reply",
                     8: "Inverse Request", 9: "Inverse Reply"}
ETH_IPV4: Final = 0x0800


def print_arp(pr: Context, frame: Frame, off: int, length: int) -> None:
    """print-arp.c arp_print for Ethernet-style hardware addresses."""
    out = frame.out
    buf = frame.buf
    if off + 8 > len(buf):
        out.append(" [|arp]")
        return
    hrd, pro, hln, pln, op = _HEADER.unpack_from(buf, off)
    sha = off + 8
    spa = sha + hln
    tha = spa + pln
    tpa = tha + hln
    if tpa + pln > len(buf):
        out.append(" [|arp]")
        return
    if not pr.opts.e:
        out.append("ARP, ")
    ipv4 = pro == ETH_IPV4 and pln == 4
    if not ipv4 or hln == 0 or pr.opts.v:
        names = {0x0800: "IPv4", 0x86DD: "IPv6"}
        out.append(f"{HARDWARE.get(hrd, f'Unknown Hardware ({hrd})')} (len {hln}), "
                   f"{names.get(pro, f'Unknown Protocol (0x{pro:04x})')} (len {pln})")
        if not pr.opts.v:
            out.append(f", length {length}")
            return
    out.append(f"{', ' if pr.opts.v else ''}{OPERATIONS.get(op, f'Unknown ({op})')} ")

    def ip(at: int) -> str:
        if pro != ETH_IPV4:
            return "<wrong proto type>"
        return pr.addr(buf[at : at + 4]) if pln == 4 else "<wrong len>"

    def mac(at: int) -> str:
        return pr.names.mac(buf[at : at + hln])

    if op == 1:
        out.append(f"who-has {ip(tpa)}")
        if any(buf[tha : tha + hln]):
            out.append(f" ({mac(tha)})")
        out.append(f" tell {ip(spa)}")
    elif op == 2:
        out.append(f"{ip(spa)} is-at {mac(sha)}")
    elif op in (3, 8):
        out.append(f"who-is {mac(tha)} tell {mac(sha)}")
    elif op == 4:
        out.append(f"{mac(tha)} at {ip(tpa)}")
    elif op == 9:
        out.append(f"{mac(sha)} at {ip(spa)}")
    else:
        out.append("unsupported")
        return
    out.append(f", length {length}")
