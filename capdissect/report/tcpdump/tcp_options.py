"""TCP options exactly as tcpdump's print-tcp.c prints them.

The dissector (``dissect.tcp_options``) walks options the way RFC 9293 says, by each
option's length byte.  tcpdump walks them its own way, and the difference shows on
malformed options: for a kind with fixed-size data (mss, TS, ...) it reads that size
whatever the length byte says, advances by it, and then prints ``[len N]``.  To print
what tcpdump prints, this module walks the raw bytes with tcpdump's rules.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from capdissect.report.tcpdump.fast import simple_options
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
_U32X2: Final = struct.Struct("!II")


def _uto(data: bytes) -> str:
    value = int.from_bytes(data[:2], "big")
    # RFC 5482 §2: the G bit says minutes (1) or seconds (0).
    return f" 0x{value:x} {(value >> 1) * 60 if value & 1 else value >> 1}"


# kind -> (data length, render): options whose data has a fixed size.
FIXED: Final[dict[int, tuple[int, Callable[[bytes], str]]]] = {
    2: (2, lambda d: f" {(d[0] << 8) | d[1]}"),
    3: (1, lambda d: f" {d[0]}"),
    8: (8, lambda d: " val {} ecr {}".format(*_U32X2.unpack_from(d))),
    6: (4, lambda d: f" {int.from_bytes(d[:4], 'big')}"),
    7: (4, lambda d: f" {int.from_bytes(d[:4], 'big')}"),
    11: (4, lambda d: f" {int.from_bytes(d[:4], 'big')}"),
    12: (4, lambda d: f" {int.from_bytes(d[:4], 'big')}"),
    13: (4, lambda d: f" {int.from_bytes(d[:4], 'big')}"),
    # Without a secret (-M) tcpdump cannot check the RFC 2385 digest and says so.
    19: (16, lambda d: " shared secret not supplied with -M, can't check - " + d[:16].hex()),
    20: (2, lambda d: f" cap {d[0]:02x} id {d[1]}"),
    28: (2, _uto),
}


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

    def hex_bytes(self, start: int, count: int) -> str | None:
        """Print data bytes one at a time, each checked: partial output, then the problem."""
        for i in range(start, count):
            status = self.need(i + 1)
            if status:
                return status
            self.out.append(f"{self.buf[self.pos + i]:02x}")
        return None


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
    buf = walk.buf
    fixed = FIXED.get(kind)
    if fixed is not None:
        datalen, render = fixed
        status = walk.need(datalen)
        if status is None:
            out.append(render(buf[walk.pos : walk.pos + datalen]))
        return datalen, status
    if kind in (0, 1, 4):
        return 0, None
    datalen = opt_len - 2
    if kind == 5:
        return datalen, _sack(walk, datalen, sack_base)
    if kind == 29:
        return datalen, _tcp_ao(walk, datalen)
    if kind == 30:
        status = walk.need(datalen)
        if status:
            return datalen, status
        walk.proto = "mptcp"
        # Imported at the first MPTCP option, not at start-up (its decoder is large).
        from capdissect.report.tcpdump.mptcp import render_mptcp

        text, accepted = render_mptcp(buf[walk.pos - 2 : walk.pos + datalen], flags, addr)
        out.append(text)
        return datalen, None if accepted else BAD
    if kind in (34, 254):
        status = walk.need(datalen)
        if status:
            return datalen, status
        data = buf[walk.pos : walk.pos + datalen]
        if kind == 34:
            out.append(" " + _fastopen(data, experimental=False))
        elif datalen < 2:
            return datalen, BAD
        elif data[:2] == b"\xf9\x89":  # TCP Fast Open's experimental ExID (RFC 7413 §4.1.1)
            out.append("-" + _fastopen(data[2:], experimental=True))
        else:
            out.append(f"-{data[:2].hex()}")
        return datalen, None
    if datalen:
        out.append(" 0x")
    return datalen, walk.hex_bytes(0, datalen)


def _sack(walk: _Walk, datalen: int, base: int) -> str | None:
    """SACK blocks (RFC 2018), relative to the peer's initial sequence number."""
    if datalen % 8:
        walk.out.append(" invalid sack")
        return None
    walk.out.append(f" {datalen // 8} ")
    for i in range(0, datalen, 8):
        status = walk.need(i + 4) or walk.need(i + 8)
        if status:
            return status
        start, end = _U32X2.unpack_from(walk.buf, walk.pos + i)
        walk.out.append(f"{{{(start - base) & 0xFFFFFFFF}:{(end - base) & 0xFFFFFFFF}}}")
    return None


def _tcp_ao(walk: _Walk, datalen: int) -> str | None:
    """TCP-AO (RFC 5925 §2.2): key id, receive-next key id, then the MAC."""
    if datalen < 2:
        walk.out.append(" (invalid)")
        return None
    for i, label in ((0, " keyid"), (1, " rnextkeyid")):
        status = walk.need(i + 1)
        if status:
            return status
        walk.out.append(f"{label} {walk.buf[walk.pos + i]}")
    if datalen > 2:
        walk.out.append(" mac 0x")
        return walk.hex_bytes(2, datalen)
    return None


def _fastopen(data: bytes, experimental: bool) -> str:
    """TCP Fast Open (RFC 7413 §4.1.1): a cookie request, or a 4-16 byte cookie."""
    prefix = "tfo" if experimental else ""
    if not data:
        return prefix + " cookiereq"
    if len(data) % 2 or len(data) < 4 or len(data) > 16:
        return prefix + " (invalid)"
    return prefix + " cookie " + data.hex()
