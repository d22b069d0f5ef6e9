"""The classic BPF interpreter (capdissect.dissect.bpf) and the libpcap edge (capture.filter).

Hand-assembled programs pin each instruction's semantics to libpcap's bpf_filter.c, then
programs compiled by libpcap for a few expressions.  The verdicts over real captures
against tcpdump's own are in tests/conformance/test_sources_vs_tcpdump.py.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from capdissect.dissect import bpf
from capdissect.dissect.bpf import (
    ABS,
    ADD,
    ALU,
    AND,
    DIV,
    IMM,
    IND,
    JA,
    JEQ,
    JGE,
    JGT,
    JMP,
    JSET,
    LD,
    LDX,
    LEN,
    LSH,
    MEM,
    MISC,
    MOD,
    MSH,
    MUL,
    NEG,
    OR,
    RET,
    RET_A,
    RSH,
    ST,
    STX,
    SUB,
    TAX,
    TXA,
    XOR,
    B,
    H,
    Program,
    W,
    X,
    validate,
)  # fmt: skip
from capdissect.errors import CaptureError, Malformed
from capdissect.packets import RawPacket
from capdissect.sources.filter import PacketFilter, compile_expression, savefile_header

ACCEPT = (RET, 0, 0, 262144)
REJECT = (RET, 0, 0, 0)
K_ = bpf.K  # the "constant operand" source bit (0), named apart from the X register bit
Insn = tuple[int, int, int, int]


def run(program: Sequence[Insn], data: bytes = b"", wire_len: int | None = None) -> int:
    return Program(program).run(data, len(data) if wire_len is None else wire_len)


def a_equals(value: int) -> list[Insn]:
    """Tail of a test program: return 1 if A == value, else 0 (so any A can be checked)."""
    return [(JMP | JEQ | K_, 0, 1, value), (RET, 0, 0, 1), REJECT]


# ----- hand-assembled programs ---------------------------------------------------------

def test_return_constant_and_accumulator() -> None:
    assert run([ACCEPT]) == 262144
    assert run([REJECT]) == 0
    assert run([(LD | IMM, 0, 0, 7), (RET | RET_A, 0, 0, 0)]) == 7


@pytest.mark.parametrize(
    ("code", "offset", "expected"),
    [
        (LD | W | ABS, 1, 0x01020304),
        (LD | H | ABS, 2, 0x0203),
        (LD | B | ABS, 5, 0x05),
    ],
)
def test_absolute_loads_are_big_endian(code: int, offset: int, expected: int) -> None:
    data = bytes(range(8))
    assert run([(code, 0, 0, offset), *a_equals(expected)], data) == 1


@pytest.mark.parametrize(
    ("code", "offset"),
    [(LD | W | ABS, 5), (LD | H | ABS, 7), (LD | B | ABS, 8), (LD | W | ABS, 0xFFFFFFFF)],
)
def test_load_past_the_captured_bytes_rejects(code: int, offset: int) -> None:
    # 8 captured bytes of a 100-byte packet: the wire length does not make more readable
    assert run([(code, 0, 0, offset), ACCEPT], bytes(8), wire_len=100) == 0


def test_indexed_loads_add_x_and_check_bounds() -> None:
    data = bytes(range(16))
    prog = [(LDX | IMM, 0, 0, 4), (LD | H | IND, 0, 0, 2), *a_equals(0x0607)]
    assert run(prog, data) == 1
    assert run([(LDX | IMM, 0, 0, 10), (LD | W | IND, 0, 0, 3), *a_equals(0x0D0E0F00)],
               data) == 0  # 13..16 is one byte past the end
    assert run([(LDX | IMM, 0, 0, 15), (LD | B | IND, 0, 0, 0), *a_equals(15)], data) == 1
    assert run([(LDX | IMM, 0, 0, 15), (LD | B | IND, 0, 0, 1), ACCEPT], data) == 0
    # X near 2**32 must not wrap around to a small offset
    assert run([(LDX | IMM, 0, 0, 0xFFFFFFFF), (LD | B | IND, 0, 0, 1), ACCEPT], data) == 0


def test_msh_loads_the_ipv4_header_length() -> None:
    data = b"\x00" * 14 + b"\x46"  # IHL 6 -> 24 bytes
    prog = [(LDX | MSH | B, 0, 0, 14), (MISC | TXA, 0, 0, 0), *a_equals(24)]
    assert run(prog, data) == 1
    assert run([(LDX | MSH | B, 0, 0, 15), ACCEPT], data) == 0


def test_len_is_the_wire_length() -> None:
    assert run([(LD | W | LEN, 0, 0, 0), *a_equals(1514)], bytes(60), wire_len=1514) == 1
    prog = [(LDX | W | LEN, 0, 0, 0), (MISC | TXA, 0, 0, 0), *a_equals(60)]
    assert run(prog, bytes(60)) == 1


def test_scratch_memory_and_register_moves() -> None:
    prog = [
        (LD | IMM, 0, 0, 5), (ST, 0, 0, 3), (LDX | IMM, 0, 0, 9), (STX, 0, 0, 15),
        (LD | MEM, 0, 0, 15), (MISC | TAX, 0, 0, 0), (LD | MEM, 0, 0, 3),
        (ALU | ADD | X, 0, 0, 0), (LDX | MEM, 0, 0, 3), (ALU | ADD | X, 0, 0, 0),
        *a_equals(19),
    ]  # fmt: skip
    assert run(prog) == 1


@pytest.mark.parametrize(
    ("op", "a", "operand", "expected"),
    [
        (ADD, 0xFFFFFFFF, 2, 1),  # unsigned 32-bit wrap-around
        (SUB, 1, 2, 0xFFFFFFFF),
        (MUL, 0x10000, 0x10000, 0),
        (DIV, 7, 2, 3),
        (MOD, 7, 4, 3),
        (AND, 0xF0F0, 0x0FF0, 0x00F0),
        (OR, 0xF000, 0x000F, 0xF00F),
        (XOR, 0xFF, 0x0F, 0xF0),
        (LSH, 0x80000001, 1, 2),
        (RSH, 0x80000000, 31, 1),
    ],
)
def test_alu_with_constant_and_with_x(op: int, a: int, operand: int, expected: int) -> None:
    with_k = [(LD | IMM, 0, 0, a), (ALU | op | K_, 0, 0, operand), *a_equals(expected)]
    assert run(with_k) == 1
    with_x = [(LD | IMM, 0, 0, a), (LDX | IMM, 0, 0, operand), (ALU | op | X, 0, 0, 0),
              *a_equals(expected)]
    assert run(with_x) == 1


def test_neg_is_two_complement() -> None:
    assert run([(LD | IMM, 0, 0, 1), (ALU | NEG, 0, 0, 0), *a_equals(0xFFFFFFFF)]) == 1


@pytest.mark.parametrize("op", [DIV, MOD])
def test_division_by_x_zero_rejects(op: int) -> None:
    assert run([(LD | IMM, 0, 0, 9), (LDX | IMM, 0, 0, 0), (ALU | op | X, 0, 0, 0),
                ACCEPT]) == 0


@pytest.mark.parametrize("op", [LSH, RSH])
def test_shift_by_x_of_32_or_more_gives_zero(op: int) -> None:
    assert run([(LD | IMM, 0, 0, 0xFFFFFFFF), (LDX | IMM, 0, 0, 32), (ALU | op | X, 0, 0, 0),
                *a_equals(0)]) == 1


@pytest.mark.parametrize(
    ("op", "a", "operand", "taken"),
    [
        (JEQ, 5, 5, True), (JEQ, 5, 6, False),
        (JGT, 6, 5, True), (JGT, 5, 5, False), (JGT, 0xFFFFFFFF, 1, True),  # unsigned
        (JGE, 5, 5, True), (JGE, 4, 5, False),
        (JSET, 0b1010, 0b0010, True), (JSET, 0b1010, 0b0101, False),
    ],
)  # fmt: skip
def test_conditional_jumps(op: int, a: int, operand: int, taken: bool) -> None:
    # jt skips one instruction to "return 1", jf falls through to "return 2"
    with_k = [(LD | IMM, 0, 0, a), (JMP | op | K_, 1, 0, operand), (RET, 0, 0, 2),
              (RET, 0, 0, 1)]
    assert run(with_k) == (1 if taken else 2)
    with_x = [(LD | IMM, 0, 0, a), (LDX | IMM, 0, 0, operand), (JMP | op | X, 1, 0, 0),
              (RET, 0, 0, 2), (RET, 0, 0, 1)]
    assert run(with_x) == (1 if taken else 2)


def test_unconditional_jump_forward() -> None:
    assert run([(JMP | JA, 0, 0, 1), REJECT, (RET, 0, 0, 3)]) == 3


def test_backward_jumps_are_bounded() -> None:
    """protochain loops backwards; a loop that never ends is cut off and rejects."""
    forever = [(LD | IMM, 0, 0, 0), (ALU | ADD | K_, 0, 0, 1), (JMP | JA, 0, 0, -2 & 0xFFFFFFFF),
               ACCEPT]
    assert run(forever, bytes(10)) == 0
    # a loop of three turns ends normally: A counts 1, 2, 3 and then returns
    counted = [(LD | IMM, 0, 0, 0), (ALU | ADD | K_, 0, 0, 1), (JMP | JGE | K_, 1, 0, 3),
               (JMP | JA, 0, 0, -3 & 0xFFFFFFFF), (RET | RET_A, 0, 0, 0)]
    assert run(counted) == 3


def test_signed_k_from_ctypes_is_taken_as_unsigned() -> None:
    program = Program([(LD | IMM, 0, 0, -1), (RET | RET_A, 0, 0, 0)])
    assert program.insns[0].k == 0xFFFFFFFF
    assert program.run(b"", 0) == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ([], "1 to"),
        ([(0x07 | 0x10, 0, 0, 0), ACCEPT], "unknown opcode"),  # MISC with a bad operation
        ([(LD | H | IMM, 0, 0, 0), ACCEPT], "unknown opcode"),  # IMM has no size
        ([(RET | X, 0, 0, 0)], "unknown opcode"),
        ([(LD | MEM, 0, 0, 16), ACCEPT], "scratch word 16"),
        ([(ST, 0, 0, 99), ACCEPT], "scratch word 99"),
        ([(ALU | DIV | K_, 0, 0, 0), ACCEPT], "division"),
        ([(ALU | MOD | K_, 0, 0, 0), ACCEPT], "division"),
        ([(ALU | LSH | K_, 0, 0, 32), ACCEPT], "shift by 32"),
        ([(JMP | JEQ | K_, 1, 0, 0), ACCEPT], "leaves the program"),
        ([(JMP | JA, 0, 0, 5), ACCEPT], "leaves the program"),
        ([(JMP | JA, 0, 0, -2 & 0xFFFFFFFF), ACCEPT], "leaves the program"),
        ([ACCEPT, (JMP | JA, 0, 0, 0xFFFFFFFF), ACCEPT], "jump to itself"),
        ([(LD | IMM, 0, 0, 0)], "not a return"),
    ],
)
def test_invalid_programs_are_refused(program: list[Insn], reason: str) -> None:
    with pytest.raises(Malformed, match=reason) as info:
        validate(program)
    assert info.value.layer == "bpf"


# ----- programs compiled by libpcap ----------------------------------------------------

def test_libpcap_program_for_tcp_port() -> None:
    """``tcp and port 30002`` on Ethernet, on a hand-made IPv4 SYN to port 30002."""
    program = compile_expression("tcp and port 30002", 1)
    eth = b"\x00" * 12 + b"\x08\x00"
    ip = bytes.fromhex("45000028000100004006" "0000" "7f000001" "7f000001")
    tcp = struct.pack("!HHIIBBHHH", 48496, 30002, 0, 0, 0x50, 0x02, 65535, 0, 0)
    assert program.matches(eth + ip + tcp, 54)
    other_port = struct.pack("!HHIIBBHHH", 48496, 30003, 0, 0, 0x50, 0x02, 65535, 0, 0)
    assert not program.matches(eth + ip + other_port, 54)
    udp_ip = ip[:9] + b"\x11" + ip[10:]
    assert not program.matches(eth + udp_ip + tcp, 54)
    assert not program.matches(eth + ip + tcp[:2], 54)  # the port is not captured: rejected


def test_libpcap_errors_are_one_line_like_tcpdump() -> None:
    with pytest.raises(CaptureError, match=r"^can't parse filter expression: syntax error$"):
        compile_expression("tcp and", 1)
    with pytest.raises(CaptureError, match="inbound/outbound not supported on Raw IP"):
        compile_expression("inbound", 101)


def test_packet_filter_compiles_once_per_link_type() -> None:
    packet_filter = PacketFilter("ip")
    ip4 = bytes.fromhex("4500001400010000400600007f0000017f000001")
    assert packet_filter.matches(RawPacket(0, 0, 101, 20, ip4))  # RAW
    assert packet_filter.matches(RawPacket(0, 0, 228, 20, ip4))  # IPV4
    assert not packet_filter.matches(RawPacket(0, 0, 1, 34, b"\x00" * 12 + b"\x86\xdd" + ip4))
    assert packet_filter.program(101) is packet_filter.program(101)
    assert set(packet_filter._programs) == {1, 101, 228}


def test_null_ip6_follows_the_file_byte_order() -> None:
    """On a NULL file libpcap matches the BSD AF_INET6 values in the file's byte order."""
    ip6 = bytes(40)
    little = PacketFilter("ip6", big_endian=False)
    big = PacketFilter("ip6", big_endian=True)
    for af in (24, 28, 30):
        assert little.matches(RawPacket(0, 0, 0, 44, struct.pack("<I", af) + ip6))
        assert not little.matches(RawPacket(0, 0, 0, 44, struct.pack(">I", af) + ip6))
        assert big.matches(RawPacket(0, 0, 0, 44, struct.pack(">I", af) + ip6))
    assert savefile_header(0, 0, True)[:4] == b"\xa1\xb2\xc3\xd4"



def test_missing_libpcap_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from capdissect.sources import filter as filter_module
    monkeypatch.setattr(filter_module, "_LOADED", [])
    monkeypatch.setitem(sys.modules, "scapy.libs.winpcapy", None)  # import fails
    with pytest.raises(CaptureError, match="filter expressions need libpcap"):
        compile_expression("tcp", 1)

