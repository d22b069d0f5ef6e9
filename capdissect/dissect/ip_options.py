"""IPv4 options (RFC 791 §3.1): walked once, each option kept as a record.

``parse_ip_options`` walks the option area the way tcpdump's ip_optprint does and never
raises: a bad length or the end of the capture stops the walk and is reported in
``problem``, with the option it stopped at in ``broken``.  ``DECODERS`` (code ->
decoder) turns a whole option's data into a typed record for the options whose fields
anyone prints: the routes, the timestamp and the router alert.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, NamedTuple, TypeAlias

EOL: Final = 0
NOP: Final = 1
RR: Final = 7  # record route
TRACEROUTE: Final = 82  # RFC 1393
TIMESTAMP: Final = 68
SECURITY: Final = 130  # RFC 1108
LSRR: Final = 131  # loose source and record route
SSRR: Final = 137  # strict source and record route
RA: Final = 148  # router alert, RFC 2113

# Problems that stop the walk.
BAD: Final = "bad"  # a length below 2 or past the option area: tcpdump's [bad length N]
TRUNCATED: Final = "truncated"  # an option's data runs past the capture: [truncated-option]
CUT: Final = "cut"  # the capture ends before an option's type or length byte: [|ip]

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")


class Route(NamedTuple):
    """RR, LSRR and SSRR (RFC 791 §3.1): a pointer and the route's addresses.

    *ragged* is True when the length leaves a part of an address after the whole ones
    (a length that is not 3 plus a multiple of 4).
    """

    pointer: int  # as sent: 1-based, counted from the type byte
    addresses: tuple[bytes, ...]  # packed, 4 bytes each
    ragged: bool


class TimestampEntry(NamedTuple):
    address: bytes | None  # packed; None for the timestamps-only form (flag 0)
    stamp: int


class Timestamp(NamedTuple):
    """The Internet Timestamp option (RFC 791 §3.1): pointer, overflow and flag, entries.

    An entry is 4 bytes (flag 0) or 8 (any other flag: address then timestamp); *ragged*
    is True when the length leaves a part of an entry after the whole ones.
    """

    pointer: int  # as sent: 1-based, counted from the type byte
    overflow: int  # the high nibble: hops that could not record
    flag: int  # the low nibble: 0 timestamps only, 1 with addresses, 3 prespecified
    entries: tuple[TimestampEntry, ...]
    ragged: bool

    @property
    def entry_len(self) -> int:
        return 4 if self.flag == 0 else 8


class RouterAlert(NamedTuple):
    """RFC 2113 §2.1: a 16-bit value (0: examine the packet)."""

    value: int


IpOptionValue: TypeAlias = Route | Timestamp | RouterAlert


class IpOption(NamedTuple):
    code: int
    offset: int  # where the type byte is in the packet
    length: int | None  # the length byte (1 for EOL and NOP); None when not captured
    data: bytes  # the captured bytes after type and length (short only if TRUNCATED)
    value: IpOptionValue | None  # DECODERS' record; None without a decoder or enough data


class IpOptions(NamedTuple):
    items: tuple[IpOption, ...]  # the whole options, in order; an EOL is the last
    problem: str | None  # BAD, TRUNCATED or CUT when the walk stopped early
    broken: IpOption | None  # the option the walk stopped at (None with CUT before a type byte)


def _route(data: bytes) -> Route | None:
    if not data:  # length 2: not even the pointer
        return None
    count = (len(data) - 1) // 4
    addresses = tuple(data[1 + 4 * i : 5 + 4 * i] for i in range(count))
    return Route(data[0], addresses, (len(data) - 1) % 4 != 0)


def _timestamp(data: bytes) -> Timestamp | None:
    if len(data) < 2:  # length below 4: no pointer and flag byte
        return None
    overflow, flag = data[1] >> 4, data[1] & 0xF
    size = 4 if flag == 0 else 8
    entries = []
    for pos in range(2, len(data) - size + 1, size):
        address = None if size == 4 else data[pos : pos + 4]
        entries.append(TimestampEntry(address, _U32.unpack_from(data, pos + size - 4)[0]))
    return Timestamp(data[0], overflow, flag, tuple(entries), (len(data) - 2) % size != 0)


def _router_alert(data: bytes) -> RouterAlert | None:
    return RouterAlert(_U16.unpack_from(data)[0]) if len(data) >= 2 else None


DECODERS: Final[Mapping[int, Callable[[bytes], IpOptionValue | None]]] = MappingProxyType({
    RR: _route,
    LSRR: _route,
    SSRR: _route,
    TIMESTAMP: _timestamp,
    RA: _router_alert,
})


def parse_ip_options(buf: bytes, start: int, end: int, caplen: int | None = None) -> IpOptions:
    """Walk the options in ``buf[start:end]`` (the header after its fixed 20 bytes).

    *end* is the header end, which may lie past *caplen*, where the capture ends.  A
    length byte is read wherever the capture has it, even past *end*, as tcpdump does
    (the option is then BAD).
    """
    if caplen is None:
        caplen = len(buf)
    items: list[IpOption] = []
    pos = start
    while pos < end:
        if pos >= caplen:
            return IpOptions(tuple(items), CUT, None)
        code = buf[pos]
        if code in (EOL, NOP):
            items.append(IpOption(code, pos, 1, b"", None))
            if code == EOL:
                break
            pos += 1
            continue
        if pos + 1 >= caplen:
            return IpOptions(tuple(items), CUT, IpOption(code, pos, None, b"", None))
        length = buf[pos + 1]
        if length < 2 or length > end - pos:
            return IpOptions(tuple(items), BAD, IpOption(code, pos, length, b"", None))
        data = buf[pos + 2 : min(pos + length, caplen)]
        if len(data) < length - 2:
            return IpOptions(tuple(items), TRUNCATED, IpOption(code, pos, length, data, None))
        decoder = DECODERS.get(code)
        items.append(IpOption(code, pos, length, data, None if decoder is None else decoder(data)))
        pos += length
    return IpOptions(tuple(items), None, None)


def source_route_destination(options: IpOptions) -> bytes | None:
    """The last 4 bytes of the first whole loose or strict source route of 7 bytes or
    more: the final destination a sender puts in the pseudo-header (RFC 1122 §4.1.3.3,
    as tcpdump's ip_finddst), or None without such a route."""
    for option in options.items:
        if option.code in (LSRR, SSRR) and option.length is not None and option.length >= 7:
            return option.data[-4:]
    return None
