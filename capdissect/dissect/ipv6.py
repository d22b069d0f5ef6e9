"""IPv6 (RFC 8200): the fixed header and the chain of extension headers."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.errors import Truncated

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

_IPV6: Final = struct.Struct("!IHBB16s16s")  # RFC 8200 §3
_FRAG: Final = struct.Struct("!BBHI")  # RFC 8200 §4.5

HOPOPTS: Final = 0
ROUTING: Final = 43
FRAGMENT: Final = 44
ESP: Final = 50
AH: Final = 51
NONE: Final = 59
DSTOPTS: Final = 60
MOBILITY: Final = 135
MOBILITY_OLD: Final = 62
# Headers with the generic (next header, length in 8-octet units beyond the first 8) shape.
GENERIC_EXTENSIONS: Final = frozenset({HOPOPTS, ROUTING, DSTOPTS})
# The headers a chain walk follows.
WALKED_EXTENSIONS: Final = GENERIC_EXTENSIONS | {FRAGMENT, AH}

# Options of the hop-by-hop and destination headers (IANA "Destination Options and
# Hop-by-Hop Options").
PAD1: Final = 0x00  # RFC 8200 §4.2: the one option without a length byte
PADN: Final = 0x01
ROUTER_ALERT: Final = 0x05  # RFC 2711
JUMBO: Final = 0xC2  # RFC 2675
HOME_ADDRESS: Final = 0xC9  # RFC 6275 §6.3


class IPv6Header(NamedTuple):
    offset: int
    version: int
    traffic_class: int
    flow_label: int
    payload_len: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes

    @property
    def payload_offset(self) -> int:
        return self.offset + 40


class Fragment(NamedTuple):
    """An IPv6 Fragment header (RFC 8200 §4.5)."""

    next_header: int
    frag_offset: int  # bytes
    more: bool
    ident: int


def parse_ipv6(buf: bytes, offset: int, end: int | None = None) -> IPv6Header:
    have = (len(buf) if end is None else end) - offset
    if have < 40:
        raise Truncated("ip6", offset, 40, have)
    vtf, plen, nh, hlim, src, dst = _IPV6.unpack_from(buf, offset)
    return _new_tuple(IPv6Header, (offset, vtf >> 28, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen,
                                   nh, hlim, src, dst))


def parse_fragment(buf: bytes, offset: int, end: int | None = None) -> Fragment:
    have = (len(buf) if end is None else end) - offset
    if have < 8:
        raise Truncated("frag6", offset, 8, have)
    nh, _res, off_flags, ident = _FRAG.unpack_from(buf, offset)
    return Fragment(nh, off_flags & 0xFFF8, bool(off_flags & 1), ident)


def extension_length(buf: bytes, offset: int, kind: int, end: int | None = None) -> int:
    """Length in bytes of the extension header of *kind* at *offset*."""
    if kind == FRAGMENT:
        return 8
    have = (len(buf) if end is None else end) - offset
    if have < 2:
        raise Truncated("ip6", offset, 2, have)
    if kind == AH:
        return (buf[offset + 1] + 2) * 4  # RFC 4302 §2.2: 4-octet units, minus 2
    return (buf[offset + 1] + 1) * 8


class TlvOption(NamedTuple):
    """One option of a hop-by-hop or destination header (or a Home Address sub-option)."""

    kind: int
    offset: int  # where its type byte is
    data: bytes  # the value, as many bytes as the length byte says (none for Pad1)


class TlvOptions(NamedTuple):
    items: tuple[TlvOption, ...]  # the whole options, in order
    broken: int | None  # the type of an option that runs past the area, which ends the walk


def parse_tlv_options(buf: bytes, start: int, end: int) -> TlvOptions:
    """The options in ``buf[start:end]`` (RFC 8200 §4.2: Pad1 is one byte, every other
    option type, length, value).  *end* must not lie past the captured bytes."""
    items: list[TlvOption] = []
    pos = start
    while pos < end:
        kind = buf[pos]
        if kind == PAD1:
            items.append(TlvOption(kind, pos, b""))
            pos += 1
            continue
        if pos + 1 >= end or pos + 2 + buf[pos + 1] > end:
            return TlvOptions(tuple(items), kind)
        stop = pos + 2 + buf[pos + 1]
        items.append(TlvOption(kind, pos, buf[pos + 2 : stop]))
        pos = stop
    return TlvOptions(tuple(items), None)


class Routing(NamedTuple):
    """A Routing header (RFC 8200 §4.4) as far as the capture has it: a field the
    capture cuts off is None, and *type_data* (bytes 4 to 8) may be short."""

    length8: int | None  # Hdr Ext Len: 8-octet units after the first 8
    routing_type: int | None
    segments_left: int | None
    # Type 0 (deprecated, RFC 5095) and 2 (RFC 6275 §6.4): 32 reserved bits.  Type 4
    # (segment routing, RFC 8754 §2): last entry, flags, a 16-bit tag.
    type_data: bytes
    # The whole 16-byte addresses after byte 8 that the header holds and the capture
    # has: types 0 and 2 in visiting order, type 4 the segment list, final one first.
    addresses: tuple[bytes, ...]


def parse_routing(buf: bytes, offset: int, end: int) -> Routing:
    """Decode the Routing header at *offset* up to *end*, where the capture ends."""
    have = end - offset
    length8 = buf[offset + 1] if have > 1 else None
    routing_type = buf[offset + 2] if have > 2 else None
    segments_left = buf[offset + 3] if have > 3 else None
    stop = min(end, offset + 8 + 8 * (length8 or 0))
    addresses = tuple(buf[a : a + 16] for a in range(offset + 8, stop - 15, 16))
    # max(): compiled with mypyc, a slice whose stop is below its start raises instead
    # of giving b"" (the capture may end inside the first four bytes).
    reserved = buf[offset + 4 : max(offset + 4, min(end, offset + 8))]
    return Routing(length8, routing_type, segments_left, reserved, addresses)


class UpperHeader(NamedTuple):
    """Where the extension-header chain of an IPv6 packet ends."""

    proto: int  # the first next-header value that is not an extension header
    offset: int  # where that header starts
    fragment: Fragment | None  # the Fragment header on the way, if any
    # Where that Fragment header starts, and where the Next Header byte naming it is (in
    # the fixed header or the extension before it): reassembly takes the header out.
    fragment_at: int = 0
    names_fragment_at: int = 0


MAX_EXTENSIONS: Final = 32  # a longer chain is treated as malformed (loops, fuzzed input)


class Extension(NamedTuple):
    """One extension header of the chain."""

    kind: int
    offset: int
    next_header: int | None  # None when the capture cuts the header before it is known
    length: int | None  # bytes; None when the capture cuts the header before it is known
    fragment: Fragment | None  # the fields of a Fragment header


class Chain(NamedTuple):
    """The extension headers after an IPv6 header, and where they end."""

    headers: tuple[Extension, ...]  # the whole headers, in order
    upper: UpperHeader | None  # where the chain ends; None with an error
    cut: Extension | None  # a header the capture cuts, which ends the walk
    error: Truncated | None  # why there is no upper header: *cut*, or a chain too long


def parse_chain(buf: bytes, ip6: IPv6Header, end: int) -> Chain:
    """Follow the extension headers after *ip6* up to *end*, keeping each one.

    Stops at a non-first fragment (``upper.proto`` is then the fragment's next header,
    and there is no upper header to read).
    """
    headers: list[Extension] = []
    nh = ip6.next_header
    pos = ip6.offset + 40
    names = ip6.offset + 6  # the Next Header byte that names the header at *pos*
    fragment = None
    at = named_at = 0
    for _ in range(MAX_EXTENSIONS):
        if nh not in WALKED_EXTENSIONS:
            return Chain(tuple(headers), UpperHeader(nh, pos, fragment, at, named_at), None, None)
        if nh == FRAGMENT:
            try:
                fragment = parse_fragment(buf, pos, end)
            except Truncated as error:
                return Chain(tuple(headers), None, Extension(nh, pos, None, None, None), error)
            at, named_at = pos, names
            headers.append(Extension(nh, pos, fragment.next_header, 8, fragment))
            if fragment.frag_offset:
                upper = UpperHeader(fragment.next_header, pos + 8, fragment, at, named_at)
                return Chain(tuple(headers), upper, None, None)
            length = 8
        else:
            try:
                length = extension_length(buf, pos, nh, end)
            except Truncated as error:
                return Chain(tuple(headers), None, Extension(nh, pos, None, None, None), error)
            if pos + length > end:
                cut = Extension(nh, pos, buf[pos], length, None)
                return Chain(tuple(headers), None, cut, Truncated("ip6", pos, length, end - pos))
            headers.append(Extension(nh, pos, buf[pos], length, None))
        nh = buf[pos]
        names = pos
        pos += length
    return Chain(tuple(headers), None, None, Truncated("ip6", pos, 0, 0))


def walk_extensions(buf: bytes, ip6: IPv6Header, end: int) -> UpperHeader:
    """Where the extension headers after *ip6* end (``parse_chain`` without the headers).

    Raises Truncated when a header runs past *end*, or the chain is too long.
    """
    if ip6.next_header not in WALKED_EXTENSIONS:  # most packets: no records to build
        return UpperHeader(ip6.next_header, ip6.offset + 40, None)
    chain = parse_chain(buf, ip6, end)
    if chain.error is not None:
        raise chain.error
    assert chain.upper is not None  # parse_chain gives an upper header or an error
    return chain.upper
