"""print-tcp.c: ports, flags, relative sequence numbers, window, options, checksum."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from capdissect.dissect.checksum import pseudo_sum, verify
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import (
    IPv6Header,
)
from capdissect.dissect.tcp import ACK, FIN, FLAG_STRINGS, RST, SYN, URG, parse_tcp
from capdissect.report.tcpdump.fast import relative_numbers, seq_text, tcp_cksum_text
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.hexdump import printable
from capdissect.report.tcpdump.ip import final_dst
from capdissect.report.tcpdump.tcp_options import print_options

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

MAX_RST_DATA_LEN: Final = 30
_PORTS: Final = struct.Struct("!HH")


def print_tcp(pr: Context, frame: Frame, off: int, length: int, end: int,
         ip: IPv4Header | IPv6Header, fragmented: bool) -> None:
    """print-tcp.c tcp_print."""
    out = frame.out
    buf = frame.buf
    frame.proto = "tcp"
    if off + 20 > end:  # not the whole fixed header: print what there is
        if off + 4 > end:
            out.append(f"{pr.addr(ip.src)} > {pr.addr(ip.dst)}: [|tcp]")
            return
        sport, dport = _PORTS.unpack_from(buf, off)
        out.append(pr.endpoints(ip, 6, pr.names.tcp_port(sport),
                                   pr.names.tcp_port(dport)))
        out.append(" [|tcp]")
        return
    tcp = parse_tcp(buf, off, end, with_options=False)  # print_options walks them
    out.append(pr.endpoints(ip, 6, pr.names.tcp_port(tcp.src_port),
                               pr.names.tcp_port(tcp.dst_port)))
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
    if not pr.opts.S and flags & ACK:
        seq, ack, thseq, thack, rev = relative_numbers(
            pr.isn, ip.src, ip.dst, tcp.src_port, tcp.dst_port, seq, ack, flags)
    if hlen > length:
        out.append(f" [bad hdr length {hlen} - too long, > {length}]")
        return
    if pr.opts.v and not pr.opts.K and not fragmented and off + length <= end:
        initial = pseudo_sum(ip.src, final_dst(frame, ip), 6, length)
        out.append(tcp_cksum_text(tcp.checksum, verify(buf[off : off + length], initial)))
    data_len = length - hlen
    if pr.opts.v > 1 or data_len > 0 or flags & (SYN | FIN | RST):
        out.append(seq_text(seq, data_len))
    if flags & ACK:
        out.append(f", ack {ack}")
    out.append(f", win {tcp.window}")
    if flags & URG:
        out.append(f", urg {tcp.urgent}")
    if hlen > 20 and not print_options(out, buf, off + 20, hlen - 20, end, flags,
                                       thseq if rev else thack, pr.addr):
        return
    out.append(f", length {data_len}")
    if data_len == 0:
        return
    if off + hlen > end:
        out.append(f" [remaining caplen({max(end - off, 0)}) < header length({hlen})]")
        raise Cut("tcp")
    if flags & RST and pr.opts.v:
        payload = buf[off + hlen : min(end, off + hlen + data_len)]
        out.append(" [RST" if off + hlen + data_len <= end else " [!RST")
        if data_len > MAX_RST_DATA_LEN:
            payload = payload[:MAX_RST_DATA_LEN]
            out.append("+")
        out.append(" " + printable(payload) + "]")
