"""Print packets exactly as ``tcpdump -r`` (4.99) does.

The printer walks the dissectors' records in tcpdump's order and reproduces its
choices: what is printed at each -v level, relative sequence numbers, checksum
verification, and where a truncated packet stops (``[|tcp]``).  References are to
tcpdump's source files, whose behaviour (not code) this follows.

tcpdump's printers stop at the end of the captured data in two ways: most print
``[|proto]`` and return, but a failed bounds check in its GET_ macros jumps back to the
top (``longjmp``), which also makes the -X dump start at the link header.  ``Cut``
models that jump.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Final

from capdissect.dissect import ip_options as ipopt
from capdissect.dissect import ipv6 as ip6mod
from capdissect.dissect import link as linkmod
from capdissect.dissect.checksum import pseudo_sum, should_be, verify
from capdissect.dissect.ip_options import parse_ip_options
from capdissect.dissect.ipv4 import FLAG_DF, FLAG_MF, FLAG_RESERVED, IPv4Header, parse_ipv4
from capdissect.dissect.ipv6 import (
    IPv6Header,
    parse_fragment,
    parse_ipv6,
    parse_routing,
    parse_tlv_options,
)
from capdissect.dissect.tcp import ACK, FIN, RST, SYN, URG, parse_tcp
from capdissect.dissect.udp import parse_udp
from capdissect.errors import Truncated
from capdissect.packets import RawPacket
from capdissect.report.tcpdump.arp import print_arp
from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.fast import FLAG_STRINGS, FastPath, relative_numbers
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.hexdump import hex_ascii, hex_only
from capdissect.report.tcpdump.names import PROTOCOL_KEYWORDS, Names
from capdissect.report.tcpdump.tcp_options import print_options

IPPROTO_NAMES: Final = {
    0: "Options", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 8: "EGP", 9: "IGRP", 17: "UDP",
    33: "DCCP", 41: "IPv6", 43: "Routing", 44: "Fragment", 46: "RSVP", 47: "GRE", 50: "ESP",
    51: "AH", 55: "Mobile IP", 58: "ICMPv6", 62: "Mobile IP (old)", 88: "EIGRP", 89: "OSPF",
    103: "PIM", 108: "Compressed IP", 112: "VRRP", 113: "PGM", 132: "SCTP", 135: "Mobility",
    143: "Ethernet",
}
ETHERTYPE_NAMES: Final = {
    0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6", 0x8100: "802.1Q", 0x88A8: "802.1Q-QinQ",
    0x9100: "802.1Q-9100", 0x9200: "802.1Q-9200", 0x8847: "MPLS unicast",
    0x8848: "MPLS multicast", 0x8035: "Reverse ARP", 0x88CC: "LLDP", 0x8863: "PPPoE D",
    0x8864: "PPPoE S", 0x888E: "EAPOL", 0x88E5: "802.1AE MACsec",
}
MAX_RST_DATA_LEN: Final = 30
# util-print.c prints this, and no fraction, when localtime()/gmtime() fail (pcapng
# timestamps can reach years no calendar holds).
TIME_ERROR: Final = "[Error converting time]"
SLL_PKTTYPES: Final = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}
IP_OPTION_NAMES: Final = {
    ipopt.EOL: "EOL", ipopt.NOP: "NOP", ipopt.TIMESTAMP: "timestamp", ipopt.SECURITY: "security",
    ipopt.RR: "RR", ipopt.SSRR: "SSRR", ipopt.LSRR: "LSRR", ipopt.RA: "RA",
    ipopt.TRACEROUTE: "traceroute",
}
TIMESTAMP_KINDS: Final = {0: "TSONLY", 1: "TS+ADDR", 3: "PRESPEC"}  # by the option's flag


class TcpdumpPrinter:
    """Formats packets one at a time; keeps tcpdump's per-file state (ISNs, -ttt reference)."""

    def __init__(
        self, options: PrintOptions, ifname: Callable[[int], str | None] | None = None
    ) -> None:
        self.opts = options
        self.names = Names(numeric=options.n > 0)
        self.ifname = ifname or (lambda index: None)
        # tcpdump's tcp_seq_hash: (addresses, ports) in a canonical order -> (seq, ack) base.
        self._isn: dict[tuple[bytes, bytes, int], tuple[int, int]] = {}
        self._ts_ref: tuple[int, int] | None = None
        self._clock_sec = -1
        self._clock = ""
        # The common shape takes the fast path (tcpdump_fast.py) under the options it
        # covers: default timestamps, no link header, up to one -v.
        self.fast = (FastPath(self.names, self._isn, v=options.v, x=options.x, X=options.X,
                               S=options.S, K=options.K)
                      if options.t == 0 and not options.e and options.v <= 1 else None)

    # ----- whole packet -------------------------------------------------------------------
    def format(self, pkt: RawPacket) -> str:
        """The text tcpdump prints for *pkt*, without the final newline."""
        if self.fast is not None and pkt.linktype == linkmod.EN10MB:
            fast = self.fast.format(pkt.ts_sec, pkt.ts_nsec, pkt.wire_len, pkt.data)
            if fast is not None:
                return fast
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
            return "[Invalid header:" + ",".join(problems) + "]"
        out.append(self._timestamp(pkt.ts_sec, pkt.ts_nsec))
        try:
            self._link(frame, pkt)
        except Cut as cut:
            out.append(f" [|{cut.proto}]")
            frame.link_len = 0
        text = "".join(out)
        if self.opts.X:
            start = 0 if self.opts.X > 1 else frame.link_len
            if caplen > start:
                text += hex_ascii(pkt.data[start:])
        elif self.opts.x:
            start = 0 if self.opts.x > 1 else frame.link_len
            if caplen > start:
                text += hex_only(pkt.data[start:])
        return text

    def _timestamp(self, sec: int, nsec: int) -> str:
        usec = nsec // 1000  # tcpdump prints microseconds, truncating nanoseconds
        t = self.opts.t
        if t in (0, 2, 4) and sec & 0x80000000:
            # util-print.c refuses a time whose seconds, cut to 32 bits, have the sign bit
            # set (a negative time, or one past 2038); -1 included, so that value never
            # meets the "no clock yet" value of _clock_sec below.
            return f"{TIME_ERROR} "
        if t == 0 or t == 4:
            if sec != self._clock_sec:
                fmt = "%Y-%m-%d %H:%M:%S" if t == 4 else "%H:%M:%S"
                try:
                    clock = time.strftime(fmt, time.localtime(sec))
                except (OverflowError, OSError, ValueError):  # a year past time_t or int
                    return f"{TIME_ERROR} "
                self._clock_sec = sec
                self._clock = clock
            return f"{self._clock}.{usec:06d} "
        if t == 1:
            return ""
        if t == 2:
            return f"{sec & 0xFFFFFFFF}.{usec:06d} "  # tcpdump prints it as a 32-bit %u
        # -ttt: since the previous packet; -ttttt: since the first (util-print.c ts_print).
        ref = self._ts_ref or (sec, usec)
        now = (sec, usec)
        negative = now < ref
        a, b = (ref, now) if negative else (now, ref)
        delta = (a[0] - b[0]) * 1_000_000 + (a[1] - b[1])
        if t == 3 or self._ts_ref is None:
            self._ts_ref = now
        secs, usecs = divmod(delta, 1_000_000)
        # tcpdump formats the delta with gmtime and %H:%M:%S, so whole days drop out.
        sign = "-" if negative else " "
        try:
            clock = time.strftime("%H:%M:%S", time.gmtime(secs))
        except (OverflowError, OSError, ValueError):
            return f"{sign}{TIME_ERROR} "
        return f"{sign}{clock}.{usecs:06d} "

    # ----- link layer -----------------------------------------------------------------------
    def _link(self, frame: Frame, pkt: RawPacket) -> None:
        out = frame.out
        if pkt.linktype not in linkmod.LINK_NAMES:
            # A link type we cannot decode: print.c's unsupported printer says so and
            # dumps every byte; -x/-X dump them again, all of them (no link header).
            out.append("UNSUPPORTED")
            out.append(hex_ascii(pkt.data))
            frame.link_len = 0
            return
        try:
            link = linkmod.parse_link(pkt.linktype, pkt.data)
        except Truncated as exc:
            # A short link header: tcpdump prints [|ether] and counts every captured
            # byte as link header, so -X dumps nothing.
            frame.out.append(f" [|{exc.layer}]")
            frame.link_len = len(pkt.data)
            return
        frame.link_len = link.hdr_len
        lt = pkt.linktype
        if lt == linkmod.LINUX_SLL2:
            name = self.ifname(link.ifindex) or "?"
            out.append(f"{name:<5} {SLL_PKTTYPES.get(link.pkttype, '?'):<3} ")
        etype = link.ethertype
        end = len(pkt.data)
        length = pkt.wire_len - link.hdr_len
        if self.opts.e:
            self._link_e(frame, pkt, link)
        if lt in (linkmod.NULL, linkmod.LOOP) and etype == 0:
            if not self.opts.e:
                out.append(f"AF Unknown ({link.family}), length {pkt.wire_len}: ")
            self._default_print(frame, pkt.data[link.hdr_len :])
            return
        if etype == linkmod.ETH_IPV4 or etype == linkmod.ETH_IPV6:
            if lt in (linkmod.RAW, linkmod.RAW_OLD, linkmod.RAW_OLD2, linkmod.IPV4,
                      linkmod.IPV6):
                self._ip_any(frame, link.hdr_len, length, end)
            elif etype == linkmod.ETH_IPV4:
                self.print_ip(frame, link.hdr_len, length, end)
            else:
                self.print_ip6(frame, link.hdr_len, length, end)
            return
        if etype in (linkmod.ETH_ARP, 0x8035):  # ARP and Reverse ARP share one format
            print_arp(self, frame, link.hdr_len, length)
            return
        if lt == linkmod.EN10MB and etype <= linkmod.MAX_ETHERNET_LENGTH:
            out.append("unsupported: 802.3/LLC frame")
            return
        if not self.opts.e:
            # An undecoded type: tcpdump shows the link header it skipped without -e.
            if lt == linkmod.LINUX_SLL:
                self._link_e(frame, pkt, link)
            else:
                if lt == linkmod.EN10MB:
                    out.append(f"{self.names.mac(link.src)} > {self.names.mac(link.dst)}, ")
                name = ETHERTYPE_NAMES.get(etype, "Unknown")
                out.append(f"ethertype {name} (0x{etype:04x}), length {pkt.wire_len}: ")
        self._default_print(frame, pkt.data[link.hdr_len :])

    def _default_print(self, frame: Frame, data: bytes) -> None:
        """tcpdump's default printer for what it cannot decode: the bytes in hex, unless
        -x or -X will dump them anyway (tcpdump.c suppress_default_print)."""
        if not (self.opts.x or self.opts.X):
            frame.out.append(hex_ascii(data))

    def _link_e(self, frame: Frame, pkt: RawPacket, link: linkmod.LinkHeader) -> None:
        out = frame.out
        lt = pkt.linktype
        if lt == linkmod.EN10MB:
            out.append(f"{self.names.mac(link.src)} > {self.names.mac(link.dst)}, ")
            # print-ether.c: the outer type with the frame length, then each tag and the
            # type that follows it.
            outer = link.outer_ethertype
            out.append(f"ethertype {ETHERTYPE_NAMES.get(outer, 'Unknown')} (0x{outer:04x}), "
                       f"length {pkt.wire_len}: ")
            inner = (*link.vlan_types[1:], link.ethertype)
            for tci, etype in zip(link.vlans, inner[: len(link.vlans)], strict=True):
                out.append(f"{_vlan(tci)}, ethertype {ETHERTYPE_NAMES.get(etype, 'Unknown')} "
                           f"(0x{etype:04x}), ")
        elif lt in (linkmod.NULL, linkmod.LOOP):
            fam = link.family
            name = ("IPv4" if fam == linkmod.AF_INET
                    else "IPv6" if fam in linkmod.AF_INET6 else "Unknown")
            out.append(f"AF {name} ({fam}), length {pkt.wire_len}: ")
        elif lt == linkmod.LINUX_SLL:
            out.append(f"{SLL_PKTTYPES.get(link.pkttype, '?'):>3} ")
            if len(link.src) == 6:
                out.append(f"{self.names.mac(link.src)} ")
            et = link.ethertype if not link.vlans else 0x8100
            out.append(f"ethertype {ETHERTYPE_NAMES.get(et, 'Unknown')} (0x{et:04x}), "
                       f"length {pkt.wire_len}: ")
        elif lt in (linkmod.RAW, linkmod.RAW_OLD, linkmod.RAW_OLD2, linkmod.IPV4, linkmod.IPV6):
            out.append("ip: ")  # print-raw.c
        elif lt == linkmod.LINUX_SLL2:
            out.append(f"ifindex {link.ifindex} ")
            if len(link.src) == 6:
                out.append(f"{self.names.mac(link.src)} ")
            et = link.ethertype
            out.append(f"ethertype {ETHERTYPE_NAMES.get(et, 'Unknown')} (0x{et:04x}), "
                       f"length {pkt.wire_len}: ")

    # ----- IP -------------------------------------------------------------------------------
    def _ip_any(self, frame: Frame, off: int, length: int, end: int) -> None:
        """print-ip.c ipN_print: RAW links dispatch on the version nibble."""
        if length < 1:
            frame.out.append(f"truncated-ip {length}")
            return
        version = frame.buf[off] >> 4 if off < end else -1
        if version == 4:
            self.print_ip(frame, off, length, end)
        elif version == 6:
            self.print_ip6(frame, off, length, end)
        else:
            frame.out.append(f"unknown ip {version}")

    def addr(self, packed: bytes) -> str:
        return self.names.ip(packed)

    def print_ip(self, frame: Frame, off: int, length: int, end: int) -> None:
        """print-ip.c ip_print."""
        out = frame.out
        buf = frame.buf
        frame.proto = "ip"
        if off >= end:
            raise Cut("ip")
        version = buf[off] >> 4
        if version != 4:
            out.append("IP6, wrong link-layer encapsulation" if version == 6 else f"IP{version}")
            out.append(" (invalid)")
            return
        if not self.opts.e:
            out.append("IP ")
        try:
            ip = parse_ipv4(buf, off, end)
        except Truncated:  # ND_TCHECK_SIZE: a plain [|ip], not tcpdump's longjmp
            out.append(" [|ip]")
            return
        if length < 20:
            out.append(f"truncated-ip {length}")
            return
        hlen = ip.hdr_len
        if hlen < 20:
            out.append(f"bad-hlen {hlen}")
            return
        total = ip.total_len
        if length < total:
            out.append(f"truncated-ip - {total - length} bytes missing! ")
        if total < hlen:
            out.append(f"bad-len {total}")
            return
        end = min(end, off + total)
        payload_len = total - hlen
        frag = ip.flags_frag
        if self.opts.v:
            self._ip_verbose(frame, ip, end)
            if frame.proto == "ip-options-truncated":
                frame.proto = "ip"
                out.append(f"{self.addr(ip.src)} > {self.addr(ip.dst)}:  [|ip]")
                return
        if frag & 0x1FFF == 0:
            nh = ip.proto
            if nh not in (6, 17, 132, 33):
                out.append(f"{self.addr(ip.src)} > {self.addr(ip.dst)}: ")
            if off + hlen > end:
                out.append(f" [remaining caplen({max(end - off, 0)}) < header length({hlen})]")
                raise Cut(frame.proto)
            self._demux(frame, off + hlen, payload_len, end, nh, ip, bool(frag & FLAG_MF))
        else:
            out.append(f"{self.addr(ip.src)} > {self.addr(ip.dst)}: {self._proto_name(ip.proto)}")

    def _ip_verbose(self, frame: Frame, ip: IPv4Header, end: int) -> None:
        out = frame.out
        tos = ip.tos
        parts = [f"(tos 0x{tos:x}", ("", ",ECT(1)", ",ECT(0)", ",CE")[tos & 3]]
        if ip.ttl >= 1:
            parts.append(f", ttl {ip.ttl}")
        frag = ip.flags_frag
        flags = ", ".join(
            name for bit, name in ((FLAG_MF, "+"), (FLAG_DF, "DF"), (FLAG_RESERVED, "rsvd"))
            if frag & bit
        ) or "none"
        parts.append(
            f", id {ip.ident}, offset {(frag & 0x1FFF) * 8}, flags [{flags}], "
            f"proto {IPPROTO_NAMES.get(ip.proto, 'unknown')} ({ip.proto}), "
            f"length {ip.total_len}"
        )
        out.append("".join(parts))
        hlen = ip.hdr_len
        if hlen > 20:
            out.append(", options (")
            if not self._ip_options(frame, ip.offset + 20, hlen - 20, end):
                out.append(" [truncated-option]")
                frame.proto = "ip-options-truncated"
            out.append(")")
        if not self.opts.K and ip.offset + hlen <= end:
            computed = verify(frame.buf[ip.offset : ip.offset + hlen])
            if computed != 0:
                out.append(f", bad cksum {ip.checksum:x} (->{should_be(ip.checksum, computed):x})!")
        out.append(")\n    ")

    def _ip_options(self, frame: Frame, off: int, length: int, end: int) -> bool:
        """print-ip.c ip_optprint; False when an option's data runs past the capture."""
        out = frame.out
        options = parse_ip_options(frame.buf, off, off + length, end)
        sep = ""
        for option in options.items:
            out.append(sep)
            sep = ","
            out.append(_ip_option_name(option.code))
            value = option.value
            if option.code == ipopt.TIMESTAMP:
                if isinstance(value, ipopt.Timestamp):
                    self._ip_timestamps(frame, value, len(option.data) + 2)
                else:
                    out.append(f"[bad length {option.length}]")
            elif option.code in (ipopt.RR, ipopt.LSRR, ipopt.SSRR):
                if isinstance(value, ipopt.Route):
                    self._ip_route(frame, value, len(option.data) + 2)
                else:
                    out.append(f" [bad length {option.length}]")
            elif option.code == ipopt.RA:
                if not isinstance(value, ipopt.RouterAlert):
                    out.append(f" [bad length {option.length}]")
                elif value.value:
                    out.append(f" value {value.value}")
        if options.problem is None:
            return True
        out.append(sep)
        broken = options.broken
        if broken is None:  # the capture ends before an option's type byte
            raise Cut("ip")
        out.append(_ip_option_name(broken.code))
        if options.problem == ipopt.CUT:
            raise Cut("ip")
        if options.problem == ipopt.BAD:
            out.append(f" [bad length {broken.length}]")
            return True
        return False

    def _ip_route(self, frame: Frame, route: ipopt.Route, opt_len: int) -> None:
        """RR, LSRR, SSRR (RFC 791 §3.1): the addresses, a comma after those recorded."""
        out = frame.out
        if route.ragged:
            out.append(f" [bad length {opt_len}]")
        ptr = (route.pointer - 1) & 0xFFFFFFFF  # unsigned in tcpdump: pointer 0 wraps
        if ptr < 3 or ((ptr + 1) & 3) or ptr > opt_len + 1:
            out.append(f" [bad ptr {route.pointer}]")
        for i, address in enumerate(route.addresses):
            out.append(f" {self.addr(address)}")
            if ptr > 3 + 4 * i:
                out.append(",")
        if route.ragged:
            raise Cut("ip")

    def _ip_timestamps(self, frame: Frame, ts: ipopt.Timestamp, opt_len: int) -> None:
        """The Internet Timestamp option (RFC 791 §3.1), as print-ip.c ip_printts shows it."""
        out = frame.out
        out.append(" TS{")
        size = ts.entry_len
        if ts.ragged:
            out.append(f"[bad length {opt_len}]")
        ptr = (ts.pointer - 1) & 0xFFFFFFFF
        if ptr < 4 or ((ptr - 4) & (size - 1)) or ptr > opt_len + 1:
            out.append(f"[bad ptr {ts.pointer}]")
        pos = 0
        if ts.flag in TIMESTAMP_KINDS:
            out.append(TIMESTAMP_KINDS[ts.flag])
            mark = " "
            pos = 4
            for entry in ts.entries:
                if ptr == pos:
                    mark = " ^ "
                where = "" if entry.address is None else self.addr(entry.address)
                out.append(f"{mark}{entry.stamp}@{where}")
                mark = " "
                pos += size
            if ts.ragged:
                raise Cut("ip")
        else:
            out.append(f"[bad ts type {ts.flag}]")
        out.append(" ^ " if ptr == pos else "")
        if ts.overflow:
            out.append(f" [{ts.overflow} hops not recorded]}} ")
        else:
            out.append("}")

    def print_ip6(self, frame: Frame, off: int, length: int, end: int) -> None:
        """print-ip6.c ip6_print, with the extension headers tcpdump walks."""
        out = frame.out
        buf = frame.buf
        frame.proto = "ip6"
        try:
            ip6 = parse_ipv6(buf, off, end)
        except Truncated:  # ND_TCHECK_SIZE: a plain [|ip6], not tcpdump's longjmp
            out.append(" [|ip6]")
            return
        if length < 40:
            out.append(f"truncated-ip6 {length}")
            return
        if not self.opts.e:
            out.append("IP6 ")
        if ip6.version != 6:
            out.append(f"version error: {ip6.version} != 6")
            return
        plen = ip6.payload_len
        if plen:
            total = plen + 40
            if length < total:
                out.append(f"truncated-ip6 - {total - length} bytes missing!")
        else:
            total = length + 40
        nh = ip6.next_header
        if self.opts.v:
            parts = ["("]
            if ip6.traffic_class:
                parts.append(f"class 0x{ip6.traffic_class:02x}, ")
            if ip6.flow_label:
                parts.append(f"flowlabel 0x{ip6.flow_label:05x}, ")
            parts.append(f"hlim {ip6.hop_limit}, next-header "
                         f"{IPPROTO_NAMES.get(nh, 'unknown')} ({nh}) payload length: {plen}) ")
            out.append("".join(parts))
        end = min(end, off + total)
        remaining = total
        pos = off
        advance = 40
        fragmented = False
        first = True
        seen_ext = False
        previous = 255
        found_hbh = False
        jumbo = [0, 0]  # [jumbo payload length, found]
        while pos < end and advance > 0:
            if remaining < advance:
                out.append(" [|ip6]")
                return
            pos += advance
            remaining -= advance
            if first and nh not in (6, 17, 33, 132):
                out.append(f"{self.addr(ip6.src)} > {self.addr(ip6.dst)}: ")
            first = False
            if nh in (ip6mod.HOPOPTS, ip6mod.DSTOPTS):
                # print-ip6.c checks a second Hop-by-Hop header before its position.
                if nh == ip6mod.HOPOPTS and found_hbh:
                    out.append("[The Hop-by-Hop Options header was already found] (invalid)")
                    return
                if nh == ip6mod.HOPOPTS and previous != 255:
                    out.append("[The Hop-by-Hop Options header don't follow the IPv6 header]"
                               " (invalid)")
                    return
                advance = self._ip6_opts(frame, pos, end, nh,
                                         jumbo if nh == ip6mod.HOPOPTS else None)
                if nh == ip6mod.HOPOPTS and plen == 0 and not jumbo[1]:
                    out.append("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)")
                    return
                if advance < 0:
                    return
                found_hbh = found_hbh or nh == ip6mod.HOPOPTS
            elif nh == ip6mod.FRAGMENT:
                advance = self._frag6(frame, pos, end, ip6)
                if advance < 0 or end <= pos + advance:
                    return
                fragmented = True
            elif nh == ip6mod.ROUTING:
                if pos >= end:
                    raise Cut("ip6")
                advance = self._rt6(frame, pos, end)
                if advance < 0:
                    return
            elif nh in (ip6mod.MOBILITY, ip6mod.MOBILITY_OLD):
                out.append("mobility")
                return
            else:
                if jumbo[0]:
                    total = jumbo[0] + 40
                    if total < pos - off:
                        out.append(" [|ip6]")
                        return
                    if length < total:
                        out.append(f"truncated-ip6 - {total - length} bytes missing!")
                    end = min(len(buf), off + total)
                    remaining = total - (pos - off)
                elif plen == 0:
                    if seen_ext:
                        out.append(" [|ip6]")
                        return
                    remaining = 0
                    end = min(end, off + 40)
                self._demux(frame, pos, remaining, end, nh, ip6, fragmented)
                return
            seen_ext = True
            previous = nh
            nh = buf[pos]
            frame.proto = "ip6"

    def _ip6_opts(self, frame: Frame, pos: int, end: int, kind: int,
                  jumbo: list[int] | None) -> int:
        """print-ip6opts.c hbhopt_process/dstopt_process: the header length, or -1."""
        buf = frame.buf
        out = frame.out
        frame.proto = "hbhopt" if kind == ip6mod.HOPOPTS else "dstopt"
        if pos + 2 > end:
            raise Cut(frame.proto)
        hlen = (buf[pos + 1] + 1) * 8
        if pos + hlen > end:
            out.append(f" [|{frame.proto}]")
            return -1
        out.append("HBH " if kind == ip6mod.HOPOPTS else "DSTOPT ")
        if (kind == ip6mod.HOPOPTS or self.opts.v) and not self._ip6_option_list(
            frame, pos + 2, pos + hlen, jumbo
        ):
            out.append(f" [|{frame.proto}]")
            return -1
        return hlen

    def _ip6_option_list(self, frame: Frame, start: int, end: int,
                         jumbo: list[int] | None) -> bool:
        """print-ip6opts.c ip6_opt_process; *jumbo* holds [payload length, found] for HBH."""
        out = frame.out
        v = self.opts.v
        if start == end:
            return True
        options = parse_tlv_options(frame.buf, start, end)
        for option in options.items:
            kind = option.kind
            left = end - option.offset
            data = option.data
            if kind == ip6mod.PAD1:
                if v:
                    out.append("(pad1)")
            elif kind == ip6mod.PADN:
                if v:
                    out.append("(padn)")
            elif kind == ip6mod.ROUTER_ALERT:
                if left < 4:
                    out.append("(rtalert: trunc)")
                    return False
                if len(data) != 2:
                    out.append(f"(rtalert: invalid len {len(data)})")
                    return False
                if v:
                    out.append(f"(rtalert: 0x{_U16.unpack(data)[0]:04x}) ")
            elif kind == ip6mod.JUMBO:
                if left < 6:
                    out.append("(jumbo: trunc)")
                    return False
                if len(data) != 4:
                    out.append(f"(jumbo: invalid len {len(data)})")
                    return False
                value = _U32.unpack(data)[0]
                if jumbo is None:
                    note = " - not a hop-by-hop option"
                elif jumbo[1]:
                    note = " - already seen"
                elif jumbo[0] != 0:
                    note = " - payload len != 0"
                elif value < 65536:
                    note = " - < 65536"
                else:
                    note = ""
                    jumbo[0] = value
                if jumbo is not None:
                    jumbo[1] = 1
                if v:
                    out.append(f"(jumbo: {value}{note}) ")
            elif kind == ip6mod.HOME_ADDRESS:
                if left < 18:
                    out.append("(homeaddr: trunc)")
                    return False
                if len(data) < 16:
                    out.append(f"(homeaddr: invalid len {len(data)})")
                    return False
                if v:
                    out.append(f"(homeaddr: {self.addr(data[:16])}")
                    sub_start = option.offset + 18
                    if len(data) > 16 and not self._ip6_sub_options(
                            frame, sub_start, sub_start + len(data) - 16):
                        return False
                    out.append(")")
            elif v:
                out.append(f"(opt_type 0x{kind:02x}: len={len(data)})")
        if options.broken is not None:
            return False
        if v:
            out.append(" ")
        return True

    def _ip6_sub_options(self, frame: Frame, start: int, end: int) -> bool:
        """print-ip6opts.c ip6_sopt_print (sub-options of the Home Address option)."""
        out = frame.out
        options = parse_tlv_options(frame.buf, start, end)
        for option in options.items:
            if option.kind == ip6mod.PAD1:
                out.append(", pad1")
            elif option.kind == ip6mod.PADN:
                out.append(", padn")
            else:
                out.append(f", sopt_type 0x{option.kind:02x}: len={len(option.data)}")
        return options.broken is None

    def _frag6(self, frame: Frame, pos: int, end: int, ip6: IPv6Header) -> int:
        """print-frag6.c: the length tcpdump prints is computed in size_t, so it wraps."""
        out = frame.out
        frame.proto = "frag6"
        try:
            frag = parse_fragment(frame.buf, pos, end)
        except Truncated:
            raise Cut("frag6") from None
        body = (40 + ip6.payload_len - (pos - ip6.offset) - 8) % (1 << 64)
        if self.opts.v:
            out.append(f"frag (0x{frag.ident:08x}:{frag.frag_offset}|{body})")
        else:
            out.append(f"frag ({frag.frag_offset}|{body})")
        if frag.frag_offset:
            return -1  # a non-first fragment: nothing more to decode
        out.append(" ")
        return 8

    def _rt6(self, frame: Frame, pos: int, end: int) -> int:
        """print-rt6.c: type 0 and 2 (addresses) and 4 (segment routing)."""
        out = frame.out
        frame.proto = "rt6"
        rt = parse_routing(frame.buf, pos, end)
        out.append("RT6")
        if rt.length8 is None:
            raise Cut("rt6")
        out.append(f" (len={rt.length8}")
        if rt.routing_type is None:
            raise Cut("rt6")
        rtype = rt.routing_type
        out.append(f", type={rtype}")
        if rtype == 0:
            out.append(" [Deprecated]")
        if rt.segments_left is None:
            raise Cut("rt6")
        out.append(f", segleft={rt.segments_left}")
        data = rt.type_data
        if rtype in (0, 2):
            if len(data) < 4:
                raise Cut("rt6")
            reserved = _U32.unpack(data)[0]
            if reserved or self.opts.v:
                out.append(f", rsv=0x{reserved:x}")
        elif rtype == 4:
            if len(data) < 1:
                raise Cut("rt6")
            out.append(f", last-entry={data[0]}")
            if len(data) < 2:
                raise Cut("rt6")
            if data[1] or self.opts.v:
                out.append(f", flags=0x{data[1]:x}")
            if len(data) < 4:
                raise Cut("rt6")
            out.append(f", tag={_U16.unpack_from(data, 2)[0]:x}")
        else:
            out.append(" (unknown type) (invalid)")
            return -1
        if rt.length8 % 2:
            out.append(f" (invalid length {rt.length8}) (invalid)")
            return -1
        for i in range(rt.length8 // 2):
            if i >= len(rt.addresses):
                raise Cut("rt6")
            out.append(f", [{i}]{self.addr(rt.addresses[i])}")
        out.append(") ")
        return (rt.length8 + 1) * 8

    # ----- transport --------------------------------------------------------------------------
    def _demux(self, frame: Frame, off: int, length: int, end: int, nh: int,
               ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
        """print-ip-demux.c ip_demux_print."""
        out = frame.out
        is_v4 = isinstance(ip, IPv4Header)
        if nh == 6:
            self._tcp(frame, off, length, end, ip, fragmented)
        elif nh == 17:
            self._udp(frame, off, length, end, ip, fragmented)
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
            self.print_ip(frame, off, length, end)
        elif nh == 41:
            self.print_ip6(frame, off, length, end)
        elif nh == 59:
            out.append("no next header")
        else:
            out.append(f" {self._proto_name(nh)} {length}")

    def _proto_name(self, proto: int) -> str:
        name = None if self.opts.n else PROTOCOL_KEYWORDS.get(proto)
        return name or f"ip-proto-{proto}"

    def _endpoints(self, ip: IPv4Header | IPv6Header, proto: int, sport: str,
                   dport: str) -> str:
        inner = ip.proto if isinstance(ip, IPv4Header) else ip.next_header
        if inner == proto:
            return f"{self.addr(ip.src)}.{sport} > {self.addr(ip.dst)}.{dport}: "
        return f"{sport} > {dport}: "

    def _tcp(self, frame: Frame, off: int, length: int, end: int,
             ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
        """print-tcp.c tcp_print."""
        out = frame.out
        buf = frame.buf
        frame.proto = "tcp"
        if off + 20 > end:  # not the whole fixed header: print what there is
            if off + 4 > end:
                out.append(f"{self.addr(ip.src)} > {self.addr(ip.dst)}: [|tcp]")
                return
            sport, dport = _PORTS.unpack_from(buf, off)
            out.append(self._endpoints(ip, 6, self.names.tcp_port(sport),
                                       self.names.tcp_port(dport)))
            out.append(" [|tcp]")
            return
        tcp = parse_tcp(buf, off, end, with_options=False)  # print_options walks them
        out.append(self._endpoints(ip, 6, self.names.tcp_port(tcp.src_port),
                                   self.names.tcp_port(tcp.dst_port)))
        hlen = tcp.hdr_len
        if hlen < 20:
            out.append(f" tcp {length - hlen} [bad hdr length {hlen} - too short, < 20]")
            return
        flags = tcp.flags & 0xFF
        out.append(f"Flags [{FLAG_STRINGS[flags]}]")
        seq = tcp.seq
        ack = tcp.ack
        thseq = thack = 0
        rev = False
        if not self.opts.S and flags & ACK:
            seq, ack, thseq, thack, rev = relative_numbers(
                self._isn, ip.src, ip.dst, tcp.src_port, tcp.dst_port, seq, ack, flags)
        if hlen > length:
            out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        if self.opts.v and not self.opts.K and not fragmented and off + length <= end:
            initial = pseudo_sum(ip.src, self.final_dst(frame, ip), 6, length)
            computed = verify(buf[off : off + length], initial)
            out.append(f", cksum 0x{tcp.checksum:04x}")
            if computed:
                out.append(f" (incorrect -> 0x{should_be(tcp.checksum, computed):04x})")
            else:
                out.append(" (correct)")
        data_len = length - hlen
        if self.opts.v > 1 or data_len > 0 or flags & (SYN | FIN | RST):
            out.append(f", seq {seq}")
            if data_len > 0:
                out.append(f":{(seq + data_len) & 0xFFFFFFFF}")
        if flags & ACK:
            out.append(f", ack {ack}")
        out.append(f", win {tcp.window}")
        if flags & URG:
            out.append(f", urg {tcp.urgent}")
        if hlen > 20 and not print_options(out, buf, off + 20, hlen - 20, end, flags,
                                           thseq if rev else thack, self.addr):
            return
        out.append(f", length {data_len}")
        if data_len == 0:
            return
        if off + hlen > end:
            out.append(f" [remaining caplen({max(end - off, 0)}) < header length({hlen})]")
            raise Cut("tcp")
        if flags & RST and self.opts.v:
            payload = buf[off + hlen : min(end, off + hlen + data_len)]
            out.append(" [RST" if off + hlen + data_len <= end else " [!RST")
            if data_len > MAX_RST_DATA_LEN:
                payload = payload[:MAX_RST_DATA_LEN]
                out.append("+")
            out.append(" " + _printable(payload) + "]")

    def final_dst(self, frame: Frame, ip: IPv4Header | IPv6Header) -> bytes:
        """The destination for the pseudo-header: the last address of a routing header."""
        buf = frame.buf
        if isinstance(ip, IPv4Header):
            if ip.hdr_len <= 20:  # no options: nothing to walk
                return ip.dst
            options = parse_ip_options(buf, ip.offset + 20, ip.offset + ip.hdr_len)
            return ipopt.source_route_destination(options) or ip.dst
        pos = ip.offset + 40
        nh = ip.next_header
        dst = ip.dst
        for _ in range(16):  # bounded: a chain longer than this is not followed
            if nh in (ip6mod.HOPOPTS, ip6mod.DSTOPTS, ip6mod.MOBILITY, ip6mod.MOBILITY_OLD):
                if pos + 2 > len(buf):
                    break
                nh, pos = buf[pos], pos + (buf[pos + 1] + 1) * 8
            elif nh == ip6mod.FRAGMENT:
                if pos + 1 > len(buf):
                    break
                nh, pos = buf[pos], pos + 8
            elif nh == ip6mod.ROUTING:
                rt = parse_routing(buf, pos, len(buf))
                if rt.length8 is None or rt.segments_left is None or rt.length8 % 2:
                    break
                whole = len(rt.addresses) == rt.length8 // 2  # all captured
                if rt.routing_type in (0, 2) and rt.addresses and whole:
                    dst = rt.addresses[-1]
                elif rt.routing_type == 4 and rt.addresses:
                    dst = rt.addresses[0]
                elif rt.routing_type == 4 and rt.length8 == 0 and pos + 24 <= len(buf):
                    # WARNING: print-ip6.c ip6_finddst reads a type 4 header's first
                    # segment whatever its length says: with length 0 that is past it.
                    dst = buf[pos + 8 : pos + 24]
                break
            else:
                break
        return dst

    def _udp(self, frame: Frame, off: int, length: int, end: int,
             ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
        """print-udp.c udp_print (no application-layer decoding)."""
        out = frame.out
        buf = frame.buf
        frame.proto = "udp"
        names = self.names
        if off + 4 > end:
            inner = ip.proto if isinstance(ip, IPv4Header) else ip.next_header
            if inner == 17:
                out.append(f"{self.addr(ip.src)} > {self.addr(ip.dst)}: ")
            out.append(" [|udp]")
            return
        sport = int.from_bytes(buf[off : off + 2], "big")
        dport = int.from_bytes(buf[off + 2 : off + 4], "big")
        endpoints = self._endpoints(ip, 17, names.udp_port(sport), names.udp_port(dport))
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
        if self.opts.v and not self.opts.K and not fragmented:
            udp = parse_udp(buf, off)
            is_v4 = isinstance(ip, IPv4Header)
            if is_v4 and self.opts.v > 1:
                if udp.checksum == 0:
                    out.append("[no cksum] ")
                elif off + 8 + length <= end:
                    self._udp_cksum(frame, off, length, ip, udp.checksum)
            elif not is_v4 and off + 8 + length <= end:
                self._udp_cksum(frame, off, length, ip, udp.checksum)
        if ulen > length and not fragmented:
            out.append(f"UDP, bad length {ulen} > {length}")
        else:
            out.append(f"UDP, length {ulen}")

    def _udp_cksum(self, frame: Frame, off: int, length: int,
                   ip: IPv4Header | IPv6Header, field: int) -> None:
        total = length + 8
        initial = pseudo_sum(ip.src, self.final_dst(frame, ip), 17, total)
        computed = verify(frame.buf[off : off + total], initial)
        if computed:
            right = should_be(field, computed)
            frame.out.append(f"[bad udp cksum 0x{field:04x} -> 0x{right:04x}!] ")
        else:
            frame.out.append("[udp sum ok] ")


_PORTS: Final = struct.Struct("!HH")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")


def _ip_option_name(code: int) -> str:
    return IP_OPTION_NAMES.get(code) or f"unknown {code}"


def _vlan(tci: int) -> str:
    text = f"vlan {tci & 0xFFF}, p {tci >> 13}"
    if tci & 0x1000:
        text += ", DEI"
    return text


def _printable(data: bytes) -> str:
    """Payload bytes as tcpdump's fn_print_char shows them: never raw control characters."""
    chars = []
    for b in data:
        if b & 0x80:
            chars.append("M-")
            b &= 0x7F
        if b < 0x20 or b == 0x7F:
            chars.append("^" + chr(b ^ 0x40))
        else:
            chars.append(chr(b))
    return "".join(chars)
