"""print-ip6.c and its extension headers (hop-by-hop and destination options, routing,
fragment), then the payload through the context's ``demux``."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from capdissect.dissect import ipv6 as ip6mod
from capdissect.dissect.ipv6 import (
    IPv6Header,
    parse_fragment,
    parse_ipv6,
    parse_routing,
    parse_tlv_options,
)
from capdissect.errors import Truncated
from capdissect.report.tcpdump.fast import ip6_head_text
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.names import IPPROTO_NAMES

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")


def print_ip6(pr: Context, frame: Frame, off: int, length: int, end: int) -> None:
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
    if not pr.opts.e:
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
    if pr.opts.v:
        out.append(ip6_head_text(ip6.traffic_class, ip6.flow_label, ip6.hop_limit,
                                 f"{IPPROTO_NAMES.get(nh, 'unknown')} ({nh})", plen))
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
            out.append(f"{pr.addr(ip6.src)} > {pr.addr(ip6.dst)}: ")
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
            advance = _ip6_opts(pr, frame, pos, end, nh,
                                     jumbo if nh == ip6mod.HOPOPTS else None)
            if nh == ip6mod.HOPOPTS and plen == 0 and not jumbo[1]:
                out.append("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)")
                return
            if advance < 0:
                return
            found_hbh = found_hbh or nh == ip6mod.HOPOPTS
        elif nh == ip6mod.FRAGMENT:
            advance = _frag6(pr, frame, pos, end, ip6)
            if advance < 0 or end <= pos + advance:
                return
            fragmented = True
        elif nh == ip6mod.ROUTING:
            if pos >= end:
                raise Cut("ip6")
            advance = _rt6(pr, frame, pos, end)
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
            pr.demux(frame, pos, remaining, end, nh, ip6, fragmented)
            return
        seen_ext = True
        previous = nh
        nh = buf[pos]
        frame.proto = "ip6"


def _ip6_opts(pr: Context, frame: Frame, pos: int, end: int, kind: int,
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
    if (kind == ip6mod.HOPOPTS or pr.opts.v) and not _ip6_option_list(pr,
        frame, pos + 2, pos + hlen, jumbo
    ):
        out.append(f" [|{frame.proto}]")
        return -1
    return hlen


def _ip6_option_list(pr: Context, frame: Frame, start: int, end: int,
                     jumbo: list[int] | None) -> bool:
    """print-ip6opts.c ip6_opt_process; *jumbo* holds [payload length, found] for HBH."""
    out = frame.out
    v = pr.opts.v
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
                out.append(f"(homeaddr: {pr.addr(data[:16])}")
                sub_start = option.offset + 18
                if len(data) > 16 and not _ip6_sub_options(pr,
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


def _ip6_sub_options(pr: Context, frame: Frame, start: int, end: int) -> bool:
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


def _frag6(pr: Context, frame: Frame, pos: int, end: int, ip6: IPv6Header) -> int:
    """print-frag6.c: the length tcpdump prints is computed in size_t, so it wraps."""
    out = frame.out
    frame.proto = "frag6"
    try:
        frag = parse_fragment(frame.buf, pos, end)
    except Truncated:
        raise Cut("frag6") from None
    body = (40 + ip6.payload_len - (pos - ip6.offset) - 8) % (1 << 64)
    if pr.opts.v:
        out.append(f"frag (0x{frag.ident:08x}:{frag.frag_offset}|{body})")
    else:
        out.append(f"frag ({frag.frag_offset}|{body})")
    if frag.frag_offset:
        return -1  # a non-first fragment: nothing more to decode
    out.append(" ")
    return 8


def _rt6(pr: Context, frame: Frame, pos: int, end: int) -> int:
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
        if reserved or pr.opts.v:
            out.append(f", rsv=0x{reserved:x}")
    elif rtype == 4:
        if len(data) < 1:
            raise Cut("rt6")
        out.append(f", last-entry={data[0]}")
        if len(data) < 2:
            raise Cut("rt6")
        if data[1] or pr.opts.v:
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
        out.append(f", [{i}]{pr.addr(rt.addresses[i])}")
    out.append(") ")
    return (rt.length8 + 1) * 8
