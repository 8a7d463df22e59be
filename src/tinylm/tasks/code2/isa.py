"""The CODE-2 instruction set: the single source of truth.

Every other module of the plug-in derives from the table below: the assembler reads the
operand kinds to know what to parse, the disassembler and the data generator print with
`Instruction.text()`, the emulator charges `cycles`, and the grammar is generated from the
same operand kinds. Adding or changing an instruction happens here and nowhere else.

Facts come from docs/code2-spec (the thesis table, Fig. 2.4, plus the standard CODE-2
documentation); where the sources are silent the choice is marked [decision].

Word layout (every word starts with the 4-bit codop):
    F0  codop | unused(12)
    F1  codop | rx(4) | unused(8)
    F2  codop | cnd(4) | unused(8)
    F3  codop | rx(4) | v(8)
    F4  codop | rx(4) | rs(4) | ra(4)
Unused bits assemble as 0. [decision] A word whose unused bits are not 0, or whose
condition code is not one of the five defined, is *invalid*: the disassembler prints it
as a `DW` data word and the emulator stops on it. This makes decode() and encode() exact
inverses on the 36 924 valid words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

WORD_BITS = 16
WORD_MASK = 0xFFFF
MEMORY_WORDS = 1 << 16
N_REGISTERS = 16
N_PORTS = 256

# rD carries addresses (memory access, branch and call targets); rE is the stack pointer.
ADDRESS_REGISTER = 0xD
STACK_REGISTER = 0xE

FLAGS = ("Z", "S", "C", "V")


class Format(Enum):
    F0 = "F0"
    F1 = "F1"
    F2 = "F2"
    F3 = "F3"
    F4 = "F4"


class Operand(Enum):
    """What may stand in one operand slot; the assembler and the grammar switch on this."""

    RX = "rx"  # destination / subject register, bits 11-8
    RS = "rs"  # first source register (F4), bits 7-4
    RA = "ra"  # second source register (F4), bits 3-0
    MEM = "[v]"  # memory operand [rD+v], v in bits 7-0
    IMM = "v"  # 8-bit constant, bits 7-0
    IPORT = "IPv"  # input port number, bits 7-0
    OPORT = "OPv"  # output port number, bits 7-0


@dataclass(frozen=True)
class InstructionSpec:
    mnemonic: str
    opcode: int
    format: Format
    operands: tuple[Operand, ...]  # in source order
    cycles: int
    effect: str
    cond: int | None = None  # F2 only: the fixed condition code of this mnemonic
    cycles_taken: int | None = None  # CALL: cycles when the call is taken

    @property
    def name(self) -> str:
        return self.mnemonic


# Condition codes [standard]: R = always, then the four flags.
CONDITIONS: dict[int, str] = {0: "R", 1: "Z", 2: "S", 3: "C", 4: "V"}

_RX, _RS, _RA = Operand.RX, Operand.RS, Operand.RA

_BASE: tuple[InstructionSpec, ...] = (
    InstructionSpec("LD", 0x0, Format.F3, (_RX, Operand.MEM), 9, "rx <- M(rD+v)"),
    InstructionSpec("ST", 0x1, Format.F3, (Operand.MEM, _RX), 9, "M(rD+v) <- rx"),
    InstructionSpec("LLI", 0x2, Format.F3, (_RX, Operand.IMM), 6, "rx(15:8) <- 00; rx(7:0) <- v"),
    InstructionSpec("LHI", 0x3, Format.F3, (_RX, Operand.IMM), 8, "rx(15:8) <- v; low byte kept"),
    InstructionSpec("IN", 0x4, Format.F3, (_RX, Operand.IPORT), 8, "rx <- input port v"),
    InstructionSpec("OUT", 0x5, Format.F3, (Operand.OPORT, _RX), 8, "output port v <- rx"),
    InstructionSpec("ADDS", 0x6, Format.F4, (_RX, _RS, _RA), 7, "rx <- rs + ra"),
    InstructionSpec("SUBS", 0x7, Format.F4, (_RX, _RS, _RA), 7, "rx <- rs - ra"),
    # The thesis prints NAND's effect as "(rs-ra)'": a typo for NOT(rs AND ra).
    InstructionSpec("NAND", 0x8, Format.F4, (_RX, _RS, _RA), 7, "rx <- NOT(rs AND ra)"),
    InstructionSpec("SHL", 0x9, Format.F1, (_RX,), 6, "C <- rx(15); rx <- rx << 1"),
    InstructionSpec("SHR", 0xA, Format.F1, (_RX,), 6, "C <- rx(0); rx <- rx >> 1 (logical)"),
    InstructionSpec("SHRA", 0xB, Format.F1, (_RX,), 6, "C <- rx(0); rx <- rx >> 1 (sign kept)"),
)
_BRANCHES = tuple(
    InstructionSpec(f"B{c}", 0xC, Format.F2, (), 6, f"if {c}: PC <- rD", cond=n) for n, c in CONDITIONS.items()
)
_CALLS = tuple(
    InstructionSpec(
        f"CALL{c}", 0xD, Format.F2, (), 6, f"if {c}: rE <- rE-1; M(rE) <- PC; PC <- rD", cond=n, cycles_taken=10
    )
    for n, c in CONDITIONS.items()
)
_TAIL = (
    InstructionSpec("RET", 0xE, Format.F0, (), 8, "PC <- M(rE); rE <- rE+1"),
    InstructionSpec("HALT", 0xF, Format.F0, (), 6, "stop"),
)

SPECS: tuple[InstructionSpec, ...] = _BASE + _BRANCHES + _CALLS + _TAIL
BY_MNEMONIC: dict[str, InstructionSpec] = {s.mnemonic: s for s in SPECS}
MNEMONICS: tuple[str, ...] = tuple(BY_MNEMONIC)
# The 16 codops, each with its specs (one, or five for the branch and call families).
BY_OPCODE: dict[int, tuple[InstructionSpec, ...]] = {
    op: tuple(s for s in SPECS if s.opcode == op) for op in sorted({s.opcode for s in SPECS})
}

# Directives are not instructions but share the assembler's namespace of reserved words.
DIRECTIVES = ("ORG", "DW")


def register_name(n: int) -> str:
    """Canonical register spelling: lowercase r, one uppercase hex digit (r0..r9, rA..rF)."""
    return f"r{n:X}"


def hex8(v: int) -> str:
    return f"H'{v:02X}'"


def hex16(v: int) -> str:
    return f"H'{v:04X}'"


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction: a spec plus the numeric contents of its fields."""

    spec: InstructionSpec
    rx: int = 0
    rs: int = 0
    ra: int = 0
    v: int = 0

    def encode(self) -> int:
        s = self.spec
        word = s.opcode << 12
        if s.format is Format.F3:
            word |= (self.rx << 8) | self.v
        elif s.format is Format.F4:
            word |= (self.rx << 8) | (self.rs << 4) | self.ra
        elif s.format is Format.F1:
            word |= self.rx << 8
        elif s.format is Format.F2:
            word |= s.cond << 8  # type: ignore[operator]
        return word

    def operand_texts(self) -> list[str]:
        return [operand_text(kind, self) for kind in self.spec.operands]

    def text(self) -> str:
        """The one canonical spelling: upper-case mnemonic, one space, no spaces after commas."""
        ops = self.operand_texts()
        return self.spec.mnemonic + (" " + ",".join(ops) if ops else "")


def operand_text(kind: Operand, ins: Instruction) -> str:
    if kind is Operand.RX:
        return register_name(ins.rx)
    if kind is Operand.RS:
        return register_name(ins.rs)
    if kind is Operand.RA:
        return register_name(ins.ra)
    if kind is Operand.MEM:
        return f"[rD+{hex8(ins.v)}]"
    if kind is Operand.IMM:
        return hex8(ins.v)
    if kind is Operand.IPORT:
        return f"IP{ins.v:02X}"
    return f"OP{ins.v:02X}"


@lru_cache(maxsize=None)
def decode(word: int) -> Instruction | None:
    """The instruction a 16-bit word encodes, or None for an invalid word (see module doc)."""
    if not 0 <= word <= WORD_MASK:
        return None
    opcode, x, low = word >> 12, (word >> 8) & 0xF, word & 0xFF
    fmt = BY_OPCODE[opcode][0].format
    if fmt is Format.F3:
        return Instruction(BY_OPCODE[opcode][0], rx=x, v=low)
    if fmt is Format.F4:
        return Instruction(BY_OPCODE[opcode][0], rx=x, rs=low >> 4, ra=low & 0xF)
    if low:
        return None
    if fmt is Format.F1:
        return Instruction(BY_OPCODE[opcode][0], rx=x)
    if fmt is Format.F2:
        spec = next((s for s in BY_OPCODE[opcode] if s.cond == x), None)
        return Instruction(spec) if spec else None
    return None if x else Instruction(BY_OPCODE[opcode][0])


def is_valid_word(word: int) -> bool:
    return decode(word) is not None


# --- ALU: the flag decisions live here so the emulator and its tests agree ---------------
# [decision] ADDS/SUBS/NAND/shifts set Z and S from the result; ADDS sets C on carry out,
# SUBS sets C on borrow (rs < ra unsigned), both set V on signed overflow; NAND clears C and
# V; shifts set C to the bit shifted out and leave V alone. Nothing else touches the flags.


@dataclass(frozen=True)
class AluResult:
    value: int
    z: bool
    s: bool
    c: bool
    v: bool | None  # None: V unchanged


def alu_adds(a: int, b: int) -> AluResult:
    total = a + b
    r = total & WORD_MASK
    overflow = bool(~(a ^ b) & (a ^ r) & 0x8000)
    return AluResult(r, r == 0, bool(r & 0x8000), total > WORD_MASK, overflow)


def alu_subs(a: int, b: int) -> AluResult:
    r = (a - b) & WORD_MASK
    overflow = bool((a ^ b) & (a ^ r) & 0x8000)
    return AluResult(r, r == 0, bool(r & 0x8000), a < b, overflow)


def alu_nand(a: int, b: int) -> AluResult:
    r = ~(a & b) & WORD_MASK
    return AluResult(r, r == 0, bool(r & 0x8000), False, False)


def alu_shl(a: int) -> AluResult:
    r = (a << 1) & WORD_MASK
    return AluResult(r, r == 0, bool(r & 0x8000), bool(a & 0x8000), None)


def alu_shr(a: int) -> AluResult:
    r = a >> 1
    return AluResult(r, r == 0, False, bool(a & 1), None)


def alu_shra(a: int) -> AluResult:
    r = (a >> 1) | (a & 0x8000)
    return AluResult(r, r == 0, bool(r & 0x8000), bool(a & 1), None)


def condition_holds(cond: int, z: bool, s: bool, c: bool, v: bool) -> bool:
    return (True, z, s, c, v)[cond]
