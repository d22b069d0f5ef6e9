"""MPTCP options (RFC 8684, RFC 6824) as tcpdump 4.99.3's print-mptcp.c prints them.

The option is decoded by ``capdissect.dissect.mptcp``; this module adds what tcpdump
checks on top of the RFC forms (which TCP flags each form may come with) and its wording.
tcpdump prints as it goes and may reject the option half-way (``mptcp 8 dss ack [bad
opt]``), so ``render_mptcp`` returns the text printed so far together with whether the
option was accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

from capdissect.addresses import text as address_text
from capdissect.dissect import mptcp as mp
from capdissect.dissect.tcp import ACK, SYN
from capdissect.dissect.tcp_options import Mptcp

# Subtype names, by subtype; tcpdump 4.99.3 predates MP_TCPRST (RFC 8684 §3.6) and
# calls subtype 8 and up "unknown".
SUBTYPE_NAMES: Final = (
    "capable", "join", "dss", "add-addr", "rem-addr", "prio", "fail", "fast-close",
)
# ADD_ADDR's low nibble: the IP version in v0 (RFC 6824), the echo bit in v1 (RFC 8684).
ADD_ADDR_NIBBLE_NAMES: Final = {0x6: "v0-ip6", 0x4: "v0-ip4", 0x1: "v1-echo", 0x0: "v1"}

AddressNamer: TypeAlias = Callable[[bytes], str]
# What a subtype printer returns: the text, and False when tcpdump goes on to "[bad opt]".
Rendered: TypeAlias = tuple[str, bool]




def _capable(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    # SYN and SYN/ACK carry 4 or 12 bytes, the third ACK 20 or 22.  tcpdump rejects the
    # 24-byte form with a checksum (RFC 8684 §3.1) and every form on the wrong segment.
    syn_form = n in (4, 12) and flags & SYN
    ack_form = n in (20, 22) and flags & (SYN | ACK) == ACK
    if not isinstance(rec, mp.MpCapable) or not (syn_form or ack_form):
        return "", False
    if rec.version > 1:
        return f" Unknown Version ({rec.version})", True
    text = f" v{rec.version}"
    if rec.checksum_required:
        text += " csum"
    if rec.sender_key is not None:
        text += f" {{0x{rec.sender_key:x}"
        if rec.receiver_key is not None:
            text += f",0x{rec.receiver_key:x}"
        text += "}"
    return text, True


def _join(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    # RFC 8684 §3.2: the 12-byte form goes on a SYN, 16 on a SYN/ACK, 24 on the ACK.
    if isinstance(rec, mp.MpJoinSyn) and flags & SYN:
        head = " backup" if rec.backup else ""
        return f"{head} id {rec.address_id} token 0x{rec.token:x} nonce 0x{rec.nonce:x}", True
    if isinstance(rec, mp.MpJoinSynAck) and flags & (SYN | ACK) == SYN | ACK:
        head = " backup" if rec.backup else ""
        return f"{head} id {rec.address_id} hmac 0x{rec.hmac:x} nonce 0x{rec.nonce:x}", True
    if isinstance(rec, mp.MpJoinAck) and flags & ACK:
        return f" hmac 0x{rec.hmac.hex()}", True
    return "", False


def _dss(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    # A DSS never rides on a SYN (RFC 8684 §3.3).  tcpdump prints each field's label
    # before it checks that the field fits, so a short option shows "ack " or "seq ".
    if not isinstance(rec, mp.Dss) or flags & SYN:
        return "", False
    text = " fin" if rec.fin else ""
    if rec.flags & mp.DSS_ACK:
        text += " ack "
        if rec.data_ack is None:
            return text, False
        text += str(rec.data_ack)
    if rec.flags & mp.DSS_SEQ:
        text += " seq "
        if rec.data_seq is None:
            return text, False
        text += str(rec.data_seq)
        if rec.subflow_seq is None:
            return text, False
        text += f" subseq {rec.subflow_seq}"
        if rec.data_len is None:
            return text, False
        text += f" len {rec.data_len}"
        if rec.checksum is not None:
            text += f" csum 0x{rec.checksum:x}"
    return text, rec.complete


def _add_addr(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    if not isinstance(rec, mp.AddAddr):
        return "", False
    text = (f" {ADD_ADDR_NIBBLE_NAMES.get(rec.nibble, '[bad version/echo]')}"
            f" id {rec.address_id} {addr(rec.address)}")
    if rec.port is not None:
        text += f":{rec.port}"
    if rec.hmac is not None:
        text += f" hmac 0x{rec.hmac:x}"
    return text, True


def _remove_addr(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    if not isinstance(rec, mp.RemoveAddr):
        return "", False
    return " id" + "".join(f" {i}" for i in rec.address_ids), True


def _prio(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    if not isinstance(rec, mp.Prio):
        return "", False
    text = " backup" if rec.backup else " non-backup"
    if rec.address_id is not None:
        text += f" id {rec.address_id}"
    return text, True


def _fail(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    if not isinstance(rec, mp.Fail):
        return "", False
    return f" seq {rec.data_seq}", True


def _fast_close(rec: mp.MptcpOption, n: int, flags: int, addr: AddressNamer) -> Rendered:
    if not isinstance(rec, mp.FastClose):
        return "", False
    return f" key 0x{rec.key:x}", True


PRINTERS: Final[tuple[Callable[[mp.MptcpOption, int, int, AddressNamer], Rendered], ...]] = (
    _capable, _join, _dss, _add_addr, _remove_addr, _prio, _fail, _fast_close,
)


def render_mptcp(option: Mptcp, flags: int,
                 addr: AddressNamer = address_text) -> Rendered:
    """What tcpdump prints after ``mptcp`` for one whole, captured option.

    *flags* is the TCP flags byte; *addr* names ADD_ADDR's address (tcpdump resolves it
    without -n).  The boolean is False when tcpdump prints ``[bad opt]`` after the text.
    """
    n, subtype = option.length, option.subtype
    if subtype is None:
        return "", False
    if subtype >= len(SUBTYPE_NAMES):
        return f" {n} unknown", True
    text, ok = PRINTERS[subtype](option.record, n, flags, addr)
    return f" {n} {SUBTYPE_NAMES[subtype]}{text}", ok
