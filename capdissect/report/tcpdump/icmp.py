"""ICMP (RFC 792) as tcpdump 4.99's print-icmp.c prints it.

tcpdump builds a one-line summary per type, then prints ``ICMP <summary>, length N``.
With -v it checks the checksum, prints the datagram an error message quotes through the
IP printer (on a new, tab-indented line) and decodes RFC 4884 extension objects such as
RFC 4950's MPLS label stack.

Two ways of stopping at the end of the capture are kept apart, as print-icmp.c has them:
a few explicit checks (``ND_TCHECK``) print `` [|icmp]`` in place of the summary and
return normally; every other read past the end is a GET_ macro's longjmp, modelled by
raising ``Cut("icmp")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from capdissect.dissect import icmp as icmpmod
from capdissect.dissect.checksum import should_be, verify
from capdissect.dissect.ipv4 import IPv4Header
from capdissect.report.tcpdump.frame import Cut, Frame
from capdissect.report.tcpdump.hexdump import hex_only

if TYPE_CHECKING:
    from capdissect.report.tcpdump.context import Context

TRUNC: Final = " [|icmp]"

# print-icmp.c icmp2str: types whose summary is just a name.  Unknown types print
# "type-#N".
TYPE_NAMES: Final = {
    icmpmod.ECHO_REPLY: "echo reply",
    icmpmod.SOURCE_QUENCH: "source quench",
    icmpmod.ECHO_REQUEST: "echo request",
    icmpmod.ROUTER_SOLICIT: "router solicitation",
    icmpmod.TIMESTAMP: "time stamp request",
    icmpmod.TIMESTAMP_REPLY: "time stamp reply",
    icmpmod.INFO_REQUEST: "information request",
    icmpmod.INFO_REPLY: "information reply",
    icmpmod.MASK_REQUEST: "address mask request",
}

# Destination unreachable codes whose text only needs the quoted destination (RFC 792,
# RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).  Codes 2-4 read more of the message; others
# print "<dst> unreachable - #N".
UNREACH_TEXT: Final = {
    0: "net {dst} unreachable",
    1: "host {dst} unreachable",
    5: "{dst} unreachable - source route failed",
    6: "net {dst} unreachable - unknown",
    7: "host {dst} unreachable - unknown",
    8: "{dst} unreachable - source host isolated",
    9: "net {dst} unreachable - admin prohibited",
    10: "host {dst} unreachable - admin prohibited",
    11: "net {dst} unreachable - tos prohibited",
    12: "host {dst} unreachable - tos prohibited",
    13: "host {dst} unreachable - admin prohibited filter",
    14: "host {dst} unreachable - host precedence violation",
    15: "host {dst} unreachable - precedence cutoff",
}

# Redirect codes (RFC 792); others print "redirect-#N <dst> to <gw>".
REDIRECT_TEXT: Final = {
    0: "redirect {dst} to net {gw}",
    1: "redirect {dst} to host {gw}",
    2: "redirect-tos {dst} to net {gw}",
    3: "redirect-tos {dst} to host {gw}",
}

TIME_EXCEEDED_TEXT: Final = {
    0: "time exceeded in-transit",
    1: "ip reassembly time exceeded",
}

# RFC 4884 §7 / print-icmp.c: the extension structure starts 128 bytes into the quote,
# so a message must be longer than this to carry one.  The header check covers the
# extension header and one byte more (sizeof(struct icmp_ext_t) in print-icmp.c).
EXT_OFFSET: Final = 8 + 128
EXT_CHECKED_LEN: Final = EXT_OFFSET + 5
EXT_VERSION: Final = 2
EXT_OBJECT_NAMES: Final = {1: "MPLS Stack Entry", 2: "Interface Identification"}
MPLS_OBJECT_CLASS: Final = 1  # RFC 4950 §7


def _u8(buf: bytes, pos: int, end: int) -> int:
    if pos >= end:
        raise Cut("icmp")
    return buf[pos]


def _u16(buf: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise Cut("icmp")
    return int.from_bytes(buf[pos : pos + 2], "big")


def _u32(buf: bytes, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise Cut("icmp")
    return int.from_bytes(buf[pos : pos + 4], "big")


def _addr(pr: Context, buf: bytes, pos: int, end: int) -> str:
    if pos + 4 > end:
        raise Cut("icmp")
    return pr.addr(buf[pos : pos + 4])


def _quoted_dst(pr: Context, buf: bytes, off: int, end: int) -> str:
    """The destination address of the quoted IP header (bytes 16-19 after the ICMP's 8)."""
    return _addr(pr, buf, off + 8 + 16, end)


def _clock(ms: int) -> str:
    """Milliseconds since midnight UT (RFC 792 timestamps) as tcpdump's icmp_tstamp_print
    shows them; the hours are not wrapped at 24."""
    sec, msec = divmod(ms, 1000)
    minutes, sec = divmod(sec, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{sec:02d}.{msec:03d}"


def _lifetime(seconds: int) -> str:
    if seconds < 60:
        return str(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ----- the per-type summaries: text, or None where print-icmp.c jumps to its trunc label ---
Summary = Callable[["Context", bytes, int, int, int], "str | None"]


def _echo(pr: Context, buf: bytes, off: int, end: int, code: int) -> str | None:
    kind = "request" if buf[off] == icmpmod.ECHO_REQUEST else "reply"
    return f"echo {kind}, id {_u16(buf, off + 4, end)}, seq {_u16(buf, off + 6, end)}"


def _unreachable(pr: Context, buf: bytes, off: int, end: int,
                 code: int) -> str | None:
    if code == 2:
        dst = _quoted_dst(pr, buf, off, end)
        return f"{dst} protocol {_u8(buf, off + 8 + 9, end)} unreachable"
    if code == icmpmod.UNREACH_PORT:
        return _port_unreachable(pr, buf, off, end)
    if code == 4:
        mtu = _u16(buf, off + 6, end)  # RFC 1191 §4: next-hop MTU, 0 from old routers
        dst = _quoted_dst(pr, buf, off, end)
        return f"{dst} unreachable - need to frag" + (f" (mtu {mtu})" if mtu else "")
    dst = _quoted_dst(pr, buf, off, end)
    template = UNREACH_TEXT.get(code)
    return template.format(dst=dst) if template else f"{dst} unreachable - #{code}"


def _port_unreachable(pr: Context, buf: bytes, off: int, end: int) -> str | None:
    """The quoted datagram's protocol and destination port.  tcpdump trusts the quoted
    header length as it is (even below 20) to find the port."""
    quote = off + 8
    if quote + 10 > end:  # ND_TCHECK_1 on the quoted protocol byte
        return None
    port = _u16(buf, quote + (buf[quote] & 0x0F) * 4 + 2, end)
    proto = buf[quote + 9]
    dst = _quoted_dst(pr, buf, off, end)
    if proto == 6:
        return f"{dst} tcp port {pr.names.tcp_port(port)} unreachable"
    if proto == 17:
        return f"{dst} udp port {pr.names.udp_port(port)} unreachable"
    return f"{dst} protocol {proto} port {port} unreachable"


def _redirect(pr: Context, buf: bytes, off: int, end: int, code: int) -> str | None:
    dst = _quoted_dst(pr, buf, off, end)
    gw = _addr(pr, buf, off + 4, end)
    template = REDIRECT_TEXT.get(code)
    return template.format(dst=dst, gw=gw) if template else f"redirect-#{code} {dst} to {gw}"


def _router_advert(pr: Context, buf: bytes, off: int, end: int,
                   code: int) -> str | None:
    """RFC 1256 §3: count, entry size (in words), lifetime, then (address, preference)."""
    if off + 8 > end:
        return None
    count, entry_words = buf[off + 4], buf[off + 5]
    parts = [f"router advertisement lifetime {_lifetime(_u16(buf, off + 6, end))} {count}:"]
    if entry_words != 2:
        parts.append(f" [size {entry_words}]")
        return "".join(parts)
    pos = off + 8
    for _ in range(count):
        if pos + 8 > end:
            return None
        parts.append(f" {{{pr.addr(buf[pos : pos + 4])} {_u32(buf, pos + 4, end)}}}")
        pos += 8
    return "".join(parts)


def _time_exceeded(pr: Context, buf: bytes, off: int, end: int,
                   code: int) -> str | None:
    if off + 8 + 20 > end:  # ND_TCHECK_4 on the quoted destination address
        return None
    return TIME_EXCEEDED_TEXT.get(code, f"time exceeded-#{code}")


def _param_problem(pr: Context, buf: bytes, off: int, end: int,
                   code: int) -> str | None:
    if code:
        return f"parameter problem - code {code}"
    return f"parameter problem - octet {_u8(buf, off + 4, end)}"


def _mask_reply(pr: Context, buf: bytes, off: int, end: int, code: int) -> str | None:
    return f"address mask is 0x{_u32(buf, off + 8, end):08x}"


def _timestamp(pr: Context, buf: bytes, off: int, end: int, code: int) -> str | None:
    return f"time stamp query id {_u16(buf, off + 4, end)} seq {_u16(buf, off + 6, end)}"


def _timestamp_reply(pr: Context, buf: bytes, off: int, end: int,
                     code: int) -> str | None:
    if off + 20 > end:  # ND_TCHECK_4 on the transmit timestamp
        return None
    originate, receive, transmit = (
        int.from_bytes(buf[pos : pos + 4], "big") for pos in (off + 8, off + 12, off + 16)
    )
    return (f"time stamp reply id {_u16(buf, off + 4, end)} seq {_u16(buf, off + 6, end)}: "
            f"org {_clock(originate)}, recv {_clock(receive)}, xmit {_clock(transmit)}")


SUMMARIES: Final[dict[int, Summary]] = {
    icmpmod.ECHO_REPLY: _echo,
    icmpmod.ECHO_REQUEST: _echo,
    icmpmod.UNREACHABLE: _unreachable,
    icmpmod.REDIRECT: _redirect,
    icmpmod.ROUTER_ADVERT: _router_advert,
    icmpmod.TIME_EXCEEDED: _time_exceeded,
    icmpmod.PARAM_PROBLEM: _param_problem,
    icmpmod.MASK_REPLY: _mask_reply,
    icmpmod.TIMESTAMP: _timestamp,
    icmpmod.TIMESTAMP_REPLY: _timestamp_reply,
}


# ----- the message ----------------------------------------------------------------------
def print_icmp(pr: Context, frame: Frame, off: int, length: int, end: int,
               ip: IPv4Header, fragmented: bool) -> None:
    """print-icmp.c icmp_print: *length* is the IP payload length, *end* the snapend."""
    buf = frame.buf
    out = frame.out
    frame.proto = "icmp"
    icmp_type = _u8(buf, off, end)
    code = _u8(buf, off + 1, end)
    summary = SUMMARIES.get(icmp_type)
    if summary is None:
        text: str | None = TYPE_NAMES.get(icmp_type, f"type-#{icmp_type}")
    else:
        text = summary(pr, buf, off, end, code)
    if text is None:
        out.append(TRUNC)
        return
    out.append(f"ICMP {text}, length {length}")
    verbose = pr.opts.v > 0
    # tcpdump checks the checksum only over a whole, unfragmented message, and says
    # nothing when it is right (-K does not turn this off).
    if verbose and not fragmented and off + length <= end:
        computed = verify(buf[off : off + length])
        if computed:
            field = _u16(buf, off + 2, end)
            out.append(f" (wrong icmp cksum {field:x} (->{should_be(field, computed):x})!)")
    if verbose and icmp_type in icmpmod.ERROR_TYPES:
        _print_quote(pr, frame, off + 8, end)
        frame.proto = "icmp"
    if verbose and length > EXT_OFFSET and icmp_type in icmpmod.MULTIPART_TYPES:
        _print_extensions(frame, off, length, end)


def _print_quote(pr: Context, frame: Frame, start: int, end: int) -> None:
    """The quoted datagram, through the IP printer, with the capture cut at the length
    its own header gives (print-icmp.c narrows snapend so trailing extensions are not
    taken for the quoted payload)."""
    buf = frame.buf
    out = frame.out
    out.append("\n\t")
    total = _u16(buf, start + 2, end)
    quote_end = min(start + total, end)
    # print-icmp.c reads the length field a second time after narrowing the capture to
    # it, so a quoted length below 4 cuts off its own field.
    _u16(buf, start + 2, quote_end)
    # print-ip.c checks the version before the header's size, and with 4 bytes or more
    # the version byte is there; short of a whole header it prints [|ip] and returns.
    version = buf[start] >> 4
    if version != 4:
        out.append("IP6, wrong link-layer encapsulation" if version == 6 else f"IP{version}")
        out.append(" (invalid)")
    elif quote_end - start < 20:
        if not pr.opts.e:
            out.append("IP ")
        out.append(" [|ip]")
    else:
        pr.print_ip(frame, start, total, quote_end)


def _print_extensions(frame: Frame, off: int, length: int, end: int) -> None:
    """RFC 4884 multi-part extensions after the 128-byte padded quote."""
    buf = frame.buf
    out = frame.out
    if off + EXT_CHECKED_LEN > end:
        out.append(TRUNC)
        return
    ext = off + EXT_OFFSET
    ext_len = length - EXT_OFFSET
    whole = ext + ext_len <= end
    # RFC 4884 §5.5: old senders leave the length field 0; then only a valid
    # extension checksum says an extension is there.
    if buf[off + 5] == 0 and whole and verify(buf[ext : ext + ext_len]):
        return
    version = buf[ext] >> 4
    out.append(f"\n\tICMP Multi-Part extension v{version}")
    if version != EXT_VERSION:
        out.append(" packet not supported")
        return
    if whole:
        state = "in" if verify(buf[ext : ext + ext_len]) else ""
        out.append(f", checksum 0x{_u16(buf, ext + 2, end):04x} ({state}correct), "
                   f"length {ext_len}")
    _print_objects(frame, ext + 4, (ext_len - 4) & 0xFFFFFFFF, end)


def _print_objects(frame: Frame, pos: int, remaining: int, end: int) -> None:
    """RFC 4884 §7 objects: length, class, c-type, data.  *remaining* wraps as tcpdump's
    unsigned counter does; the loop still ends, each object moving at least 4 bytes on
    towards *end*."""
    buf = frame.buf
    out = frame.out
    while remaining > 4:
        if pos + 4 > end:
            out.append(TRUNC)
            return
        obj_len = int.from_bytes(buf[pos : pos + 2], "big")
        obj_class, ctype = buf[pos + 2], buf[pos + 3]
        pos += 4
        remaining -= 4
        name = EXT_OBJECT_NAMES.get(obj_class, "unknown")
        out.append(f"\n\t  {name} Object ({obj_class}), Class-Type: {ctype}, length {obj_len}")
        if obj_class == 0 or obj_len < 4:  # would not move on: tcpdump stops here
            return
        obj_len -= 4
        if obj_class == MPLS_OBJECT_CLASS and ctype == 1:
            out.append(_mpls_entry(_u32(buf, pos, end)))
        else:
            out.append(hex_only(buf[pos : min(pos + obj_len, end)], "\n\t    "))
        if remaining < obj_len:
            return
        remaining -= obj_len
        pos += obj_len


def _mpls_entry(entry: int) -> str:
    """One label stack entry (RFC 3032 §2.1, RFC 5462 for the TC name)."""
    text = f"\n\t    label {entry >> 12}, tc {(entry >> 9) & 7}"
    if entry & 0x100:
        text += ", [S]"
    return f"{text}, ttl {entry & 0xFF}"
