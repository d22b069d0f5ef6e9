"""tcpdump's text for the one packet shape most captures are made of, in one function.

``TcpdumpPrinter`` follows tcpdump's printers layer by layer, with a record per header;
that costs about 10 µs a packet in CPython, twelve times tcpdump.  Nearly every packet
of a real capture has one shape: Ethernet, IPv4 without options or IPv6 without
extension headers, then TCP or UDP, all of it captured and every length consistent.
For that shape ``FastPath.format`` builds the same text in one pass and returns it;
for anything else, or under options it does not cover, it returns None and the full
printer takes the packet.

Why it looks the way it does: this module is compiled with mypyc (``make install``,
setup.py) when a C compiler is there, and runs as plain Python without one.  Compiled,
byte indexing and native int arithmetic are C, while every struct unpack, format spec
or temporary object is a call into the interpreter; so fields are read byte by byte,
numbers become text through ``str``, the text is joined once, and the endpoints'
names are cached per address and port pair.  Its output is checked against the full
printer packet by packet (tests/unit/test_tcpdump_fast.py), and both against tcpdump.
"""

from __future__ import annotations

import time
from typing import Final

from capdissect.dissect.checksum import pseudo_sum, should_be, verify
from capdissect.dissect.tcp import FLAG_STRINGS
from capdissect.packets import RawPacket, RecordBatch
from capdissect.report.tcpdump.hexdump import hex_ascii, hex_only
from capdissect.report.tcpdump.names import Names

_PROTO_V: Final = {6: "TCP (6)", 17: "UDP (17)"}
# The endpoint cache is a cache: dropped whole when it reaches this many pairs.
_MAX_ENDPOINTS: Final = 65536
_ETH: Final = 14


def _u16(data: bytes, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def _u32(data: bytes, i: int) -> int:
    return (data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]


def _usec(nsec: int) -> str:
    """Microseconds as tcpdump's %06u (nanoseconds truncated)."""
    return str(nsec // 1000 + 1_000_000)[1:]


# The leaf formatters of the options every TCP stack sends: what tcpdump prints after
# the option's name.  The full printer (tcp_options.record_text) calls them too.
# What tcpdump prints after an option's name, for the three kinds the fast path prints;
# the full printer's option walk (tcp_options.py) calls them too.  They append to the
# caller's parts: the fast path joins its text once.
def add_mss(parts: list[str], value: int) -> None:
    parts += (" ", str(value))


def add_wscale(parts: list[str], shift: int) -> None:
    parts += (" ", str(shift))


def add_ts(parts: list[str], tsval: int, tsecr: int) -> None:
    parts += (" val ", str(tsval), " ecr ", str(tsecr))


# ----- leaf formatters: the full printer (tcp.py, udp.py, ip.py, ip6.py) calls these too,
# so a formatting fix is made once -------------------------------------------------------
ECN_TEXT: Final = ("", ",ECT(1)", ",ECT(0)", ",CE")  # by the low two bits of the TOS


def tos_text(tos: int) -> str:
    """print-ip.c's ``(tos 0xN`` with the ECN codepoint."""
    return "(tos 0x" + f"{tos:x}" + ECN_TEXT[tos & 3]


def ip_cksum_text(field: int, computed: int) -> str:
    """print-ip.c: nothing for a right header checksum, else what it should have been."""
    if not computed:
        return ""
    return ", bad cksum " + f"{field:x}" + " (->" + f"{should_be(field, computed):x}" + ")!"


def tcp_cksum_text(field: int, computed: int) -> str:
    """print-tcp.c's -v checksum verdict; *computed* 0 means right."""
    if computed:
        return (", cksum 0x" + f"{field:04x}" + " (incorrect -> 0x"
                + f"{should_be(field, computed):04x}" + ")")
    return ", cksum 0x" + f"{field:04x}" + " (correct)"


def udp_cksum_text(field: int, computed: int) -> str:
    """print-udp.c's -v checksum verdict; *computed* 0 means right."""
    if computed:
        return ("[bad udp cksum 0x" + f"{field:04x}" + " -> 0x"
                + f"{should_be(field, computed):04x}" + "!] ")
    return "[udp sum ok] "


def seq_text(seq: int, data_len: int) -> str:
    """``, seq N`` and, for a segment with data, ``:END`` (modulo 2**32)."""
    if data_len > 0:
        return "".join((", seq ", str(seq), ":", str((seq + data_len) & 0xFFFFFFFF)))
    return ", seq " + str(seq)


def ip6_head_text(tclass: int, flow: int, hlim: int, proto: str, length: int) -> str:
    """print-ip6.c's -v header: ``(class 0xNN, flowlabel 0xNNNNN, hlim ...) ``."""
    return "".join((
        "(", f"class 0x{tclass:02x}, " if tclass else "",
        f"flowlabel 0x{flow:05x}, " if flow else "", "hlim ", str(hlim),
        ", next-header ", proto, " payload length: ", str(length), ") "))


def simple_options(buf: bytes, pos: int, end: int) -> str | None:
    """The options text when every option is well formed, captured and one of the
    kinds every TCP stack sends (nop, eol, mss, wscale, sackOK, TS), else None.

    For these options tcpdump's quirks cannot show, so a shape test and the leaf
    formatters give the same text as the faithful walk (tcp_options.print_options),
    which decodes each option into its record and is much slower.
    """
    parts = [", options ["]
    sep = ""
    while pos < end:
        kind = buf[pos]
        parts.append(sep)
        sep = ","
        if kind == 1:
            parts.append("nop")
            pos += 1
            continue
        if kind == 0:
            parts.append("eol")
            break
        if pos + 1 >= end:
            return None
        size = buf[pos + 1]
        if pos + size > end:
            return None
        if kind == 8 and size == 10:
            parts.append("TS")
            add_ts(parts, _u32(buf, pos + 2), _u32(buf, pos + 6))
        elif kind == 2 and size == 4:
            parts.append("mss")
            add_mss(parts, _u16(buf, pos + 2))
        elif kind == 3 and size == 3:
            parts.append("wscale")
            add_wscale(parts, buf[pos + 2])
        elif kind == 4 and size == 2:
            parts.append("sackOK")
        else:
            return None
        pos += size
    parts.append("]")
    return "".join(parts)


def relative_numbers(isn: dict[tuple[bytes, bytes, int], tuple[int, int]], src: bytes,
                     dst: bytes, sport: int, dport: int, seq: int, ack: int,
                     flags: int) -> tuple[int, int, int, int, bool]:
    """Relative seq/ack as print-tcp.c computes them, for a segment with ACK: per address
    and port pair, the first such segment (or any SYN) sets the base in both directions.

    Returns seq, ack (relative, or as they are for the segment that set the base), the
    base pair and whether the segment goes the reverse of the pair's canonical order.
    *isn* is the table the full printer and the fast path share.
    """
    rev = sport > dport or (sport == dport and src > dst)
    key = (dst, src, (dport << 16) | sport) if rev else (src, dst, (sport << 16) | dport)
    base = isn.get(key)
    if base is None or flags & 2:
        base = ((ack - 1) & 0xFFFFFFFF, seq) if rev else (seq, (ack - 1) & 0xFFFFFFFF)
        isn[key] = base
    elif rev:
        seq = (seq - base[1]) & 0xFFFFFFFF
        ack = (ack - base[0]) & 0xFFFFFFFF
    else:
        seq = (seq - base[0]) & 0xFFFFFFFF
        ack = (ack - base[1]) & 0xFFFFFFFF
    return seq, ack, base[0], base[1], rev


class FastPath:
    """Formats the common packet shape; shares the relative-sequence table with the
    full printer, so the two can take turns within one connection."""

    def __init__(self, names: Names, isn: dict[tuple[bytes, bytes, int], tuple[int, int]],
                 v: int, x: int, X: int, S: bool, K: bool) -> None:
        self.names = names
        self.isn = isn
        self.v = v
        self.hex = 2 if X else 1 if x else 0
        self.hex_from = _ETH if (X or x) == 1 else 0  # -X's count decides, as the full printer
        self.S = S
        self.K = K
        self.clock_sec = -1
        self.clock = ""
        # (addresses and ports as in the packet) -> "src.sport > dst.dport: "
        self.tcp_ends: dict[bytes, str] = {}
        self.udp_ends: dict[bytes, str] = {}

    def format(self, sec: int, nsec: int, wire_len: int, data: bytes) -> str | None:
        """The text tcpdump prints for an Ethernet frame, or None when the frame is not
        of the common shape (then the full printer must print it)."""
        line = self.line(sec, nsec, wire_len, data)
        if line is None:
            return None
        if self.hex == 2:
            return line + hex_ascii(data[self.hex_from:])
        if self.hex == 1:
            return line + hex_only(data[self.hex_from:])
        return line

    def line(self, sec: int, nsec: int, wire_len: int, data: bytes) -> str | None:
        """``format`` without the -x/-X dump (which starts at ``hex_from``)."""
        caplen = len(data)
        if (caplen < 54 or wire_len < caplen or wire_len > 262144 or nsec >= 1_000_000_000
                or sec & 0x80000000):
            # (a fraction of a second or more: tcpdump prints it as it is; a time that
            # tcpdump refuses to convert: the full printer says so)
            return None
        v = self.v
        if data[12] == 0x08 and data[13] == 0x00:
            if data[14] != 0x45:  # version 4, no options
                return None
            total = _u16(data, 16)
            frag = _u16(data, 20)
            proto = data[23]
            # Not a fragment, every byte captured and as long as the wire says.
            if frag & 0xBFFF or total < 20 or _ETH + total > caplen or total > wire_len - _ETH:
                return None
            off = 34
            length = total - 20
            addr_len = 4
            head = "IP "
            if v:
                if data[22] == 0 or (proto != 6 and proto != 17):
                    return None
                head = self._ip_verbose(data, total, frag, proto)
        elif data[12] == 0x86 and data[13] == 0xDD:
            if data[14] >> 4 != 6:
                return None
            length = _u16(data, 18)
            proto = data[20]
            if length == 0 or 54 + length > caplen or length > wire_len - 54:
                return None
            off = 54
            addr_len = 16
            head = "IP6 "
            if v:
                if proto != 6 and proto != 17:
                    return None
                head = _ip6_verbose(data, length, proto)
        else:
            return None
        if sec != self.clock_sec:
            try:
                self.clock = time.strftime("%H:%M:%S.", time.localtime(sec))
            except (OverflowError, OSError, ValueError):
                return None
            self.clock_sec = sec
        # Last, as TCP changes the state shared with the full printer: a packet declined
        # after that would be counted twice.
        if proto == 6:
            text = self._tcp(data, off, length, addr_len)
        elif proto == 17:
            text = self._udp(data, off, length, addr_len)
        else:
            return None
        if text is None:
            return None
        return "".join((self.clock, _usec(nsec), " ", head, text))

    def format_batch(self, batch: RecordBatch, first: int, out: list[str]) -> int:
        """Append the text of packets *first*, *first* + 1, ... of *batch* to *out*, up
        to the first one not of the common shape; return its index (or len(batch))."""
        n = len(batch)
        if batch.linktype != 1:  # DLT_EN10MB
            return first
        i = first
        while i < n:
            text = self.format(batch.ts_sec(i), batch.ts_nsec(i), batch.wire_len(i),
                               batch.data(i))
            if text is None:
                return i
            out.append(text)
            i += 1
        return n

    def format_list(self, packets: list[RawPacket], first: int, out: list[str]) -> int:
        """``format_batch`` for a list of packets (a pcapng file's, read a buffer at a
        time): Ethernet packets of the common shape, each interface's or not."""
        n = len(packets)
        i = first
        while i < n:
            raw = packets[i]
            if raw.linktype != 1:
                return i
            text = self.format(raw.ts_sec, raw.ts_nsec, raw.wire_len, raw.data)
            if text is None:
                return i
            out.append(text)
            i += 1
        return n

    def _ip_verbose(self, data: bytes, total: int, frag: int, proto: int) -> str:
        tos = data[15]
        parts = ["IP ", tos_text(tos), ", ttl ", str(data[22]), ", id ",
                 str(_u16(data, 18)), ", offset 0, flags [", "DF" if frag else "none",
                 "], proto ", _PROTO_V[proto], ", length ", str(total)]
        if not self.K:
            parts.append(ip_cksum_text(_u16(data, 24), verify(data[14:34])))
        parts.append(")\n    ")
        return "".join(parts)

    def _endpoints(self, cache: dict[bytes, str], data: bytes, off: int, addr_len: int,
                   tcp: bool) -> str:
        """"src.sport > dst.dport: " from one cache lookup per packet."""
        src = off - 2 * addr_len
        key = data[src:off + 4]
        text = cache.get(key)
        if text is None:
            names = self.names
            port = names.tcp_port if tcp else names.udp_port
            text = "".join((names.ip(data[src:src + addr_len]), ".", port(_u16(data, off)),
                            " > ", names.ip(data[src + addr_len:off]), ".",
                            port(_u16(data, off + 2)), ": "))
            if len(cache) >= _MAX_ENDPOINTS:
                cache.clear()
            cache[key] = text
        return text

    def _tcp(self, data: bytes, off: int, length: int, addr_len: int) -> str | None:
        """print-tcp.c tcp_print for a whole, well-formed segment."""
        if length < 20:
            return None
        hlen = (data[off + 12] >> 4) * 4
        flags = data[off + 13]
        if hlen < 20 or hlen > length or data[off + 12] & 0x0F:
            return None  # the full printer shows these (and the reserved bits)
        v = self.v
        if flags & 4 and v and length > hlen:
            return None  # an RST's text: the full printer shows it
        options = ""
        if hlen > 20:
            found = simple_options(data, off + 20, off + hlen)
            if found is None:
                return None
            options = found
        # Printed here from now on, so the relative-sequence table may change.
        parts = [self._endpoints(self.tcp_ends, data, off, addr_len, True), "Flags [",
                 FLAG_STRINGS[flags], "]"]
        seq = _u32(data, off + 4)
        ack = _u32(data, off + 8)
        if flags & 0x10 and not self.S:
            seq, ack, _, _, _ = relative_numbers(
                self.isn, data[off - 2 * addr_len:off - addr_len], data[off - addr_len:off],
                _u16(data, off), _u16(data, off + 2), seq, ack, flags)
        if v and not self.K:
            src_addr = data[off - 2 * addr_len:off - addr_len]
            computed = verify(data[off:off + length],
                              pseudo_sum(src_addr, data[off - addr_len:off], 6, length))
            parts.append(tcp_cksum_text(_u16(data, off + 16), computed))
        data_len = length - hlen
        if data_len > 0 or flags & 7:
            parts.append(seq_text(seq, data_len))
        if flags & 0x10:
            parts += (", ack ", str(ack))
        parts += (", win ", str(_u16(data, off + 14)))
        if flags & 0x20:
            parts += (", urg ", str(_u16(data, off + 18)))
        parts += (options, ", length ", str(data_len))
        return "".join(parts)

    def _udp(self, data: bytes, off: int, length: int, addr_len: int) -> str | None:
        """print-udp.c udp_print for a whole datagram whose length field is right."""
        if length < 8 or _u16(data, off + 4) != length:
            return None
        text = self._endpoints(self.udp_ends, data, off, addr_len, False)
        v = self.v
        if v and not self.K and (addr_len == 16 or v > 1):
            cksum = _u16(data, off + 6)
            if addr_len == 4 and cksum == 0:
                text += "[no cksum] "
            else:
                text += udp_cksum_text(cksum, verify(
                    data[off:off + length],
                    pseudo_sum(data[off - 2 * addr_len:off - addr_len],
                               data[off - addr_len:off], 17, length)))
        return "".join((text, "UDP, length ", str(length - 8)))


def _ip6_verbose(data: bytes, length: int, proto: int) -> str:
    tclass = (_u16(data, 14) >> 4) & 0xFF
    flow = ((data[15] & 0x0F) << 16) | _u16(data, 16)
    return "IP6 " + ip6_head_text(tclass, flow, data[21], _PROTO_V[proto], length)
