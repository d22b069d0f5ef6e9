"""TCP options (RFC 9293 §3.2 and the registries tcpdump names).

``parse_options`` walks the option bytes once and keeps each option's kind, declared
length and captured data; it never raises: a bad length or the end of the capture
stops the walk and is reported in ``problem`` (tcpdump prints ``[bad opt]`` or
``[|tcp]``).  ``DECODERS`` turns an option into a typed record for the tracker.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, NamedTuple

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
        return Options((_NOP_11, _NOP_10, TcpOption(TIMESTAMP, 10, buf[start + 4 : end], 10)),
                       None)
    items: list[TcpOption] = []
    pos = start
    while pos < end:
        if pos >= caplen:
            return Options(tuple(items), CUT)
        kind = buf[pos]
        if kind in (EOL, NOP):
            items.append(TcpOption(kind, 1, b"", end - pos - 1))
            pos += 1
            if kind == EOL:
                break
            continue
        if pos + 1 >= caplen:
            return Options(tuple(items), CUT)
        length = buf[pos + 1]
        if length < 2 or length > end - pos:
            return Options(tuple(items), BAD)
        data = buf[pos + 2 : min(pos + length, caplen)]
        items.append(TcpOption(kind, length, data, end - pos - 2))
        if len(data) < length - 2:
            return Options(tuple(items), TRUNCATED)
        pos += length
    return Options(tuple(items), None)


# Typed views for the tracker and JSON output.
class Mss(NamedTuple):
    value: int


class WindowScale(NamedTuple):
    shift: int


class SackPermitted(NamedTuple):
    pass


class Sack(NamedTuple):
    blocks: tuple[tuple[int, int], ...]


class Timestamps(NamedTuple):
    tsval: int
    tsecr: int


class UnknownOption(NamedTuple):
    kind: int
    data: bytes


def _sack(data: bytes) -> Sack:
    n = len(data) // 8
    vals = struct.unpack_from(f"!{2 * n}I", data)
    return Sack(tuple(zip(vals[::2], vals[1::2], strict=True)))


DECODERS: Final[dict[int, tuple[int, Callable[[bytes], object]]]] = {
    # kind: (data length it needs, decoder)
    MSS: (2, lambda d: Mss(struct.unpack_from("!H", d)[0])),
    WSCALE: (1, lambda d: WindowScale(d[0])),
    SACK_PERMITTED: (0, lambda d: SackPermitted()),
    SACK: (8, _sack),
    TIMESTAMP: (8, lambda d: Timestamps(*struct.unpack_from("!II", d))),
}


def decode_option(option: TcpOption) -> object:
    """A typed record for *option*, or UnknownOption when it is unknown or too short."""
    entry = DECODERS.get(option.kind)
    if entry is not None and len(option.data) >= entry[0]:
        return entry[1](option.data)
    return UnknownOption(option.kind, option.data)
