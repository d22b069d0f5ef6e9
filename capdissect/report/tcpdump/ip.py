"""print-ip.c: the IPv4 header, its options (decoded once by ``dissect/ip_options.py``)
and -v's details, then the payload through the context's ``demux``; and the final
destination a checksum's pseudo-header takes (IPv4 source routes, IPv6 routing headers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from capdissect.dissect import ip_options as ipopt
from capdissect.dissect import ipv6 as ip6mod
from capdissect.dissect.checksum import verify
from capdissect.dissect.ip_options import parse_ip_options
from capdissect.dissect.ipv4 import FLAG_DF, FLAG_MF, FLAG_RESERVED, IPv4Header, parse_ipv4
from capdissect.dissect.ipv6 import (
    IPv6Header,
    parse_routing,
)
from capdissect.errors import Truncated
from capdissect.report.tcpdump.fast import ip_cksum_text, tos_text
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.names import IPPROTO_NAMES

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

IP_OPTION_NAMES: Final = {
    ipopt.EOL: "EOL", ipopt.NOP: "NOP", ipopt.TIMESTAMP: "timestamp", ipopt.SECURITY: "security",
    ipopt.RR: "RR", ipopt.SSRR: "SSRR", ipopt.LSRR: "LSRR", ipopt.RA: "RA",
    ipopt.TRACEROUTE: "traceroute",
}
TIMESTAMP_KINDS: Final = {0: "TSONLY", 1: "TS+ADDR", 3: "PRESPEC"}  # by the option's flag


def print_ip(pr: Context, frame: Frame, off: int, length: int, end: int) -> None:
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
    if not pr.opts.e:
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
    if pr.opts.v:
        _ip_verbose(pr, frame, ip, end)
        if frame.proto == "ip-options-truncated":
            frame.proto = "ip"
            out.append(f"{pr.addr(ip.src)} > {pr.addr(ip.dst)}:  [|ip]")
            return
    if frag & 0x1FFF == 0:
        nh = ip.proto
        if nh not in (6, 17, 132, 33):
            out.append(f"{pr.addr(ip.src)} > {pr.addr(ip.dst)}: ")
        if off + hlen > end:
            out.append(f" [remaining caplen({max(end - off, 0)}) < header length({hlen})]")
            raise Cut(frame.proto)
        pr.demux(frame, off + hlen, payload_len, end, nh, ip, bool(frag & FLAG_MF))
    else:
        out.append(f"{pr.addr(ip.src)} > {pr.addr(ip.dst)}: {pr.proto_name(ip.proto)}")


def _ip_verbose(pr: Context, frame: Frame, ip: IPv4Header, end: int) -> None:
    out = frame.out
    tos = ip.tos
    parts = [tos_text(tos)]
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
        if not _ip_options(pr, frame, ip.offset + 20, hlen - 20, end):
            out.append(" [truncated-option]")
            frame.proto = "ip-options-truncated"
        out.append(")")
    if not pr.opts.K and ip.offset + hlen <= end:
        out.append(ip_cksum_text(ip.checksum, verify(frame.buf[ip.offset : ip.offset + hlen])))
    out.append(")\n    ")


def _ip_options(pr: Context, frame: Frame, off: int, length: int, end: int) -> bool:
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
                _ip_timestamps(pr, frame, value, len(option.data) + 2)
            else:
                out.append(f"[bad length {option.length}]")
        elif option.code in (ipopt.RR, ipopt.LSRR, ipopt.SSRR):
            if isinstance(value, ipopt.Route):
                _ip_route(pr, frame, value, len(option.data) + 2)
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


def _ip_route(pr: Context, frame: Frame, route: ipopt.Route, opt_len: int) -> None:
    """RR, LSRR, SSRR (RFC 791 §3.1): the addresses, a comma after those recorded."""
    out = frame.out
    if route.ragged:
        out.append(f" [bad length {opt_len}]")
    ptr = (route.pointer - 1) & 0xFFFFFFFF  # unsigned in tcpdump: pointer 0 wraps
    if ptr < 3 or ((ptr + 1) & 3) or ptr > opt_len + 1:
        out.append(f" [bad ptr {route.pointer}]")
    for i, address in enumerate(route.addresses):
        out.append(f" {pr.addr(address)}")
        if ptr > 3 + 4 * i:
            out.append(",")
    if route.ragged:
        raise Cut("ip")


def _ip_timestamps(pr: Context, frame: Frame, ts: ipopt.Timestamp, opt_len: int) -> None:
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
            where = "" if entry.address is None else pr.addr(entry.address)
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


def final_dst(frame: Frame, ip: IPv4Header | IPv6Header) -> bytes:
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


def _ip_option_name(code: int) -> str:
    return IP_OPTION_NAMES.get(code) or f"unknown {code}"
