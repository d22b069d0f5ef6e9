"""Print packets exactly as ``tcpdump -r`` (4.99) does: the dispatch.

As tcpdump's print-*.c, one module per protocol: ``link.py``, ``ip.py``, ``ip6.py``,
``tcp.py``, ``udp.py``, ``arp.py``, ``icmp.py``, ``icmp6.py``, ``timestamp.py``; each
formats the dissectors' records in tcpdump's order and receives this printer as its
``Context`` (``context.py``), never importing it.  ``TcpdumpPrinter`` keeps what a
file's packets share (relative sequence numbers, -ttt's reference, the names) and sends
each packet to the fast path (``fast.py``) or the link printer, and each payload to its
protocol's printer (``demux``).  References are to tcpdump's source files, whose
behaviour (not code) this follows.

tcpdump's printers stop at the end of the captured data in two ways: most print
``[|proto]`` and return, but a failed bounds check in its GET_ macros jumps back to the
top (``longjmp``), which also makes the -X dump start at the link header.  ``Cut``
(``frame.py``) models that jump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from capdissect.dissect import link as linkmod
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import IPv6Header
from capdissect.packets import RawPacket
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.fast import FastPath
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.hexdump import hex_ascii, hex_only
from capdissect.report.tcpdump.ip import print_ip
from capdissect.report.tcpdump.ip6 import print_ip6
from capdissect.report.tcpdump.link import print_link
from capdissect.report.tcpdump.names import IPPROTO_NAMES, PROTOCOL_KEYWORDS, Names
from capdissect.report.tcpdump.tcp import print_tcp
from capdissect.report.tcpdump.timestamp import Clock
from capdissect.report.tcpdump.udp import print_udp


class Printed(NamedTuple):
    """One packet's lines as tcpdump prints them, without the -x/-X dump, and the offset
    in the packet where that dump starts (None: no dump)."""

    text: str
    dump_from: int | None


class TcpdumpPrinter:
    """Formats packets one at a time; keeps tcpdump's per-file state (ISNs, -ttt reference)."""

    def __init__(
        self, options: PrintOptions, ifname: Callable[[int], str | None] | None = None
    ) -> None:
        self.opts = options
        self.names = Names(numeric=options.n > 0)
        self.ifname = ifname or (lambda index: None)
        # tcpdump's tcp_seq_hash: (addresses, ports) in a canonical order -> (seq, ack) base.
        self.isn: dict[tuple[bytes, bytes, int], tuple[int, int]] = {}
        self.clock = Clock(options.t)
        # The common shape takes the fast path (fast.py) under the options it
        # covers: default timestamps, no link header, up to one -v.
        self.fast = (FastPath(self.names, self.isn, v=options.v, x=options.x, X=options.X,
                               S=options.S, K=options.K)
                      if options.t == 0 and not options.e and options.v <= 1 else None)

    # ----- whole packet -------------------------------------------------------------------
    def format(self, pkt: RawPacket) -> str:
        """The text tcpdump prints for *pkt*, without the final newline."""
        if self.fast is not None and pkt.linktype == linkmod.EN10MB:
            fast = self.fast.format(pkt.ts_sec, pkt.ts_nsec, pkt.wire_len, pkt.data)
            if fast is not None:
                return fast
        text, start = self._printed(pkt)
        if start is None:
            return text
        dump = hex_ascii if self.opts.X else hex_only
        return text + dump(pkt.data[start:])

    def printed(self, pkt: RawPacket) -> Printed:
        """``format``'s text without the -x/-X dump, and where in the packet the dump
        starts: a record for a caller that draws the bytes itself (the handout)."""
        fast = self.fast
        if fast is not None and pkt.linktype == linkmod.EN10MB:
            line = fast.line(pkt.ts_sec, pkt.ts_nsec, pkt.wire_len, pkt.data)
            if line is not None:
                return Printed(line, fast.hex_from if fast.hex else None)
        return self._printed(pkt)

    def _printed(self, pkt: RawPacket) -> Printed:
        """The full printer: tcpdump's layers, one protocol module each."""
        frame = Frame(pkt.data)
        out = frame.out
        caplen = len(pkt.data)
        wire_len = pkt.wire_len
        problems = []
        if caplen == 0:
            problems.append(" caplen==0")
        if wire_len == 0:
            problems.append(" len==0")
        elif wire_len < caplen:
            problems.append(f" len({wire_len}) < caplen({caplen})")
        if caplen > 262144:
            problems.append(f" caplen({caplen}) > 262144")
        if wire_len > 262144:
            problems.append(f" len({wire_len}) > 262144")
        if problems:  # print.c: "[Invalid header: caplen==0, len==0]"
            return Printed("[Invalid header:" + ",".join(problems) + "]", None)
        out.append(self.clock.text(pkt.ts_sec, pkt.ts_nsec))
        try:
            print_link(self, frame, pkt)
        except Cut as cut:
            out.append(f" [|{cut.proto}]")
            frame.link_len = 0
        dumped = self.opts.X or self.opts.x  # -X's count decides when both are given
        start = 0 if dumped > 1 else frame.link_len
        return Printed("".join(out), start if dumped and caplen > start else None)

    # ----- what a protocol printer may ask (context.py) ------------------------------------
    def addr(self, packed: bytes) -> str:
        return self.names.ip(packed)

    def print_ip(self, frame: Frame, off: int, length: int, end: int) -> None:
        print_ip(self, frame, off, length, end)

    def print_ip6(self, frame: Frame, off: int, length: int, end: int) -> None:
        print_ip6(self, frame, off, length, end)

    # ----- transport --------------------------------------------------------------------------
    def demux(self, frame: Frame, off: int, length: int, end: int, nh: int,
               ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
        """print-ip-demux.c ip_demux_print."""
        out = frame.out
        is_v4 = isinstance(ip, IPv4Header)
        if nh == 6:
            print_tcp(self, frame, off, length, end, ip, fragmented)
        elif nh == 17:
            print_udp(self, frame, off, length, end, ip, fragmented)
        elif (nh == 1 and is_v4) or (nh == 58 and not is_v4):
            # The ICMP printers are imported at the first ICMP packet, not at start-up.
            if isinstance(ip, IPv4Header):
                from capdissect.report.tcpdump import icmp as tcpdump_icmp
                tcpdump_icmp.print_icmp(self, frame, off, length, end, ip, fragmented)
            else:
                from capdissect.report.tcpdump import icmp6 as tcpdump_icmp6
                tcpdump_icmp6.print_icmp6(self, frame, off, length, end, ip, fragmented)
        elif nh in (1, 58):
            out.append(f"[{IPPROTO_NAMES[nh]} requires IPv{6 if nh == 58 else 4}] (invalid)")
        elif nh == 4:
            print_ip(self, frame, off, length, end)
        elif nh == 41:
            print_ip6(self, frame, off, length, end)
        elif nh == 59:
            out.append("no next header")
        else:
            out.append(f" {self.proto_name(nh)} {length}")

    def proto_name(self, proto: int) -> str:
        name = None if self.opts.n else PROTOCOL_KEYWORDS.get(proto)
        return name or f"ip-proto-{proto}"

    def endpoints(self, ip: IPv4Header | IPv6Header, proto: int, sport: str,
                   dport: str) -> str:
        inner = ip.proto if isinstance(ip, IPv4Header) else ip.next_header
        if inner == proto:
            return f"{self.addr(ip.src)}.{sport} > {self.addr(ip.dst)}.{dport}: "
        return f"{sport} > {dport}: "
