"""ICMPv6 (RFC 4443) as tcpdump 4.99's print-icmp6.c prints it.

tcpdump reads a message field by field and stops wherever the capture ends, so this
printer reads through ``_Msg``, a bounds-checked view of the packet, rather than through
a decoded record: a read past the end raises ``Cut`` (tcpdump's GET_ macros jump out and
the top prints `` [|icmp6]``), and the places where print-icmp6.c checks first and prints
`` [|icmp6]`` itself (``goto trunc``) return ``m.trunc()``.

Every type printer returns True when the common tail applies (without -v, tcpdump ends
the line with ``, length N``) and False when print-icmp6.c returned early.  The quoted
packet of an error message is not printed: tcpdump 4.99 prints only the fields it names
(the destination, the port of a port unreachable).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from capdissect.dissect import icmp6 as icmp6mod
from capdissect.dissect.checksum import pseudo_sum, should_be, verify
from capdissect.dissect.ipv6 import IPv6Header
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.hexdump import hex_only, printable

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context
from capdissect.report.tcpdump.ip import final_dst

PROTO: Final = "icmp6"  # tcpdump's ndo_protocol for the whole message
IPPROTO_ICMPV6: Final = 58

# print-icmp6.c icmp6_type_values; others print as "unknown icmp6 type (N)".
TYPE_NAMES: Final[Mapping[int, str]] = {
    1: "destination unreachable", 2: "packet too big", 3: "time exceeded in-transit",
    4: "parameter problem", 128: "echo request", 129: "echo reply",
    130: "multicast listener query", 131: "multicast listener report",
    132: "multicast listener done", 133: "router solicitation", 134: "router advertisement",
    135: "neighbor solicitation", 136: "neighbor advertisement", 137: "redirect",
    138: "router renumbering", 141: "inverse neighbor solicitation",
    142: "inverse neighbor advertisement", 143: "multicast listener report v2",
    144: "ha discovery request", 145: "ha discovery reply",
    146: "mobile router solicitation", 147: "mobile router advertisement",
    # 139/140 are listed twice in tcpdump's table; tok2str finds the first names.
    139: "who-are-you request", 140: "who-are-you reply",
    201: "mtrace message", 200: "mtrace response", 155: "RPL",
}
# Types whose -v output puts the length right after the name ("display cosmetics").
LENGTH_FIRST: Final = frozenset({133, 134, 136, 135, 137, 145, 147})

UNREACH_CODES: Final[Mapping[int, str]] = {
    0: "unreachable route",
    1: " unreachable prohibited",  # sic: tcpdump's table has the leading space
    2: "beyond scope", 3: "unreachable address", 4: "unreachable port",
}
PARAM_PROB_CODES: Final[Mapping[int, str]] = {
    0: "erroneous", 1: "next header", 2: "option", 3: "incomplete header chain",
}
RA_FLAGS: Final = ((0x80, "managed"), (0x40, "other stateful"), (0x20, "home agent"),
                   (0x02, "ipv6 only"))
NA_FLAGS: Final = ((0x80000000, "router"), (0x40000000, "solicited"),
                   (0x20000000, "override"))
PREFIX_FLAGS: Final = ((0x80, "onlink"), (0x40, "auto"), (0x20, "router"))
ROUTER_PREFERENCE: Final = ("medium", "high", "rsv", "low")  # RFC 4191 §2.1, bits 3-4
ND_OPTION_NAMES: Final[Mapping[int, str]] = {
    1: "source link-address", 2: "destination link-address", 3: "prefix info",
    4: "redirected header", 5: "mtu", 25: "rdnss", 31: "dnssl",
    7: "advertisement interval", 8: "homeagent information", 24: "route info",
}
MLDV2_RECORD_TYPES: Final[Mapping[int, str]] = {  # RFC 3810 §5.2.12
    1: "is_in", 2: "is_ex", 3: "to_in", 4: "to_ex", 5: "allow", 6: "block",
}
RR_CODES: Final[Mapping[int, str]] = {  # RFC 2894 §3.1
    0: ", command", 1: ", result", 255: ", sequence number reset",
}
RR_FLAGS: Final = ((0x80, "T"), (0x40, "R"), (0x20, "A"), (0x10, "S"), (0x08, "P"))
RR_MATCH_CODES: Final[Mapping[int, str]] = {1: "add", 2: "change", 3: "setglobal"}
# RFC 4620 §6.1 node addresses flags, in tcpdump's printing order.
NI_ADDR_FLAGS: Final = ((0x0040, "a"), (0x0020, "G"), (0x0010, "S"), (0x0008, "L"),
                        (0x0004, "C"), (0x0002, "A"))
NI_TRUNCATE: Final = 0x0001
RPL_MOPS: Final[Mapping[int, str]] = {  # RFC 6550 §6.3.1
    0: "nonstoring", 1: "storing", 2: "nonstoring-multicast", 3: "storing-multicast",
}
RPL_OPTION_NAMES: Final[Mapping[int, str]] = {
    0: "pad1", 1: "padN", 2: "metrics", 3: "routinginfo", 4: "config", 5: "rpltarget",
    6: "transitinfo", 8: "destprefix", 9: "rpltargetdesc",
}
INFINITY: Final = 0xFFFFFFFF
MAX_DNAME: Final = 255  # nameser.h MAXCDNAME, where fqdn_print stops printing labels


class _Msg:
    """One ICMPv6 message being printed: the bytes up to tcpdump's snapend, the output."""

    __slots__ = ("buf", "code", "end", "length", "off", "out", "pr", "v")

    def __init__(self, pr: Context, frame: Frame, off: int, length: int,
                 end: int) -> None:
        self.pr = pr
        self.out = frame.out
        self.buf = frame.buf
        self.off = off
        self.length = length
        self.end = min(end, len(frame.buf))
        self.v = pr.opts.v
        self.code = 0

    def has(self, pos: int, n: int) -> bool:
        """ND_TTEST_LEN: are the *n* bytes at *pos* captured?"""
        return pos + n <= self.end

    def need(self, pos: int, n: int) -> None:
        """What a GET_ macro does first: jump out (``Cut``) unless the bytes are there."""
        if pos + n > self.end:
            raise Cut(PROTO)

    def u8(self, pos: int) -> int:
        self.need(pos, 1)
        return self.buf[pos]

    def u16(self, pos: int) -> int:
        self.need(pos, 2)
        return int.from_bytes(self.buf[pos : pos + 2], "big")

    def u32(self, pos: int) -> int:
        self.need(pos, 4)
        return int.from_bytes(self.buf[pos : pos + 4], "big")

    def addr(self, pos: int) -> str:
        """GET_IP6ADDR_STRING: the address at *pos*, named unless -n."""
        self.need(pos, 16)
        return self.pr.addr(self.buf[pos : pos + 16])

    def trunc(self) -> bool:
        """nd_print_trunc and return: the message ends here, without the length tail."""
        self.out.append(f" [|{PROTO}]")
        return False

    def unknown_data(self, pos: int, indent: str, n: int) -> str:
        """util-print.c print_unknown_data: a hex dump, cut short at the capture's end."""
        if pos > self.end:
            return (f"{indent}Dissector error: print_unknown_data called with pointer past "
                    "end of packet")
        return hex_only(self.buf[pos : pos + min(n, self.end - pos)], indent)


# ----- entry point ------------------------------------------------------------------------
def print_icmp6(pr: Context, frame: Frame, off: int, length: int, end: int,
                ip: IPv6Header, fragmented: bool) -> None:
    """print-icmp6.c icmp6_print: *length* bytes of ICMPv6 at *off*, data up to *end*."""
    frame.proto = PROTO
    out = frame.out
    if length == 0:
        out.append("ICMP6, length 0 (invalid)")
        return
    m = _Msg(pr, frame, off, length, end)
    if m.v and not fragmented and m.has(off, length):
        out.append(_checksum_note(m, frame, ip))
    kind = m.u8(off)
    out.append("ICMP6, " + TYPE_NAMES.get(kind, f"unknown icmp6 type ({kind})"))
    if m.v and kind in LENGTH_FIRST:
        out.append(f", length {length}")
    m.code = m.u8(off + 1)
    if _TYPE_PRINTERS.get(kind, _unknown_type)(m) and not m.v:
        out.append(f", length {length}")


def _checksum_note(m: _Msg, frame: Frame, ip: IPv6Header) -> str:
    """-v verifies the checksum over the pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1)."""
    field = m.u16(m.off + 2)
    initial = pseudo_sum(ip.src, final_dst(frame, ip), IPPROTO_ICMPV6, m.length)
    computed = verify(m.buf[m.off : m.off + m.length], initial)
    if computed:
        return f"[bad icmp6 cksum 0x{field:04x} -> 0x{should_be(field, computed):04x}!] "
    return "[icmp6 sum ok] "


def _unknown_type(m: _Msg) -> bool:
    m.out.append(f", length {m.length}")
    if m.v <= 1:
        m.out.append(m.unknown_data(m.off, "\n\t", m.length))
    return False


# ----- error messages (RFC 4443 §3) ---------------------------------------------------------
def _dst_unreach(m: _Msg) -> bool:
    code = m.code
    out = m.out
    quoted = m.off + icmp6mod.HEADER_LEN
    out.append(", " + UNREACH_CODES.get(code, f"unknown unreach code ({code})"))
    if code in (icmp6mod.UNREACH_NO_ROUTE, icmp6mod.UNREACH_ADMIN, icmp6mod.UNREACH_ADDRESS):
        out.append(" " + m.addr(quoted + 24))
    elif code == icmp6mod.UNREACH_BEYOND_SCOPE:
        dst, src = m.addr(quoted + 24), m.addr(quoted + 8)
        out.append(f" {dst}, source address {src}")
    elif code == icmp6mod.UNREACH_PORT:
        upper = icmp6mod.upper_layer(m.buf, quoted, m.end)
        if upper is None:
            return m.trunc()
        port = m.u16(upper.offset + 2)
        dst = m.addr(quoted + 24)
        names = m.pr.names
        if upper.proto == icmp6mod.TCP:
            out.append(f", {dst} tcp port {names.tcp_port(port)}")
        else:
            out.append(f", {dst} udp port {names.udp_port(port)}")
    elif m.v <= 1:
        out.append(m.unknown_data(m.off, "\n\t", m.length))
        return False
    return True


def _packet_too_big(m: _Msg) -> bool:
    m.out.append(f", mtu {m.u32(m.off + 4)}")
    return True


def _time_exceeded(m: _Msg) -> bool:
    if m.code == 0:
        m.out.append(" for " + m.addr(m.off + icmp6mod.HEADER_LEN + 24))
    elif m.code == 1:
        m.out.append(" (reassembly)")
    else:
        m.out.append(f", unknown code ({m.code})")
    return True


def _param_prob(m: _Msg) -> bool:
    if not m.has(m.off + icmp6mod.HEADER_LEN + 24, 16):  # the quoted destination
        return m.trunc()
    name = PARAM_PROB_CODES.get(m.code)
    if name is None:
        m.out.append(f", code-#{m.code}")
    else:
        m.out.append(f", {name} - octet {m.u32(m.off + 4)}")
    return True


# ----- informational messages ---------------------------------------------------------------
def _echo(m: _Msg) -> bool:
    ident, seq = m.u16(m.off + 4), m.u16(m.off + 6)
    m.out.append(f", id {ident}, seq {seq}")
    return True


def _no_body(m: _Msg) -> bool:
    """Inverse neighbor discovery (RFC 3122): tcpdump prints nothing more."""
    return True


def _id_only(m: _Msg) -> bool:
    """Home agent discovery request, mobile prefix solicitation (RFC 6275 §6.5, §6.7)."""
    m.out.append(f", id 0x{m.u16(m.off + 4):04x}")
    return True


def _ha_reply(m: _Msg) -> bool:
    """RFC 6275 §6.6: the home agent addresses, at -v."""
    if m.v:
        m.out.append(f", id 0x{m.u16(m.off + 4):04x}")
        for pos in range(m.off + 8, m.off + m.length, 16):
            m.out.append(", " + m.addr(pos))
    return True


def _mobile_prefix_advert(m: _Msg) -> bool:
    """RFC 6275 §6.8: id, the M and O flags, then ND options, at -v."""
    if m.v:
        m.out.append(f", id 0x{m.u16(m.off + 4):04x}")
        flags = m.u16(m.off + 6)
        m.out.append((" " if flags & 0xC000 else "") + ("M" if flags & 0x8000 else "")
                     + ("O" if flags & 0x4000 else ""))
        if not _nd_options(m, m.off + 8, m.length - 8):
            return m.trunc()
    return True


# ----- neighbor discovery (RFC 4861 §4) -------------------------------------------------------
def _router_solicit(m: _Msg) -> bool:
    if m.v and not _nd_options(m, m.off + 8, m.length - 8):
        return m.trunc()
    return True


def _router_advert(m: _Msg) -> bool:
    if m.v:
        off = m.off
        hops, flags, lifetime = m.u8(off + 4), m.u8(off + 5), m.u16(off + 6)
        reachable, retrans = m.u32(off + 8), m.u32(off + 12)
        m.out.append(f"\n\thop limit {hops}, Flags [{_bits(RA_FLAGS, flags)}], pref "
                     f"{_router_preference(flags)}, router lifetime {lifetime}s, reachable "
                     f"time {reachable}ms, retrans timer {retrans}ms")
        if not _nd_options(m, off + 16, m.length - 16):
            return m.trunc()
    return True


def _neighbor_solicit(m: _Msg) -> bool:
    m.out.append(", who has " + m.addr(m.off + 8))
    if m.v and not _nd_options(m, m.off + 24, m.length - 24):
        return m.trunc()
    return True


def _neighbor_advert(m: _Msg) -> bool:
    m.out.append(", tgt is " + m.addr(m.off + 8))
    if m.v:
        m.out.append(f", Flags [{_bits(NA_FLAGS, m.u32(m.off + 4))}]")
        if not _nd_options(m, m.off + 24, m.length - 24):
            return m.trunc()
    return True


def _redirect(m: _Msg) -> bool:
    m.out.append(", " + m.addr(m.off + 24))  # the destination, then the better first hop
    m.out.append(" to " + m.addr(m.off + 8))
    if m.v and not _nd_options(m, m.off + 40, m.length - 40):
        return m.trunc()
    return True


def _nd_options(m: _Msg, start: int, resid: int) -> bool:
    """print-icmp6.c icmp6_opt_print; False where tcpdump gives up (`` [|icmp6]``).

    The walk is bounded by the captured data; *resid*, the bytes the message says are
    left, only stops it at an option boundary, as in tcpdump.
    """
    buf = m.buf
    out = m.out
    pos = start
    while pos < m.end:
        if not m.has(pos, 2):
            return False
        if resid <= 0:
            return True
        kind, units = buf[pos], buf[pos + 1]
        size = units * 8  # RFC 4861 §4.6: the length counts units of 8 octets
        if units == 0 or not m.has(pos, size):
            return False
        out.append(f"\n\t  {ND_OPTION_NAMES.get(kind, 'unknown')} option ({kind}), "
                   f"length {size} ({units}): ")
        printer = _ND_OPTION_PRINTERS.get(kind)
        if printer is None:
            if m.v <= 1:
                out.append(m.unknown_data(pos + 2, "\n\t  ", size - 2))
                return True
        elif not printer(m, pos, units, start):
            return False
        if m.v > 1:
            out.append(m.unknown_data(pos + 2, "\n\t    ", size - 2))
        pos += size
        resid -= size
    return True


def _opt_lladdr(m: _Msg, pos: int, units: int, start: int) -> bool:
    m.out.append(m.buf[pos + 2 : pos + units * 8].hex(":"))
    return True


def _opt_prefix(m: _Msg, pos: int, units: int, start: int) -> bool:
    """RFC 4861 §4.6.2."""
    prefix, plen, flags = m.addr(pos + 16), m.u8(pos + 2), m.u8(pos + 3)
    valid = m.u32(pos + 4)
    badlen = "" if units == 4 else "badlen"
    m.out.append(f"{prefix}/{plen}{badlen}, Flags [{_bits(PREFIX_FLAGS, flags)}], "
                 f"valid time {_lifetime(valid)}")
    m.out.append(f", pref. time {_lifetime(m.u32(pos + 8))}")
    return True


def _opt_redirected(m: _Msg, pos: int, units: int, start: int) -> bool:
    # tcpdump dumps from the first option, not from this one (print-icmp6.c passes bp).
    m.out.append(m.unknown_data(start, "\n\t    ", units * 8))
    return True


def _opt_mtu(m: _Msg, pos: int, units: int, start: int) -> bool:
    m.out.append(f" {m.u32(pos + 4)}{'' if units == 1 else 'bad option length'}")
    return True


def _opt_rdnss(m: _Msg, pos: int, units: int, start: int) -> bool:
    """RFC 8106 §5.1."""
    m.out.append(f" lifetime {m.u32(pos + 4)}s,")
    for i in range((units - 1) // 2):
        m.out.append(" addr: " + m.addr(pos + 8 + 16 * i))
    return True


def _opt_dnssl(m: _Msg, pos: int, units: int, start: int) -> bool:
    """RFC 8106 §5.2: DNS names in wire form; compression offsets count from *start*."""
    m.out.append(f" lifetime {m.u32(pos + 4)}s, domain(s):")
    name: int | None = pos + 8
    while name is not None and name < pos + units * 8 and m.u8(name) != 0:
        m.out.append(" ")
        name = _dns_name(m, name, start)
    return name is not None


def _opt_adv_interval(m: _Msg, pos: int, units: int, start: int) -> bool:
    m.out.append(f" {m.u32(pos + 4)}ms")  # RFC 6275 §7.3
    return True


def _opt_home_agent(m: _Msg, pos: int, units: int, start: int) -> bool:
    preference, lifetime = m.u16(pos + 4), m.u16(pos + 6)  # RFC 6275 §7.4
    m.out.append(f" preference {preference}, lifetime {lifetime}")
    return True


def _opt_route_info(m: _Msg, pos: int, units: int, start: int) -> bool:
    """RFC 4191 §2.3: the prefix is 0, 8 or 16 bytes long by the option length."""
    if not m.has(pos + 4, 4):
        return False
    if units not in (1, 2, 3):
        return False
    prefix_len = (units - 1) * 8
    m.need(pos + 8, prefix_len)
    prefix = m.buf[pos + 8 : pos + 8 + prefix_len].ljust(16, b"\0")
    m.out.append(f" {m.pr.addr(prefix)}/{m.u8(pos + 2)}")
    m.out.append(f", pref={_router_preference(m.u8(pos + 3))}")
    m.out.append(f", lifetime={_lifetime(m.u32(pos + 4))}")
    return True


_OptionPrinter = Callable[[_Msg, int, int, int], bool]
_ND_OPTION_PRINTERS: Final[Mapping[int, _OptionPrinter]] = {
    1: _opt_lladdr, 2: _opt_lladdr, 3: _opt_prefix, 4: _opt_redirected, 5: _opt_mtu,
    25: _opt_rdnss, 31: _opt_dnssl, 7: _opt_adv_interval, 8: _opt_home_agent,
    24: _opt_route_info,
}


# ----- multicast listener discovery (RFC 2710, RFC 3810) -------------------------------------
def _mld_query(m: _Msg) -> bool:
    """An MLDv1 query is 24 bytes, an MLDv2 one at least 28 (RFC 3810 §8.1)."""
    if m.length == 24:
        return _mld1(m)
    if m.length >= 28:
        m.out.append(" v2")
        return _mld2_query(m)
    m.out.append(f" unknown-version (len {m.length}) ")
    return True


def _mld1(m: _Msg) -> bool:
    """print-icmp6.c mld6_print: nothing at all unless the 24 bytes were captured."""
    if m.has(m.off, 24):
        m.out.append(f"max resp delay: {m.u16(m.off + 4)} ")
        m.out.append("addr: " + m.addr(m.off + 8))
    return True


def _mld2_query(m: _Msg) -> bool:
    off = m.off
    out = m.out
    code = m.u16(off + 4)  # RFC 3810 §5.1.3: exponential form from 32768 on
    delay = code if code < 32768 else ((code & 0x0FFF) | 0x1000) << (((code & 0x7000) >> 12) + 3)
    if m.v:
        out.append(f" [max resp delay={delay}]")
    out.append(" [gaddr " + m.addr(off + 8))
    if m.v:
        flags = m.u8(off + 24)
        if flags & 0x08:
            out.append(" sflag")
        if flags & 0x07:
            out.append(f" robustness={flags & 0x07}")
        qqic = m.u8(off + 25)  # RFC 3810 §5.1.9
        qqi = qqic if qqic < 128 else ((qqic & 0x0F) | 0x10) << (((qqic & 0x70) >> 4) + 3)
        out.append(f" qqi={qqi}")
    sources = m.u16(off + 26)
    if sources:
        if m.length < 28 + sources * 16:
            out.append(" [invalid number of sources]")
        elif m.v > 1:
            out.append(" {")
            for i in range(sources):
                out.append(" " + m.addr(off + 28 + 16 * i))
            out.append(" }")
        else:
            out.append(f", {sources} source(s)")
    out.append("]")
    return True


def _mld2_report(m: _Msg) -> bool:
    """RFC 3810 §5.2: group records, each with its sources, printed at -v."""
    out = m.out
    length = m.length
    if length < 8:
        out.append(f" [invalid len {length}]")
        return True
    groups = m.u16(m.off + 6)
    out.append(f", {groups} group record(s)")
    if not m.v:
        return True
    record = 8
    for _ in range(groups):
        if length < record + 20:
            out.append(" [invalid number of groups]")
            return True
        pos = m.off + record
        out.append(" [gaddr " + m.addr(pos + 4))
        kind = m.u8(pos)
        out.append(" " + MLDV2_RECORD_TYPES.get(kind, f" [v2-report-#{kind}]"))
        sources = m.u16(pos + 2)
        if length < record + 20 + sources * 16:
            out.append(f" [invalid number of sources {sources}]")
            return True
        if m.v == 1:
            out.append(f", {sources} source(s)")
        else:
            out.append(" {")
            for i in range(sources):
                out.append(" " + m.addr(pos + 20 + 16 * i))
            out.append(" }")
        record += 20 + sources * 16
        out.append("]")
    return True


# ----- router renumbering (RFC 2894) ----------------------------------------------------------
def _router_renumbering(m: _Msg) -> bool:
    off = m.off
    out = m.out
    if not m.has(off + 12, 4):
        m.trunc()  # icmp6_rrenum_print's own trunc: icmp6_print still adds the length
        return True
    code = m.code
    out.append(RR_CODES.get(code, f", code-#{code}"))
    out.append(f", seq={m.u32(off + 4)}")
    if m.v:
        flags = m.u8(off + 9)
        out.append("[")
        if flags:
            out.append("".join(letter for bit, letter in RR_FLAGS if flags & bit) + ",")
        out.append(f"seg={m.u8(off + 8)},")
        out.append(f"maxdelay={m.u16(off + 10)}")
        reserved = m.u32(off + 12)
        if reserved:
            out.append(f"rsvd=0x{reserved:x}")
        out.append("]")
    if code != 0:
        return True
    return _rr_command(m, off + 16)


def _rr_command(m: _Msg, match: int) -> bool:
    """RFC 2894 §3.1: one match-prefix part followed by its use-prefix parts."""
    out = m.out
    if not m.has(match + 8, 16):
        m.trunc()
        return True
    sep = "\n\t" if m.v > 1 else " "
    kind = m.u8(match)
    out.append(sep + "match(" + RR_MATCH_CODES.get(kind, f"#{kind}"))
    if m.v:
        out.append(f",ord={m.u8(match + 2)}")
        out.append(f",min={m.u8(match + 4)}")
        out.append(f",max={m.u8(match + 5)}")
    out.append(f",{_numeric6(m.buf, match + 8)}/{m.u8(match + 3)})")
    count = m.u8(match + 1) - 3  # the length is in 8-octet units: 3 for the match part
    if count < 0 or count % 4:
        m.trunc()
        return True
    use = match + 24
    for _ in range(count // 4):
        if not m.has(use + 16, 16):
            m.trunc()
            return True
        out.append(sep + "use(")
        flags = m.u8(use + 12)
        if flags:
            # print-icmp6.c tests the first flags byte against htonl() constants, which on
            # a little-endian host are 0x80 (V, RFC 2894 §3.1.1) and 0x40 (P).
            out.append(("V" if flags & 0x80 else "") + ("P" if flags & 0x40 else "") + ",")
        if m.v:
            out.append(f"mask=0x{m.u8(use + 2):x},")
            out.append(f"raflags=0x{m.u8(use + 3):x},")
            out.append(f"vltime={_rr_time(m.u32(use + 4))},")
            out.append(f"pltime={_rr_time(m.u32(use + 8))},")
        out.append(f"{_numeric6(m.buf, use + 16)}/{m.u8(use)}/{m.u8(use + 1)})")
        use += 32
    return True


def _rr_time(value: int) -> str:
    return "infty" if value == INFINITY else str(value)


# ----- node information (RFC 4620) -----------------------------------------------------------
def _ni_query(m: _Msg) -> bool:
    """print-icmp6.c icmp6_nodeinfo_print for a query.  *size* is the captured length.

    Its own early exits (even `` [|icmp6]``) still get icmp6_print's length tail.
    """
    _ni_query_body(m)
    return True


def _ni_reply(m: _Msg) -> bool:
    """The same for a reply (RFC 4620 §4): a code, then the data for the Qtype."""
    _ni_reply_body(m)
    return True


def _ni_query_body(m: _Msg) -> None:
    off = m.off
    out = m.out
    size = m.end - off
    if size == 12:  # the KAME who-are-you form
        out.append(" who-are-you request")
        return
    out.append(" node information query")
    if not m.has(off, 16):
        m.trunc()
        return
    out.append(" (")
    qtype = m.u16(off + 4)
    out.append(_ni_qtype(m, qtype, query=True))
    if qtype in (0, 1):
        if size != 16 and m.v:
            out.append(", invalid len")
        out.append(")")
        return
    if size == 16:
        out.append(", 03 draft)")
        return
    subject = off + 16
    code = m.code
    if code == 0:  # an IPv6 address
        if m.has(off, 32):
            if size != 32:
                if m.v:
                    out.append(", invalid subject len")
            else:
                out.append(", subject=" + m.addr(subject))
    elif code == 1:
        out.append(", subject=DNS name")
        _ni_name(m, subject)
    elif code == 2:  # an IPv4 address
        if m.has(off, 20):
            if size != 20:
                if m.v:
                    out.append(", invalid subject len")
            else:
                out.append(", subject=" + m.pr.addr(m.buf[subject : subject + 4]))
    else:
        out.append(", unknown subject")
    out.append(")")


def _ni_reply_body(m: _Msg) -> None:
    off = m.off
    out = m.out
    size = m.end - off
    if m.length > size or not m.has(off, 16):
        m.trunc()
        return
    out.append(" node information reply (")
    code = m.code
    comma = False
    if code == 0:
        if m.v:
            out.append("success")
            comma = True
    elif code in (1, 2):
        out.append("refused" if code == 1 else "unknown")
        comma = True
        if size != 16 and m.v:
            out.append(", invalid length")
    if code != 0:
        out.append(")")
        return
    if comma:
        out.append(", ")
    qtype = m.u16(off + 4)
    out.append(_ni_qtype(m, qtype, query=False))
    if qtype == 0:
        if size != 16 and m.v:
            out.append(", invalid length")
    elif qtype == 2:
        _ni_name(m, off + 20)
        if m.u16(off + 6) & 0x01:
            out.append(f" [TTL={m.u32(off + 16)}]")
    elif qtype == 3:
        _ni_addresses(m, size)
    out.append(")")


def _ni_qtype(m: _Msg, qtype: int, query: bool) -> str:
    """The Qtype's name and, for supported qtypes / node addresses, its flags."""
    if qtype == 0:
        return "noop"
    if qtype == 1:
        flags = m.u16(m.off + 6)
        return "supported qtypes" + ((" [C]" if flags & 0x01 else " []") if flags else "")
    if qtype == 2:
        return "DNS name"
    if qtype == 3:
        if query:
            return "node addresses" + _ni_addr_flags(m.u16(m.off + 6), query)
        return "node addresses"
    return "unknown"


def _ni_addr_flags(flags: int, query: bool) -> str:
    if not flags:
        return ""
    letters = "".join(letter for bit, letter in NI_ADDR_FLAGS if flags & bit)
    if not query and flags & NI_TRUNCATE:
        letters += "T"
    return f" [{letters}]"


def _ni_addresses(m: _Msg, size: int) -> None:
    """RFC 4620 §6.3: (TTL, address) pairs, while whole ones were captured."""
    pos = 16
    while pos + 20 <= size:
        address, ttl = m.addr(m.off + pos + 4), m.u32(m.off + pos)
        m.out.append(f" {address}({ttl})")
        pos += 20
    m.out.append(_ni_addr_flags(m.u16(m.off + 6), query=False))


def _ni_name(m: _Msg, pos: int) -> None:
    """A name in a node information message: the draft-03 Pascal string or DNS labels."""
    if m.u8(pos) == m.end - pos - 1:
        if m.v:
            m.out.append(", 03 draft")
        m.out.append(', "' + printable(m.buf[pos + 1 : m.end]) + '"')
    else:
        m.out.append(_ni_dns_name(m, pos))


def _ni_dns_name(m: _Msg, pos: int) -> str:
    """print-icmp6.c dnsname_print: labels without compression, marking oddities ???."""
    end = m.end
    buf = m.buf
    parts = [', "']
    while pos < end:
        size = buf[pos]
        pos += 1
        if size:
            if size > end - pos:
                parts.append("???")
                break
            label = buf[pos : min(pos + size, end)]
            parts.append(printable(label))
            pos += len(label)
            if pos + 1 < end and buf[pos]:
                parts.append(".")
        else:
            if pos == end:
                parts.append(".")
            elif not (pos + 1 == end and buf[pos] == 0):
                parts.append("???")
            break
    parts.append('"')
    return "".join(parts)


# ----- RPL (RFC 6550 §6) ---------------------------------------------------------------------
def _rpl(m: _Msg) -> bool:
    code = m.code
    out = m.out
    if code & 0x80:  # secured messages: tcpdump does not decode them
        out.append(", (SEC) [worktodo]")
        return True
    out.append(", (CLR)")
    # print-icmp6.c passes length - 4 as an unsigned int: it wraps below 4.
    body, length = m.off + 4, (m.length - 4) & 0xFFFFFFFF
    base = code & 0x7F
    if base == 0:
        out.append("DODAG Information Solicitation")
    elif base == 1:
        out.append("DODAG Information Object")
        if m.v:
            _rpl_dio(m, body, length)
    elif base == 2:
        out.append("Destination Advertisement Object")
        if m.v:
            _rpl_dao(m, body, length)
    elif base == 3:
        out.append("Destination Advertisement Object Ack")
        if m.v:
            _rpl_dao_ack(m, body, length)
    else:
        out.append(f"RPL message, unknown code {code}")
    return True


def _rpl_dio(m: _Msg, pos: int, length: int) -> None:
    if length < 24:
        m.out.append(f" [length {length} < 24] (invalid)")
        return
    dagid, dtsn, instance = m.addr(pos + 8), m.u8(pos + 5), m.u8(pos + 0)
    rank, mopprf = m.u16(pos + 2), m.u8(pos + 4)
    mop = (mopprf >> 3) & 7
    grounded = "grounded," if mopprf & 0x80 else ""
    m.out.append(f" [dagid:{dagid},seq:{dtsn},instance:{instance},rank:{rank},{grounded}"
                 f"mop:{RPL_MOPS.get(mop, f'mop{mop}')},prf:{mopprf & 7}]")
    if m.v > 1:
        _rpl_options(m, pos + 24, length - 24)


def _rpl_dao(m: _Msg, pos: int, length: int) -> None:
    if not m.has(pos, 20):
        m.trunc()
        return
    if length < 4:
        m.out.append(" [|length too short]")
        return
    flags = m.u8(pos + 1)
    dagid = "<elided>"
    rest, left = pos + 4, length - 4
    if flags & 0x40:  # D: the DODAGID is present
        if left < 16:
            m.out.append(" [|length too short]")
            return
        dagid = m.pr.addr(m.buf[rest : rest + 16])
        rest, left = rest + 16, left - 16
    seq, instance = m.u8(pos + 3), m.u8(pos)
    m.out.append(f" [dagid:{dagid},seq:{seq},instance:{instance}"
                 f"{',acK' if flags & 0x80 else ''}{',Dagid' if flags & 0x40 else ''},"
                 f"{flags:02x}]")
    if m.v > 1:
        _rpl_options(m, rest, left)


def _rpl_dao_ack(m: _Msg, pos: int, length: int) -> None:
    if not m.has(pos, 4):
        m.trunc()
        return
    if length < 4:
        m.out.append(" [|dao-length too short]")
        return
    dagid = "<elided>"
    rest, left = pos + 4, length - 4
    if m.u8(pos + 1) & 0x80:  # D: the DODAGID is present
        if not m.has(rest, 16):
            m.trunc()
            return
        if left < 16:
            m.out.append(" [|dao-length too short]")
            return
        dagid = m.pr.addr(m.buf[rest : rest + 16])
        rest, left = rest + 16, left - 16
    seq, instance, status = m.u8(pos + 2), m.u8(pos), m.u8(pos + 3)
    m.out.append(f" [dagid:{dagid},seq:{seq},instance:{instance},status:{status}]")
    if m.v > 1:
        _rpl_options(m, rest, left)


def _rpl_options(m: _Msg, pos: int, length: int) -> None:
    """print-icmp6.c rpl_printopts: names and lengths; the contents only at -vvv."""
    out = m.out
    while length > 0:
        kind = m.u8(pos)
        if kind == 0:
            size = 1
            out.append(" opt:pad1")
        else:
            if length < 2:
                m.trunc()
                return
            size = m.u8(pos + 1) + 2
            out.append(f" opt:{RPL_OPTION_NAMES.get(kind, f'subopt:{kind}')} len:{size} ")
            if not m.has(pos, size) or length < size:
                m.trunc()
                return
            if m.v > 2:
                out.append(hex_only(m.buf[pos + 2 : pos + size], " "))
        pos += size
        length -= size


# ----- DNS names (print-domain.c fqdn_print, for the DNSSL option) ---------------------------
def _dns_name(m: _Msg, pos: int, base: int) -> int | None:
    """Print the name at *pos*; return where it ends, or None where tcpdump gave up.

    Compression pointers (RFC 1035 §4.1.4) count from *base* and must point backwards.
    """
    out = m.out
    buf = m.buf
    size = _label_len(m, pos)
    if size is None or not m.has(pos, 1):
        return None
    max_offset = pos - base
    first = buf[pos]
    pos += 1
    compressed = False
    resume = pos + size if first & 0xC0 != 0xC0 else None
    if first == 0:
        out.append(".")
        return resume
    byte = first
    chars = 0
    while byte and pos < m.end:
        kind = byte & 0xC0
        if kind == 0xC0:
            if not compressed:
                resume, compressed = pos + 1, True
            if not m.has(pos, 1):
                return None
            offset = ((byte << 8) | buf[pos]) & 0x3FFF
            if offset >= max_offset:
                out.append("<BAD PTR>")
                return None
            max_offset = offset
            pos = base + offset
            if not m.has(pos, 1):
                return None
            byte = buf[pos]
            size = _label_len(m, pos)
            if size is None:
                return None
            pos += 1
            continue
        if kind == 0x40:
            if byte & 0x3F != 0x01:
                out.append(f"<ELT {byte & 0x3F}>")
                return None
            if not m.has(pos, 1):
                return None
            _bit_label(m, pos)
        elif kind == 0x80:
            out.append("<BAD LABEL TYPE>")
            return None
        else:
            shown = size if chars + size <= MAX_DNAME else max(MAX_DNAME - chars, 0)
            if shown:
                label = buf[pos : min(pos + shown, m.end)]
                out.append(printable(label))
                if len(label) < shown:
                    return None
            chars += size
        pos += size
        if chars <= MAX_DNAME:
            out.append(".")
        chars += 1
        if not m.has(pos, 1):
            return None
        byte = buf[pos]
        size = _label_len(m, pos)
        if size is None:
            return None
        pos += 1
        if not compressed and resume is not None:
            resume += size + 1
    if chars > MAX_DNAME:
        out.append("<DOMAIN NAME TOO LONG>")
    return resume


def _label_len(m: _Msg, pos: int) -> int | None:
    """print-domain.c labellen: the bytes the label at *pos* spans after its first."""
    if not m.has(pos, 1):
        return None
    byte = m.buf[pos]
    kind = byte & 0xC0
    if kind == 0x40:  # EDNS0 extended label (RFC 2673 bit-string labels only)
        if byte & 0x3F != 0x01:
            m.out.append(f"<ELT {byte & 0x3F}>")
            return None
        if not m.has(pos + 1, 1):
            return None
        bits = m.buf[pos + 1] or 256
        return (bits + 7) // 8 + 1
    if kind == 0x80:
        m.out.append("<BAD LABEL TYPE>")
        return None
    return byte


def _bit_label(m: _Msg, pos: int) -> None:
    """print-domain.c blabel_print: a bit-string label as \\[xHEX/BITS]."""
    bits = m.u8(pos) or 256
    limit = pos + 1 + (bits + 3) // 4
    parts = ["\\[x"]
    cur = pos + 1
    left = bits
    while cur < limit and left > 7:
        parts.append(f"{m.u8(cur):02x}")
        left -= 8
        cur += 1
    if left > 4:
        parts.append(f"{m.u8(cur) & (0xFF << (8 - left)) & 0xFF:02x}")
    elif left > 0:
        parts.append(f"{((m.u8(cur) >> 4) & 0x0F) & (0x0F << (4 - left)):1x}")
    parts.append(f"/{bits}]")
    m.out.append("".join(parts))


# ----- small helpers -----------------------------------------------------------------------------
def _bits(table: tuple[tuple[int, str], ...], value: int) -> str:
    """util-print.c bittok2str: the names of the set bits, or "none"."""
    return ", ".join(name for bit, name in table if value & bit == bit) or "none"


def _router_preference(flags: int) -> str:
    return ROUTER_PREFERENCE[(flags & 0x18) >> 3]


def _lifetime(value: int) -> str:
    return "infinity" if value == INFINITY else f"{value}s"


def _numeric6(buf: bytes, pos: int) -> str:
    """addrtostr6: always numeric (router renumbering prints prefixes, not hosts)."""
    return socket.inet_ntop(socket.AF_INET6, buf[pos : pos + 16])


_TYPE_PRINTERS: Final[Mapping[int, Callable[[_Msg], bool]]] = {
    icmp6mod.DST_UNREACH: _dst_unreach,
    icmp6mod.PACKET_TOO_BIG: _packet_too_big,
    icmp6mod.TIME_EXCEEDED: _time_exceeded,
    icmp6mod.PARAM_PROB: _param_prob,
    icmp6mod.ECHO_REQUEST: _echo,
    icmp6mod.ECHO_REPLY: _echo,
    icmp6mod.MLD_QUERY: _mld_query,
    icmp6mod.MLD_REPORT: _mld1,
    icmp6mod.MLD_DONE: _mld1,
    icmp6mod.ROUTER_SOLICIT: _router_solicit,
    icmp6mod.ROUTER_ADVERT: _router_advert,
    icmp6mod.NEIGHBOR_SOLICIT: _neighbor_solicit,
    icmp6mod.NEIGHBOR_ADVERT: _neighbor_advert,
    icmp6mod.REDIRECT: _redirect,
    icmp6mod.ROUTER_RENUMBERING: _router_renumbering,
    icmp6mod.NI_QUERY: _ni_query,
    icmp6mod.NI_REPLY: _ni_reply,
    icmp6mod.IND_SOLICIT: _no_body,
    icmp6mod.IND_ADVERT: _no_body,
    icmp6mod.MLDV2_REPORT: _mld2_report,
    icmp6mod.HA_DISCOVERY_REQUEST: _id_only,
    icmp6mod.MOBILE_PREFIX_SOLICIT: _id_only,
    icmp6mod.HA_DISCOVERY_REPLY: _ha_reply,
    icmp6mod.MOBILE_PREFIX_ADVERT: _mobile_prefix_advert,
    icmp6mod.RPL: _rpl,
}
