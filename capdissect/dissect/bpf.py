"""A classic BPF interpreter: the verdict of a compiled filter on one packet's bytes.

tcpdump applies a filter expression to a file by compiling it with libpcap
(``pcap_compile``) into a classic BPF program and running that program in userland on
each record's captured bytes (``pcap_offline_filter`` -> ``bpf_filter``).  This module
is that second step, with the semantics of libpcap's ``bpf_filter.c`` (1.10.x):

- registers A and X and 16 scratch words are unsigned 32-bit, zero at the start;
- loads of 1, 2 or 4 bytes (``B``/``H``/``W``) are big-endian, at a constant offset
  (``ABS``), at ``X`` plus one (``IND``) or as IPv4's header length (``MSH``);
  ``LEN`` is the packet's length on the wire;
- a load that reaches past the captured bytes rejects the packet (returns 0), and so
  does a division or modulo by zero; shifts by 32 or more give 0;
- ``RET`` ends the run: 0 rejects, anything else accepts (the snap length).

Termination: conditional jumps only go forward, so a program without ``JA`` runs each
instruction at most once.  libpcap compiles ``protochain`` into a loop with a backward
``JA``; each turn walks one IPv6/IPv4 extension header, so a real packet ends it
quickly, and we allow at most ``len(packet) + MAX_BACKWARD_JUMPS`` backward jumps per
packet (more rejects it, as newer libpcap does after 64).  Every run is thus bounded by
``len(program) * (backward jumps allowed + 1)`` steps.

Pure: the standard library only.  Programs are validated before they run, with
libpcap's rules (``pcapint_valid_insn``/``pcapint_validate_filter``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final, NamedTuple

from capdissect.errors import Malformed

# Instruction classes (the low 3 bits of the code).
LD: Final = 0x00
LDX: Final = 0x01
ST: Final = 0x02
STX: Final = 0x03
ALU: Final = 0x04
JMP: Final = 0x05
RET: Final = 0x06
MISC: Final = 0x07
# Load sizes.
W: Final = 0x00
H: Final = 0x08
B: Final = 0x10
# Load modes.
IMM: Final = 0x00
ABS: Final = 0x20
IND: Final = 0x40
MEM: Final = 0x60
LEN: Final = 0x80
MSH: Final = 0xA0
# ALU operations.
ADD: Final = 0x00
SUB: Final = 0x10
MUL: Final = 0x20
DIV: Final = 0x30
OR: Final = 0x40
AND: Final = 0x50
LSH: Final = 0x60
RSH: Final = 0x70
NEG: Final = 0x80
MOD: Final = 0x90
XOR: Final = 0xA0
# Jumps.
JA: Final = 0x00
JEQ: Final = 0x10
JGT: Final = 0x20
JGE: Final = 0x30
JSET: Final = 0x40
# Operand source: the constant k or the register X.
K: Final = 0x00
X: Final = 0x08
# RET's value: k or A.
RET_A: Final = 0x10
# MISC operations.
TAX: Final = 0x00
TXA: Final = 0x80

MEMWORDS: Final = 16  # BPF_MEMWORDS
MAX_INSNS: Final = 3_060_000  # libpcap's userland BPF_MAXINSNS
MAX_BACKWARD_JUMPS: Final = 64  # libpcap >= 1.10.5 gives up after this many (per packet)
_U32: Final = 0xFFFFFFFF

_SHIFTS: Final = frozenset({ALU | LSH | K, ALU | RSH | K})
_DIVISIONS: Final = frozenset({ALU | DIV | K, ALU | MOD | K})
_SCRATCH: Final = frozenset({LD | MEM, LDX | MEM, ST, STX})
# Every opcode libpcap's interpreter knows (pcapint_valid_insn); anything else is invalid.
VALID_CODES: Final = frozenset(
    {
        RET | K, RET | RET_A,
        LD | W | ABS, LD | H | ABS, LD | B | ABS, LD | W | LEN, LDX | W | LEN,
        LD | W | IND, LD | H | IND, LD | B | IND, LDX | MSH | B, LD | IMM, LDX | IMM,
        *_SCRATCH,
        *(JMP | op | src for op in (JGT, JGE, JEQ, JSET) for src in (K, X)), JMP | JA,
        *(ALU | op | src for op in (ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH)
          for src in (K, X)),
        ALU | NEG, MISC | TAX, MISC | TXA,
    }
)  # fmt: skip

_U16_AT: Final = struct.Struct("!H").unpack_from
_U32_AT: Final = struct.Struct("!I").unpack_from


class Insn(NamedTuple):
    """One instruction, as ``struct bpf_insn``: opcode, jump offsets, constant."""

    code: int
    jt: int
    jf: int
    k: int  # unsigned 32-bit


def _signed(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def validate(program: Iterable[tuple[int, int, int, int]]) -> tuple[Insn, ...]:
    """Check *program* as libpcap does before it runs one; return it as ``Insn`` records.

    Raises ``Malformed("bpf", index, reason)`` for an empty or too long program, an
    unknown opcode, a scratch word past 15, a constant division by zero or shift by 32
    or more, a jump outside the program or to itself, or a last instruction that is not
    ``RET``.  ``k`` may be given signed (as ctypes' ``c_int`` hands it over).
    """
    insns = tuple(
        Insn(code & 0xFFFF, jt & 0xFF, jf & 0xFF, k & _U32) for code, jt, jf, k in program
    )
    count = len(insns)
    if not 0 < count <= MAX_INSNS:
        raise Malformed("bpf", 0, f"a program has 1 to {MAX_INSNS} instructions, not {count}")
    for index, (code, jt, jf, k) in enumerate(insns):
        if code not in VALID_CODES:
            raise Malformed("bpf", index, f"unknown opcode 0x{code:02x}")
        if code in _SCRATCH and k >= MEMWORDS:
            raise Malformed("bpf", index, f"scratch word {k} (there are {MEMWORDS})")
        if code in _DIVISIONS and k == 0:
            raise Malformed("bpf", index, "division by the constant 0")
        if code in _SHIFTS and k >= 32:
            raise Malformed("bpf", index, f"shift by {k} bits")
        if code & 7 != JMP:
            continue
        after = index + 1
        if code == JMP | JA:
            offset = _signed(k)
            if not 0 <= after + offset < count:
                raise Malformed("bpf", index, f"jump by {offset} leaves the program")
            if offset == -1:
                raise Malformed("bpf", index, "jump to itself (an endless loop)")
        elif after + jt >= count or after + jf >= count:
            raise Malformed("bpf", index, f"jump by {max(jt, jf)} leaves the program")
    if insns[-1].code & 7 != RET:
        raise Malformed("bpf", count - 1, "the last instruction is not a return")
    return insns


class Program:
    """A validated classic BPF program; ``run`` it on a packet's bytes."""

    __slots__ = ("insns",)

    def __init__(self, program: Iterable[tuple[int, int, int, int]]) -> None:
        self.insns: tuple[Insn, ...] = validate(program)

    def __len__(self) -> int:
        return len(self.insns)

    def matches(self, data: bytes, wire_len: int) -> bool:
        """True if the program accepts the packet (returns non-zero), as tcpdump keeps it."""
        return self.run(data, wire_len) != 0

    def run(self, data: bytes, wire_len: int) -> int:
        """The program's return value on *data* (captured bytes) of a *wire_len* packet."""
        insns = self.insns
        buflen = len(data)
        a = x = 0
        mem = [0] * MEMWORDS
        pc = 0
        backward = buflen + MAX_BACKWARD_JUMPS
        # Bounded (see the module docstring): the validator guarantees every jump lands
        # inside the program and the last instruction returns.
        for _step in range(len(insns) * (backward + 1)):
            code, jt, jf, k = insns[pc]
            pc += 1
            # The most frequent opcodes of compiled filters first.
            if code == LD | H | ABS:
                if k + 2 > buflen:
                    return 0
                a = _U16_AT(data, k)[0]
            elif code == JMP | JEQ | K:
                pc += jt if a == k else jf
            elif code == LD | B | ABS:
                if k >= buflen:
                    return 0
                a = data[k]
            elif code == RET | K:
                return k
            elif code == JMP | JSET | K:
                pc += jt if a & k else jf
            elif code == LDX | MSH | B:
                if k >= buflen:
                    return 0
                x = (data[k] & 0xF) << 2
            elif code == LD | H | IND:
                if x + k + 2 > buflen:
                    return 0
                a = _U16_AT(data, x + k)[0]
            elif code == LD | B | IND:
                if x + k >= buflen:
                    return 0
                a = data[x + k]
            elif code == LD | W | ABS:
                if k + 4 > buflen:
                    return 0
                a = _U32_AT(data, k)[0]
            elif code == LD | W | IND:
                if x + k + 4 > buflen:
                    return 0
                a = _U32_AT(data, x + k)[0]
            elif code == JMP | JA:
                offset = _signed(k)
                if offset < 0:
                    backward -= 1
                    if backward < 0:
                        return 0
                pc += offset
            else:
                cls = code & 7
                if cls == ALU:
                    result = _alu(code, a, x, k)
                    if result is None:
                        return 0
                    a = result
                elif cls == JMP:
                    operand = x if code & X else k
                    op = code & 0xF0
                    if op == JGT:
                        taken = a > operand
                    elif op == JGE:
                        taken = a >= operand
                    elif op == JEQ:
                        taken = a == operand
                    else:  # JSET: the validator lets nothing else through
                        taken = bool(a & operand)
                    pc += jt if taken else jf
                elif code == RET | RET_A:
                    return a
                elif code == LD | IMM:
                    a = k
                elif code == LDX | IMM:
                    x = k
                elif code == LD | W | LEN:
                    a = wire_len & _U32
                elif code == LDX | W | LEN:
                    x = wire_len & _U32
                elif code == LD | MEM:
                    a = mem[k]
                elif code == LDX | MEM:
                    x = mem[k]
                elif code == ST:
                    mem[k] = a
                elif code == STX:
                    mem[k] = x
                elif code == MISC | TAX:
                    x = a
                else:  # MISC | TXA, the last opcode the validator accepts
                    a = x
        return 0  # unreachable for a validated program, kept as the loop's bound


def _alu(code: int, a: int, x: int, k: int) -> int | None:
    """A's new value after an ALU instruction, or None when it divides by zero."""
    operand = x if code & X else k
    op = code & 0xF0
    if op == ADD:
        return (a + operand) & _U32
    if op == SUB:
        return (a - operand) & _U32
    if op == MUL:
        return (a * operand) & _U32
    if op == DIV:
        return a // operand if operand else None
    if op == MOD:
        return a % operand if operand else None
    if op == AND:
        return a & operand
    if op == OR:
        return a | operand
    if op == XOR:
        return a ^ operand
    if op == LSH:
        return (a << operand) & _U32 if operand < 32 else 0
    if op == RSH:
        return a >> operand if operand < 32 else 0
    return (-a) & _U32  # NEG
