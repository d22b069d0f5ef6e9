"""TCP options exactly as tcpdump's print-tcp.c prints them.

The dissector (``dissect.tcp_options``) walks options the way RFC 9293 says, by each
option's length byte.  tcpdump walks them its own way, and the difference shows on
malformed options: for a kind with fixed-size data (mss, TS, ...) it reads that size
whatever the length byte says, advances by it, and then prints ``[len N]``.  So this
module keeps tcpdump's walk, but the data of each option is decoded by the dissector's
table (``decode``) and only the record is formatted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from capdissect.dissect import tcp_options as opts
from capdissect.report.tcpdump.fast import add_mss, add_ts, add_wscale, simple_options
from capdissect.report.tcpdump.frame import Cut

if TYPE_CHECKING:
    from capdissect.report.tcpdump.mptcp import AddressNamer

BAD: Final = "bad"  # print-tcp.c "goto bad": [bad opt]
TRUNC: Final = "trunc"  # "goto trunc": [|tcp]

NAMES: Final = {
    0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo",
    7: "echoreply", 8: "TS", 11: "cc", 12: "ccnew", 13: "", 19: "md5", 20: "scps", 28: "uto",
    29: "tcp-ao", 30: "mptcp", 34: "tfo", 254: "exp",
}
# Kinds whose data tcpdump reads at the size the record needs, whatever the length byte.
FIXED_SIZE: Final = frozenset((opts.MSS, opts.WSCALE, opts.TIMESTAMP, opts.ECHO,
                               opts.ECHOREPLY, opts.CC, opts.CCNEW, opts.CCECHO, opts.MD5,
                               opts.SCPS, opts.UTO))


def record_text(record: opts.OptionRecord) -> str:
    """What tcpdump prints after the name of a whole, captured option (SACK, TCP-AO and
    MPTCP have their own printers: they depend on more than the record)."""
    parts: list[str] = []
    match record:
        case opts.Mss(value):
            add_mss(parts, value)
            return "".join(parts)
        case opts.WindowScale(shift):
            add_wscale(parts, shift)
            return "".join(parts)
        case opts.Timestamps(tsval, tsecr):
            add_ts(parts, tsval, tsecr)
            return "".join(parts)
        case opts.Echo(value) | opts.EchoReply(value) | opts.ConnectionCount(_, value):
            return f" {value}"
        case opts.Md5(digest):
            # Without a secret (-M) tcpdump cannot check the RFC 2385 digest and says so.
            return " shared secret not supplied with -M, can't check - " + digest.hex()
        case opts.Scps(capabilities, connection_id):
            return f" cap {capabilities:02x} id {connection_id}"
        case opts.UserTimeout(field):
            # tcpdump takes the granularity from the low bit (RFC 5482 §2 puts it high).
            return f" 0x{field:x} {(field >> 1) * 60 if field & 1 else field >> 1}"
        case opts.FastOpen(cookie):
            return " " + _fastopen(cookie, experimental=False)
        case opts.Experimental(_, exid, data):
            return "-" + _fastopen(data, experimental=True) if exid == opts.TFO_EXID \
                else f"-{exid:04x}"
    return ""


class _Walk:
    """The cursor of tcpdump's option loop: where we are, header bytes left, capture end."""

    __slots__ = ("buf", "end", "left", "out", "pos", "proto")

    def __init__(self, buf: bytes, pos: int, left: int, end: int, out: list[str]) -> None:
        self.buf = buf
        self.pos = pos
        self.left = left
        self.end = end
        self.out = out
        # tcpdump's ndo_protocol: after an MPTCP option, truncation says [|mptcp].
        self.proto = "tcp"

    def need(self, n: int) -> str | None:
        """print-tcp.c LENCHECK: *n* data bytes must fit the header, then the capture."""
        if n > self.left:
            return BAD
        if self.pos + n > self.end:
            return TRUNC
        return None

    def byte(self) -> int:
        """A GET_U_1 read: past the capture, tcpdump jumps out of the whole packet."""
        if self.pos >= self.end:
            raise Cut(self.proto)
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def data(self, n: int) -> bytes:
        """The captured part of the next *n* bytes."""
        return self.buf[self.pos : min(self.pos + n, self.end)]


def print_options(out: list[str], buf: bytes, pos: int, length: int, end: int, flags: int,
                  sack_base: int, addr: AddressNamer) -> bool:
    """Append ``, options [...]``; False when tcpdump stopped printing the segment there.

    *sack_base* is the sequence base SACK blocks are printed relative to (0 with -S);
    *addr* names the addresses MPTCP's ADD_ADDR carries.
    """
    if pos + length <= end:
        simple = simple_options(buf, pos, pos + length)
        if simple is not None:
            out.append(simple)
            return True
    out.append(", options [")
    walk = _Walk(buf, pos, length, end, out)
    sep = ""
    while walk.left > 0:
        out.append(sep)
        kind = walk.byte()
        if kind in (0, 1):
            opt_len = 1
        else:
            opt_len = walk.byte()
            if opt_len < 2 or opt_len > walk.left:
                return _stop(walk, BAD, sep)
            walk.left -= 1
        walk.left -= 1
        name = NAMES.get(kind)
        out.append(name if name is not None else f"unknown-{kind}")
        datalen, status = _option_data(walk, kind, opt_len, flags, sack_base, addr)
        if status:
            return _stop(walk, status, sep)
        walk.pos += datalen
        walk.left -= datalen
        if datalen + (1 if kind in (0, 1) else 2) != opt_len:
            out.append(f"[len {opt_len}]")
        sep = ","
        if kind == 0:
            break
    out.append("]")
    return True


def _stop(walk: _Walk, status: str, sep: str) -> bool:
    out = walk.out
    if status == BAD:
        out.append("[bad opt]")
        if sep:
            out.append("]")
    else:
        out.append(f" [|{walk.proto}]")
        if sep:
            out.append(">")
    return False


def _option_data(walk: _Walk, kind: int, opt_len: int, flags: int, sack_base: int,
                 addr: AddressNamer) -> tuple[int, str | None]:
    """Print one option's data; return how much data tcpdump consumed and any problem."""
    out = walk.out
    if kind in FIXED_SIZE:
        datalen = opts.DECODERS[kind][0]
        status = walk.need(datalen)
        if status is None:
            out.append(record_text(opts.decode(kind, walk.data(datalen))))
        return datalen, status
    if kind in (0, 1, 4):
        return 0, None
    datalen = opt_len - 2
    if kind == opts.SACK:
        return datalen, _sack(walk, datalen, sack_base)
    if kind == opts.TCP_AO:
        return datalen, _tcp_ao(walk, datalen)
    if kind in (opts.MPTCP, opts.FASTOPEN, opts.EXPERIMENT2):
        status = walk.need(datalen)
        if status:
            return datalen, status
        record = opts.decode(kind, walk.data(datalen))
        if isinstance(record, opts.Mptcp):
            walk.proto = "mptcp"
            # Imported at the first MPTCP option, not at start-up (its printer is large).
            from capdissect.report.tcpdump.mptcp import render_mptcp

            text, accepted = render_mptcp(record, flags, addr)
            out.append(text)
            return datalen, None if accepted else BAD
        if not isinstance(record, opts.FastOpen | opts.Experimental):
            return datalen, BAD  # an experimental option too short for its ExID
        out.append(record_text(record))
        return datalen, None
    data = walk.data(datalen)
    if datalen:
        out.append(" 0x" + data.hex())
    return datalen, None if len(data) == datalen else TRUNC


def _sack(walk: _Walk, datalen: int, base: int) -> str | None:
    """SACK blocks (RFC 2018), relative to the peer's initial sequence number; the
    blocks the capture holds whole, then [|tcp] if it cut the option."""
    if datalen % 8:
        walk.out.append(" invalid sack")
        return None
    walk.out.append(f" {datalen // 8} ")
    data = walk.data(datalen)
    record = opts.decode(opts.SACK, data)
    if isinstance(record, opts.Sack):
        walk.out += (f"{{{(start - base) & 0xFFFFFFFF}:{(end - base) & 0xFFFFFFFF}}}"
                     for start, end in record.blocks)
    return None if len(data) == datalen else TRUNC


def _tcp_ao(walk: _Walk, datalen: int) -> str | None:
    """TCP-AO (RFC 5925 §2.2): key id, receive-next key id, then the MAC; tcpdump
    prints what the capture holds, then [|tcp] if it cut the option."""
    if datalen < 2:
        walk.out.append(" (invalid)")
        return None
    data = walk.data(datalen)
    record = opts.decode(opts.TCP_AO, data)
    if isinstance(record, opts.TcpAo):
        walk.out.append(f" keyid {record.keyid} rnextkeyid {record.rnextkeyid}")
        if datalen > 2:
            walk.out.append(" mac 0x" + record.mac.hex())
    elif data:
        walk.out.append(f" keyid {data[0]}")
    return None if len(data) == datalen else TRUNC


def _fastopen(cookie: bytes, experimental: bool) -> str:
    """TCP Fast Open (RFC 7413 §4.1.1): a cookie request, or a 4-16 byte cookie."""
    prefix = "tfo" if experimental else ""
    if not cookie:
        return prefix + " cookiereq"
    if len(cookie) % 2 or len(cookie) < 4 or len(cookie) > 16:
        return prefix + " (invalid)"
    return prefix + " cookie " + cookie.hex()
