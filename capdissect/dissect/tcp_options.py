"""TCP options (RFC 9293 §3.2 and the registries tcpdump names).

``parse_options`` walks the option bytes once and keeps each option's kind, declared
length and captured data; it never raises: a bad length or the end of the capture
stops the walk and is reported in ``problem`` (tcpdump prints ``[bad opt]`` or
``[|tcp]``).

``DECODERS`` is the one table from option kind to decoder, for every kind tcpdump
names (and RFC 6994's two experimental kinds): each turns the option's data into a
small record, which the tcpdump and JSON printers format and the tracker and handout
read.  A decoder takes the first bytes its record needs and ignores any more, as
tcpdump reads a fixed-size option whatever its length byte says; data too short for
the record, or of a kind not in the table, gives ``UnknownOption``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

if TYPE_CHECKING:
    from capdissect.dissect.mptcp import MptcpOption

EOL: Final = 0
NOP: Final = 1
MSS: Final = 2
WSCALE: Final = 3
SACK_PERMITTED: Final = 4
SACK: Final = 5
ECHO: Final = 6
ECHOREPLY: Final = 7
TIMESTAMP: Final = 8
CC: Final = 11
CCNEW: Final = 12
CCECHO: Final = 13
MD5: Final = 19
SCPS: Final = 20
UTO: Final = 28
TCP_AO: Final = 29
MPTCP: Final = 30
FASTOPEN: Final = 34
EXPERIMENT1: Final = 253
EXPERIMENT2: Final = 254

# Problems that stop the option walk.
BAD: Final = "bad"  # a length below 2 or past the header: tcpdump prints [bad opt]
TRUNCATED: Final = "truncated"  # an option's data runs past the capture: [|tcp]
CUT: Final = "cut"  # the capture ends before an option's kind or length byte


class TcpOption(NamedTuple):
    kind: int
    length: int  # the length byte (1 for EOL and NOP)
    data: bytes  # captured data after kind and length (may be short if TRUNCATED)
    room: int  # header bytes left after the kind and length bytes


class Options(NamedTuple):
    items: tuple[TcpOption, ...]
    problem: str | None


_NOP_NOP_TS: Final = bytes([NOP, NOP, TIMESTAMP, 10])
_NOP_11: Final = TcpOption(NOP, 1, b"", 11)
_NOP_10: Final = TcpOption(NOP, 1, b"", 10)


def parse_options(buf: bytes, start: int, end: int, caplen: int | None = None) -> Options:
    """Walk the options in ``buf[start:end]``.

    *end* is the header end, which may lie past *caplen*, where the capture ends.
    """
    if caplen is None:
        caplen = len(buf)
    if end - start == 12 and end <= caplen and buf[start : start + 4] == _NOP_NOP_TS:
        # Nearly every segment of a Linux connection carries exactly this layout
        # (RFC 7323 Appendix A); decoding it in one step halves the option cost.
        timestamps = _new_tuple(TcpOption, (TIMESTAMP, 10, buf[start + 4 : end], 10))
        return _new_tuple(Options, ((_NOP_11, _NOP_10, timestamps), None))
    items: list[TcpOption] = []
    pos = start
    while pos < end:
        if pos >= caplen:
            return _new_tuple(Options, (tuple(items), CUT))
        kind = buf[pos]
        if kind in (EOL, NOP):
            items.append(_new_tuple(TcpOption, (kind, 1, b"", end - pos - 1)))
            pos += 1
            if kind == EOL:
                break
            continue
        if pos + 1 >= caplen:
            return _new_tuple(Options, (tuple(items), CUT))
        length = buf[pos + 1]
        if length < 2 or length > end - pos:
            return _new_tuple(Options, (tuple(items), BAD))
        data = buf[pos + 2 : min(pos + length, caplen)]
        items.append(_new_tuple(TcpOption, (kind, length, data, end - pos - 2)))
        if len(data) < length - 2:
            return _new_tuple(Options, (tuple(items), TRUNCATED))
        pos += length
    return _new_tuple(Options, (tuple(items), None))


# The records, one per kind (RFC 9293 §3.2 and the RFCs named at each).
class EndOfList(NamedTuple):
    pass


class NoOperation(NamedTuple):
    pass


class Mss(NamedTuple):
    value: int


class WindowScale(NamedTuple):
    shift: int  # RFC 7323 §2.3: a shift above 14 is used as 14


class SackPermitted(NamedTuple):
    pass


class Sack(NamedTuple):
    """RFC 2018 §3: left and right edges; a trailing partial block is left out."""

    blocks: tuple[tuple[int, int], ...]


class Echo(NamedTuple):  # RFC 1072 §4.2 (obsolete)
    value: int


class EchoReply(NamedTuple):  # RFC 1072 §4.3 (obsolete)
    value: int


class Timestamps(NamedTuple):
    tsval: int
    tsecr: int


class ConnectionCount(NamedTuple):  # RFC 1644 §3 (T/TCP, historic): cc, ccnew, ccecho
    kind: int
    value: int


class Md5(NamedTuple):  # RFC 2385 §3.0
    digest: bytes


class Scps(NamedTuple):  # SCPS-TP capabilities (CCSDS 714.0-B-2 §3.2.3)
    capabilities: int
    connection_id: int


class UserTimeout(NamedTuple):
    """RFC 5482 §2: the granularity bit G (the high bit; 1: minutes) and 15 bits of
    timeout, kept as the one 16-bit field (tcpdump reads G from the low bit)."""

    field: int

    @property
    def minutes(self) -> bool:
        return bool(self.field & 0x8000)

    @property
    def timeout(self) -> int:
        return self.field & 0x7FFF


class TcpAo(NamedTuple):  # RFC 5925 §2.2
    keyid: int
    rnextkeyid: int
    mac: bytes


class Mptcp(NamedTuple):
    """Multipath TCP (kind 30): the option's length, its subtype (None without a subtype
    byte) and the ``dissect.mptcp`` record."""

    length: int
    subtype: int | None
    record: MptcpOption


class FastOpen(NamedTuple):
    """RFC 7413 §4.1.1: the cookie; empty for a cookie request."""

    cookie: bytes


class Experimental(NamedTuple):
    """RFC 6994 §3: kind 253 or 254, the 16-bit experiment id and the data after it."""

    kind: int
    exid: int
    data: bytes


class UnknownOption(NamedTuple):
    kind: int
    data: bytes


OptionRecord: TypeAlias = (
    EndOfList | NoOperation | Mss | WindowScale | SackPermitted | Sack | Echo | EchoReply
    | Timestamps | ConnectionCount | Md5 | Scps | UserTimeout | TcpAo | Mptcp | FastOpen
    | Experimental | UnknownOption
)

TFO_EXID: Final = 0xF989  # RFC 7413 §4.1.1: Fast Open in an experimental option

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_U32X2: Final = struct.Struct("!II")
_U8X2: Final = struct.Struct("!BB")


def _sack(data: bytes) -> Sack:
    edges = [_U32X2.unpack_from(data, i) for i in range(0, len(data) - 7, 8)]
    return Sack(tuple(edges))


def _mptcp(data: bytes) -> Mptcp:
    # Imported at the first MPTCP option: its records are dataclasses, slow to create,
    # and every command imports this module at start-up.
    from capdissect.dissect.mptcp import parse_mptcp, subtype_of

    option = bytes((MPTCP, len(data) + 2)) + data
    return Mptcp(len(option), subtype_of(option), parse_mptcp(option))


def _experimental(kind: int) -> Callable[[bytes], Experimental]:
    return lambda d: Experimental(kind, _U16.unpack_from(d)[0], d[2:])


# kind -> (data length the record needs, decoder).
DECODERS: Final[Mapping[int, tuple[int, Callable[[bytes], OptionRecord]]]] = MappingProxyType({
    EOL: (0, lambda d: EndOfList()),
    NOP: (0, lambda d: NoOperation()),
    MSS: (2, lambda d: Mss(_U16.unpack_from(d)[0])),
    WSCALE: (1, lambda d: WindowScale(d[0])),
    SACK_PERMITTED: (0, lambda d: SackPermitted()),
    SACK: (8, _sack),
    ECHO: (4, lambda d: Echo(_U32.unpack_from(d)[0])),
    ECHOREPLY: (4, lambda d: EchoReply(_U32.unpack_from(d)[0])),
    TIMESTAMP: (8, lambda d: Timestamps(*_U32X2.unpack_from(d))),
    CC: (4, lambda d: ConnectionCount(CC, _U32.unpack_from(d)[0])),
    CCNEW: (4, lambda d: ConnectionCount(CCNEW, _U32.unpack_from(d)[0])),
    CCECHO: (4, lambda d: ConnectionCount(CCECHO, _U32.unpack_from(d)[0])),
    MD5: (16, lambda d: Md5(d[:16])),
    SCPS: (2, lambda d: Scps(*_U8X2.unpack_from(d))),
    UTO: (2, lambda d: UserTimeout(_U16.unpack_from(d)[0])),
    TCP_AO: (2, lambda d: TcpAo(d[0], d[1], d[2:])),
    MPTCP: (0, _mptcp),
    FASTOPEN: (0, lambda d: FastOpen(d)),
    EXPERIMENT1: (2, _experimental(EXPERIMENT1)),
    EXPERIMENT2: (2, _experimental(EXPERIMENT2)),
})


def decode(kind: int, data: bytes) -> OptionRecord:
    """The record for option *kind* with *data* (the bytes after kind and length), or
    UnknownOption when the kind is not in DECODERS or the data too short for it."""
    entry = DECODERS.get(kind)
    if entry is not None and len(data) >= entry[0]:
        return entry[1](data)
    return UnknownOption(kind, data)


def decode_option(option: TcpOption) -> OptionRecord:
    """The record for one option of ``parse_options``."""
    return decode(option.kind, option.data)
