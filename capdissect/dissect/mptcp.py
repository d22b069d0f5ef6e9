"""Multipath TCP options (TCP option kind 30): RFC 8684 (MPTCP v1) and RFC 6824 (v0).

``parse_mptcp`` turns one whole option (kind, length and data bytes) into a record per
subtype.  The form of a subtype is chosen by the option length, as both RFCs define it;
the TCP flags that each form belongs with (SYN, SYN/ACK, ACK) are checked by whoever
needs them (the tcpdump printer does, the way print-mptcp.c does).  A length that fits
no form of its subtype gives ``MptcpMalformed``; the decoder never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

# Subtypes: RFC 8684 §7.2, Table 4 (RFC 6824 defined 0-7; v1 added TCPRST).
CAPABLE: Final = 0x0
JOIN: Final = 0x1
DSS: Final = 0x2
ADD_ADDR: Final = 0x3
REMOVE_ADDR: Final = 0x4
PRIO: Final = 0x5
FAIL: Final = 0x6
FAST_CLOSE: Final = 0x7
TCPRST: Final = 0x8

# MP_CAPABLE flags, RFC 8684 §3.1: A = checksum required, H = HMAC-SHA256.
CAPABLE_CHECKSUM: Final = 0x80
# DSS flags, RFC 8684 §3.3 Figure 9: F = DATA_FIN, m = DSN is 8 octets, M = DSN, subflow
# sequence number, data-level length (and checksum) present, a = Data ACK is 8 octets,
# A = Data ACK present.
DSS_FIN: Final = 0x10
DSS_SEQ_8: Final = 0x08
DSS_SEQ: Final = 0x04
DSS_ACK_8: Final = 0x02
DSS_ACK: Final = 0x01
# ADD_ADDR low nibble: the E (echo) bit in v1 (RFC 8684 §3.4.1); in v0 the nibble is the
# IP version, 4 or 6 (RFC 6824 §3.4.1).
ADD_ADDR_ECHO: Final = 0x1

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_U64: Final = struct.Struct("!Q")
_JOIN_SYN: Final = struct.Struct("!BII")  # address id, receiver's token, sender's nonce
_JOIN_SYNACK: Final = struct.Struct("!BQI")  # address id, truncated HMAC, sender's nonce


@dataclass(frozen=True, slots=True)
class MpCapable:
    """RFC 8684 §3.1: length 4 (SYN, v1), 12 (SYN/ACK; v0 SYN), 20 (ACK), 22 or 24 (ACK
    carrying data: data-level length, then the checksum if negotiated)."""

    version: int
    flags: int
    sender_key: int | None
    receiver_key: int | None
    data_len: int | None
    checksum: int | None

    @property
    def checksum_required(self) -> bool:
        return bool(self.flags & CAPABLE_CHECKSUM)


@dataclass(frozen=True, slots=True)
class MpJoinSyn:
    """RFC 8684 §3.2 Figure 5, length 12."""

    backup: bool
    address_id: int
    token: int
    nonce: int


@dataclass(frozen=True, slots=True)
class MpJoinSynAck:
    """RFC 8684 §3.2 Figure 6, length 16: the HMAC is truncated to its leftmost 64 bits."""

    backup: bool
    address_id: int
    hmac: int
    nonce: int


@dataclass(frozen=True, slots=True)
class MpJoinAck:
    """RFC 8684 §3.2 Figure 7, length 24: the full 160-bit HMAC."""

    hmac: bytes


@dataclass(frozen=True, slots=True)
class Dss:
    """Data Sequence Signal, RFC 8684 §3.3 Figure 9.

    The flags say which fields follow; fields are decoded in order while bytes remain,
    so a short option keeps the fields before the gap.  *complete* is False when the
    length does not match the flags (too short, or bytes left over).
    """

    flags: int
    data_ack: int | None
    data_seq: int | None
    subflow_seq: int | None
    data_len: int | None
    checksum: int | None  # present only if checksums were negotiated (RFC 8684 §3.3.1)
    complete: bool

    @property
    def fin(self) -> bool:
        return bool(self.flags & DSS_FIN)


@dataclass(frozen=True, slots=True)
class AddAddr:
    """RFC 8684 §3.4.1 Figure 12 (v1) and RFC 6824 §3.4.1 Figure 12 (v0).

    The length tells the family (IPv4: 8, 10, 16, 18; IPv6: 20, 22, 28, 30), whether a
    port follows (the even-plus-two lengths) and whether a 64-bit HMAC ends it (v1
    without echo).  *nibble* is the E bit in v1, the IP version in v0.
    """

    nibble: int
    address_id: int
    address: bytes  # packed, 4 or 16 bytes
    port: int | None
    hmac: int | None

    @property
    def echo(self) -> bool:
        return bool(self.nibble & ADD_ADDR_ECHO)


@dataclass(frozen=True, slots=True)
class RemoveAddr:
    """RFC 8684 §3.4.2: one or more address ids."""

    address_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Prio:
    """MP_PRIO, RFC 8684 §3.3.8 (length 3); RFC 6824 §3.3.8 allowed an address id (4)."""

    backup: bool
    address_id: int | None


@dataclass(frozen=True, slots=True)
class Fail:
    """MP_FAIL, RFC 8684 §3.7: the 64-bit data sequence number of the failure."""

    data_seq: int


@dataclass(frozen=True, slots=True)
class FastClose:
    """MP_FASTCLOSE, RFC 8684 §3.5: the receiver's 64-bit key."""

    key: int


@dataclass(frozen=True, slots=True)
class TcpRst:
    """MP_TCPRST, RFC 8684 §3.6 Figure 15: U V W T flags and a reason code."""

    flags: int
    reason: int


@dataclass(frozen=True, slots=True)
class MptcpUnknown:
    """A subtype neither RFC defines (9 and up; 0xf is for private use)."""

    subtype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MptcpMalformed:
    """A length that fits no form of the subtype (None when there is no subtype byte)."""

    subtype: int | None
    length: int


MptcpOption: TypeAlias = (
    MpCapable | MpJoinSyn | MpJoinSynAck | MpJoinAck | Dss | AddAddr | RemoveAddr | Prio
    | Fail | FastClose | TcpRst | MptcpUnknown | MptcpMalformed
)


def _capable(opt: bytes) -> MpCapable | None:
    n = len(opt)
    if n not in (4, 12, 20, 22, 24):
        return None
    return MpCapable(
        version=opt[2] & 0x0F,
        flags=opt[3],
        sender_key=_U64.unpack_from(opt, 4)[0] if n >= 12 else None,
        receiver_key=_U64.unpack_from(opt, 12)[0] if n >= 20 else None,
        data_len=_U16.unpack_from(opt, 20)[0] if n >= 22 else None,
        checksum=_U16.unpack_from(opt, 22)[0] if n >= 24 else None,
    )


def _join(opt: bytes) -> MpJoinSyn | MpJoinSynAck | MpJoinAck | None:
    n = len(opt)
    backup = bool(opt[2] & 0x01)  # B: the subflow is a backup path
    if n == 12:
        return MpJoinSyn(backup, *_JOIN_SYN.unpack_from(opt, 3))
    if n == 16:
        return MpJoinSynAck(backup, *_JOIN_SYNACK.unpack_from(opt, 3))
    if n == 24:
        return MpJoinAck(bytes(opt[4:24]))
    return None


def _dss(opt: bytes) -> Dss | None:
    if len(opt) < 4:
        return None
    flags = opt[3]
    pos = 4
    end = len(opt)

    def take(size: int) -> int | None:
        nonlocal pos
        if end - pos < size:
            return None
        value = int.from_bytes(opt[pos : pos + size], "big")
        pos += size
        return value

    ack = seq = subseq = data_len = checksum = None
    short = False
    if flags & DSS_ACK:
        ack = take(8 if flags & DSS_ACK_8 else 4)
        short = ack is None
    if not short and flags & DSS_SEQ:
        seq = take(8 if flags & DSS_SEQ_8 else 4)
        subseq = take(4) if seq is not None else None
        data_len = take(2) if subseq is not None else None
        short = data_len is None
        if not short:
            checksum = take(2)  # only when negotiated: the length tells
    return Dss(flags, ack, seq, subseq, data_len, checksum, not short and pos == end)


def _add_addr(opt: bytes) -> AddAddr | None:
    n = len(opt)
    if n in (8, 10, 16, 18):
        addr_end = 8
    elif n in (20, 22, 28, 30):
        addr_end = 20
    else:
        return None
    has_port = n - addr_end in (2, 10)
    hmac_at = addr_end + (2 if has_port else 0)
    return AddAddr(
        nibble=opt[2] & 0x0F,
        address_id=opt[3],
        address=bytes(opt[4:addr_end]),
        port=_U16.unpack_from(opt, addr_end)[0] if has_port else None,
        hmac=_U64.unpack_from(opt, hmac_at)[0] if n - hmac_at == 8 else None,
    )


def _remove_addr(opt: bytes) -> RemoveAddr | None:
    return RemoveAddr(tuple(opt[3:])) if len(opt) >= 4 else None


def _prio(opt: bytes) -> Prio | None:
    if len(opt) not in (3, 4):
        return None
    return Prio(bool(opt[2] & 0x01), opt[3] if len(opt) == 4 else None)


def _fail(opt: bytes) -> Fail | None:
    return Fail(_U64.unpack_from(opt, 4)[0]) if len(opt) == 12 else None


def _fast_close(opt: bytes) -> FastClose | None:
    return FastClose(_U64.unpack_from(opt, 4)[0]) if len(opt) == 12 else None


def _tcprst(opt: bytes) -> TcpRst | None:
    return TcpRst(opt[2] & 0x0F, opt[3]) if len(opt) == 4 else None


# Subtype -> decoder; a decoder returns None when the length fits none of its forms.
DECODERS: Final[Mapping[int, Callable[[bytes], MptcpOption | None]]] = MappingProxyType({
    CAPABLE: _capable,
    JOIN: _join,
    DSS: _dss,
    ADD_ADDR: _add_addr,
    REMOVE_ADDR: _remove_addr,
    PRIO: _prio,
    FAIL: _fail,
    FAST_CLOSE: _fast_close,
    TCPRST: _tcprst,
})


def subtype_of(option: bytes) -> int | None:
    """The subtype (high nibble of the third byte, RFC 8684 §3), None if there is none."""
    return option[2] >> 4 if len(option) >= 3 else None


def parse_mptcp(option: bytes) -> MptcpOption:
    """Decode one whole MPTCP option: kind, length and data, all ``len(option)`` bytes."""
    subtype = subtype_of(option)
    if subtype is None:
        return MptcpMalformed(None, len(option))
    decoder = DECODERS.get(subtype)
    if decoder is None:
        return MptcpUnknown(subtype, bytes(option[3:]))
    record = decoder(option)
    return record if record is not None else MptcpMalformed(subtype, len(option))
