"""Emulator: runs CODE-2 words with the semantics, flags and cycle counts of `isa`.

Machine: 16 registers of 16 bits, 64 Ki words of memory, flags Z S C V, PC, a stack through
rE, 256 input and 256 output ports. Each step fetches M(PC), increments PC, then executes,
so CALL pushes the address of the next instruction.

A run ends at HALT or stops with a clear error (`RunResult.status`):
  * "step_limit"          the step budget ran out (a runaway loop, most likely);
  * "invalid_instruction" the word at PC encodes no instruction (see `isa.decode`);
  * "stack_overflow"      a CALL would make the stack deeper than `stack_limit` words;
  * "stack_underflow"     a RET with nothing pushed;
  * "no_input"            an IN found its input list exhausted.
Stack depth is measured from the stack's base: rE's value at the start, re-anchored
whenever a program writes rE itself (LLI rE,..., ADDS rE,... set up a new stack)
[decision]. Inputs come from a callback `port -> value`, a list consumed by IN in order
whatever the port, or a map port -> list; outputs are recorded as (port, value) pairs.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tinylm.errors import TinyLMError
from tinylm.tasks.code2 import isa
from tinylm.tasks.code2.assembler import Program
from tinylm.tasks.code2.disassembler import disassemble_word

InputSource = Callable[[int], int] | Sequence[int] | Mapping[int, Sequence[int]] | None

DEFAULT_STEP_LIMIT = 100_000
DEFAULT_STACK_LIMIT = 4096
_RD, _RE = isa.ADDRESS_REGISTER, isa.STACK_REGISTER
_CYCLES = {op: specs[0].cycles for op, specs in isa.BY_OPCODE.items()}
_CALL_TAKEN_CYCLES = isa.BY_MNEMONIC["CALLR"].cycles_taken


class EmulatorError(TinyLMError):
    """The program stopped abnormally; `kind` is one of the RunResult statuses."""

    def __init__(self, kind: str, message: str, pc: int):
        super().__init__(message)
        self.kind, self.pc = kind, pc


@dataclass(frozen=True)
class RunResult:
    status: str  # "halted" or an EmulatorError kind
    message: str
    steps: int
    cycles: int

    @property
    def ok(self) -> bool:
        return self.status == "halted"


class _Inputs:
    """Uniform `read(port)` over the three ways of giving input."""

    def __init__(self, source: InputSource):
        self.callback = source if callable(source) else None
        self.per_port = {p: list(v) for p, v in source.items()} if isinstance(source, Mapping) else None
        self.stream = list(source) if isinstance(source, Sequence) else ([] if source is None else None)
        self.positions: dict[int, int] = {}

    def read(self, port: int) -> int | None:
        if self.callback is not None:
            return int(self.callback(port)) & isa.WORD_MASK
        values = self.stream if self.per_port is None else self.per_port.get(port, [])
        key = -1 if self.per_port is None else port
        k = self.positions.get(key, 0)
        if k >= len(values):
            return None
        self.positions[key] = k + 1
        return int(values[k]) & isa.WORD_MASK


class Emulator:
    def __init__(
        self,
        program: Program | Mapping[int, int] | None = None,
        *,
        inputs: InputSource = None,
        registers: Sequence[int] | None = None,
        flags: Mapping[str, bool] | None = None,
        memory: array | bytes | None = None,
        step_limit: int = DEFAULT_STEP_LIMIT,
        stack_limit: int = DEFAULT_STACK_LIMIT,
    ):
        # array('H') copies in one memcpy, which keeps many short runs cheap.
        self.memory = array("H", bytes(2 * isa.MEMORY_WORDS)) if memory is None else array("H", memory)
        if len(self.memory) != isa.MEMORY_WORDS:
            raise TinyLMError(f"memory must have {isa.MEMORY_WORDS} words, got {len(self.memory)}")
        self.regs = [0] * isa.N_REGISTERS if registers is None else [int(r) & isa.WORD_MASK for r in registers]
        if len(self.regs) != isa.N_REGISTERS:
            raise TinyLMError(f"expected {isa.N_REGISTERS} register values, got {len(self.regs)}")
        f = flags or {}
        self.z, self.s, self.c, self.v = (bool(f.get(name, False)) for name in isa.FLAGS)
        self.pc = 0
        self.outputs: list[tuple[int, int]] = []
        self.steps = 0
        self.cycles = 0
        self.halted = False
        self.step_limit = step_limit
        self.stack_limit = stack_limit
        self._inputs = _Inputs(inputs)
        self._stack_base = self.regs[_RE]
        self._last_write: int | None = None  # address written by the last step (for traces)
        if program is not None:
            self.load(program)

    # --- state ----------------------------------------------------------------------------

    def load(self, program: Program | Mapping[int, int]) -> None:
        """Write the program's words into memory and point PC at its entry."""
        image = program.image if isinstance(program, Program) else program
        for addr, word in image.items():
            self.memory[addr] = word
        if isinstance(program, Program):
            self.pc = program.entry
        else:
            self.pc = next(iter(image), 0)

    @property
    def flags(self) -> dict[str, bool]:
        return {"Z": self.z, "S": self.s, "C": self.c, "V": self.v}

    def _set(self, x: int, value: int) -> None:
        self.regs[x] = value
        if x == _RE:
            self._stack_base = value

    def _flags_from(self, r: isa.AluResult) -> None:
        self.z, self.s, self.c = r.z, r.s, r.c
        if r.v is not None:
            self.v = r.v

    # --- execution ------------------------------------------------------------------------

    def step(self) -> None:
        """Execute one instruction; raises EmulatorError (PC left on the faulting word)."""
        if self.halted:
            raise EmulatorError("halted", f"the machine is halted at {self.pc:04X}", self.pc)
        pc = self.pc
        word = self.memory[pc]
        op, x, low = word >> 12, (word >> 8) & 0xF, word & 0xFF
        self.pc = (pc + 1) & isa.WORD_MASK
        self._last_write = None
        try:
            extra = _HANDLERS[op](self, x, low)
        except EmulatorError:
            self.pc = pc
            raise
        self.steps += 1
        self.cycles += _CYCLES[op] if extra is None else extra

    def _invalid(self, word_pc: int) -> EmulatorError:
        w = self.memory[word_pc]
        return EmulatorError("invalid_instruction", f"invalid instruction word {w:04X} at {word_pc:04X}", word_pc)

    def _ld(self, x: int, v: int) -> None:
        self._set(x, self.memory[(self.regs[_RD] + v) & isa.WORD_MASK])

    def _st(self, x: int, v: int) -> None:
        addr = (self.regs[_RD] + v) & isa.WORD_MASK
        self.memory[addr] = self.regs[x]
        self._last_write = addr

    def _lli(self, x: int, v: int) -> None:
        self._set(x, v)

    def _lhi(self, x: int, v: int) -> None:
        self._set(x, (v << 8) | (self.regs[x] & 0xFF))

    def _in(self, x: int, port: int) -> None:
        value = self._inputs.read(port)
        if value is None:
            pc = (self.pc - 1) & isa.WORD_MASK
            raise EmulatorError("no_input", f"IN at {pc:04X} found no input left for IP{port:02X}", pc)
        self._set(x, value)

    def _out(self, x: int, port: int) -> None:
        self.outputs.append((port, self.regs[x]))

    def _alu3(self, x: int, low: int, fn: Callable[[int, int], isa.AluResult]) -> None:
        r = fn(self.regs[low >> 4], self.regs[low & 0xF])
        self._set(x, r.value)
        self._flags_from(r)

    def _adds(self, x: int, low: int) -> None:
        self._alu3(x, low, isa.alu_adds)

    def _subs(self, x: int, low: int) -> None:
        self._alu3(x, low, isa.alu_subs)

    def _nand(self, x: int, low: int) -> None:
        self._alu3(x, low, isa.alu_nand)

    def _shift(self, x: int, low: int, fn: Callable[[int], isa.AluResult]) -> None:
        if low:
            raise self._invalid((self.pc - 1) & isa.WORD_MASK)
        r = fn(self.regs[x])
        self._set(x, r.value)
        self._flags_from(r)

    def _shl(self, x: int, low: int) -> None:
        self._shift(x, low, isa.alu_shl)

    def _shr(self, x: int, low: int) -> None:
        self._shift(x, low, isa.alu_shr)

    def _shra(self, x: int, low: int) -> None:
        self._shift(x, low, isa.alu_shra)

    def _branch(self, cond: int, low: int) -> None:
        if low or cond not in isa.CONDITIONS:
            raise self._invalid((self.pc - 1) & isa.WORD_MASK)
        if isa.condition_holds(cond, self.z, self.s, self.c, self.v):
            self.pc = self.regs[_RD]

    def _call(self, cond: int, low: int) -> int | None:
        if low or cond not in isa.CONDITIONS:
            raise self._invalid((self.pc - 1) & isa.WORD_MASK)
        if not isa.condition_holds(cond, self.z, self.s, self.c, self.v):
            return None
        depth = (self._stack_base - self.regs[_RE]) & isa.WORD_MASK
        if depth >= self.stack_limit:
            pc = (self.pc - 1) & isa.WORD_MASK
            raise EmulatorError("stack_overflow", f"stack overflow: CALL at {pc:04X} with {depth} words pushed", pc)
        sp = (self.regs[_RE] - 1) & isa.WORD_MASK
        self.regs[_RE] = sp  # a push, not a new stack: the base stays
        self.memory[sp] = self.pc
        self._last_write = sp
        self.pc = self.regs[_RD]
        return _CALL_TAKEN_CYCLES

    def _ret(self, x: int, low: int) -> None:
        if x or low:
            raise self._invalid((self.pc - 1) & isa.WORD_MASK)
        if self.regs[_RE] == self._stack_base:
            pc = (self.pc - 1) & isa.WORD_MASK
            raise EmulatorError("stack_underflow", f"stack underflow: RET at {pc:04X} with nothing pushed", pc)
        sp = self.regs[_RE]
        self.pc = self.memory[sp]
        self.regs[_RE] = (sp + 1) & isa.WORD_MASK

    def _halt(self, x: int, low: int) -> None:
        if x or low:
            raise self._invalid((self.pc - 1) & isa.WORD_MASK)
        self.halted = True
        self.pc = (self.pc - 1) & isa.WORD_MASK  # PC stays on the HALT, as a stopped machine shows it

    def run(self, *, max_steps: int | None = None, trace: Callable[[str], None] | None = None) -> RunResult:
        """Run until HALT, an error, or the step limit; never raises for the program's faults."""
        limit = self.step_limit if max_steps is None else max_steps
        budget_end = self.steps + limit
        try:
            while not self.halted:
                if self.steps >= budget_end:
                    return RunResult(
                        "step_limit",
                        f"step limit of {limit} reached at PC {self.pc:04X} (runaway loop?)",
                        self.steps,
                        self.cycles,
                    )
                if trace is None:
                    self.step()
                else:
                    trace(self._traced_step())
        except EmulatorError as e:
            return RunResult(e.kind, str(e), self.steps, self.cycles)
        return RunResult("halted", f"halted at {self.pc:04X}", self.steps, self.cycles)

    def _traced_step(self) -> str:
        pc, word = self.pc, self.memory[self.pc]
        regs, flags, n_out = list(self.regs), self.flags, len(self.outputs)
        self.step()
        changes = [f"{isa.register_name(i)}={r:04X}" for i, (a, r) in enumerate(zip(regs, self.regs)) if a != r]
        changes += [f"{k}={int(v)}" for k, v in self.flags.items() if flags[k] != v]
        if self._last_write is not None:
            changes.append(f"M[{self._last_write:04X}]={self.memory[self._last_write]:04X}")
        changes += [f"OP{p:02X}={val:04X}" for p, val in self.outputs[n_out:]]
        if not self.halted and self.pc != (pc + 1) & isa.WORD_MASK:
            changes.append(f"PC={self.pc:04X}")
        return f"{pc:04X}  {word:04X}  {disassemble_word(word):<20} {' '.join(changes)}".rstrip()

    def state_text(self) -> str:
        """Registers, flags and outputs in a few lines (what `tinylm code2 run` prints)."""
        regs = " ".join(f"{isa.register_name(i)}={r:04X}" for i, r in enumerate(self.regs))
        flags = " ".join(f"{k}={int(v)}" for k, v in self.flags.items())
        outs = " ".join(f"OP{p:02X}={v:04X}" for p, v in self.outputs) or "(none)"
        return f"PC={self.pc:04X} {flags}\n{regs}\noutputs: {outs}"


_HANDLERS: dict[int, Callable[[Emulator, int, int], int | None]] = {
    0x0: Emulator._ld,
    0x1: Emulator._st,
    0x2: Emulator._lli,
    0x3: Emulator._lhi,
    0x4: Emulator._in,
    0x5: Emulator._out,
    0x6: Emulator._adds,
    0x7: Emulator._subs,
    0x8: Emulator._nand,
    0x9: Emulator._shl,
    0xA: Emulator._shr,
    0xB: Emulator._shra,
    0xC: Emulator._branch,
    0xD: Emulator._call,
    0xE: Emulator._ret,
    0xF: Emulator._halt,
}
assert set(_HANDLERS) == set(isa.BY_OPCODE), "every codop of the ISA table needs a handler"
