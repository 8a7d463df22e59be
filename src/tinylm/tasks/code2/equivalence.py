"""Execution-based equivalence: do two outputs mean the same program?

`equivalent(predicted, reference)` never raises for bad input; it returns
`Equivalence(equal, reason)`. The semantics [decision]:

1. Blank lines are ignored. `Error: ...` lines (a line starting with "error", any case)
   are compared by position: if either side has one, both must have the same number of
   lines and the Error lines must sit at the same positions (line i of the output answers
   line i of the description), with equal normalized messages (case, accents and spacing
   ignored; " y "-joined problems compared as a multiset; see errors_catalogue).
2. The remaining lines of each side form a program, followed by an implicit HALT (thesis
   blocks have none). In thesis mode the `; rD = HH00` comment of LD/ST is semantics:
   the assembler loads rD with that value first (see assembler.py), so a wrong comment
   means a wrong address. Thesis mode is on when `variant="thesis"`, or with
   `variant="auto"` when the reference has an Error line or an `rD =` comment.
3. Both programs run from `trials` random initial states (registers, flags, all 64 Ki
   memory words, input ports as per-port random streams), the same states for both. Code
   is placed at H'8000' unless the program has an ORG, away from page 00 where the thesis's
   short addresses land, so that reads of data do not see code.
4. Equal means: same outcome (halted, or the same error), same registers, flags, output
   port writes (in order), and same memory except the words holding either program's code.
   PC and cycle counts are not compared (two equal programs may differ in length).
"""

from __future__ import annotations

import random
import re
from array import array
from dataclasses import dataclass
from functools import lru_cache

from tinylm.tasks.code2 import errors_catalogue, isa
from tinylm.tasks.code2.assembler import AssemblyError, Program, assemble, split_lines
from tinylm.tasks.code2.emulator import Emulator

CODE_ORIGIN = 0x8000
DEFAULT_TRIALS = 3
DEFAULT_STEP_LIMIT = 10_000
_HINT_RE = re.compile(r";\s*rD\s*=", re.I)


@dataclass(frozen=True)
class Equivalence:
    equal: bool
    reason: str

    def __bool__(self) -> bool:
        return self.equal


@dataclass(frozen=True)
class _State:
    registers: tuple[int, ...]
    flags: dict[str, bool]
    memory: array
    input_seed: int


@lru_cache(maxsize=64)
def _initial_state(seed: int, trial: int) -> _State:
    rng = random.Random(f"code2-equivalence/{seed}/{trial}")
    regs = tuple(rng.getrandbits(16) for _ in range(isa.N_REGISTERS))
    flags = {name: bool(rng.getrandbits(1)) for name in isa.FLAGS}
    memory = array("H", rng.randbytes(2 * isa.MEMORY_WORDS))
    return _State(regs, flags, memory, rng.getrandbits(64))


def _mix(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-spread hash for input port streams."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class _PortStreams:
    """Input port p's k-th read is a fixed random function of (trial seed, p, k)."""

    def __init__(self, seed: int):
        self.seed, self.counts = seed, [0] * isa.N_PORTS

    def __call__(self, port: int) -> int:
        k = self.counts[port]
        self.counts[port] = k + 1
        return _mix(self.seed ^ (port << 40) ^ k) & isa.WORD_MASK


def _lines(text: str) -> list[str]:
    return [ln for ln in split_lines(text) if ln.strip(" \t")]


def _assemble(lines: list[str], thesis: bool) -> Program:
    # The implicit HALT: a label on the last line then points at it, which is what a
    # forward branch "to the end" means.
    return assemble("\n".join(lines + ["HALT"]), origin=CODE_ORIGIN, thesis=thesis)


def _compare_errors(pred: list[str], ref: list[str]) -> Equivalence | None:
    pe = [errors_catalogue.is_error_line(ln) for ln in pred]
    re_ = [errors_catalogue.is_error_line(ln) for ln in ref]
    if not any(pe) and not any(re_):
        return None
    if len(pred) != len(ref):
        return Equivalence(False, f"the outputs have {len(pred)} and {len(ref)} lines and contain Error lines")
    for i, (a, b) in enumerate(zip(pe, re_), start=1):
        if a != b:
            which = "predicted" if a else "reference"
            return Equivalence(False, f"line {i}: only the {which} output reports an error")
        if a and errors_catalogue.normalize_error_line(pred[i - 1]) != errors_catalogue.normalize_error_line(ref[i - 1]):
            return Equivalence(False, f"line {i}: error messages differ: {pred[i - 1]!r} vs {ref[i - 1]!r}")
    return None


def _run(program: Program, state: _State, step_limit: int) -> tuple[Emulator, str]:
    emu = Emulator(
        program,
        registers=state.registers,
        flags=state.flags,
        memory=state.memory,
        inputs=_PortStreams(state.input_seed),
        step_limit=step_limit,
    )
    result = emu.run()
    return emu, result.status


def _first_difference(a: array, b: array) -> int:
    return next(i for i in range(len(a)) if a[i] != b[i])


def equivalent(
    predicted: str,
    reference: str,
    *,
    variant: str = "auto",
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    step_limit: int = DEFAULT_STEP_LIMIT,
) -> Equivalence:
    """Whether `predicted` behaves like `reference` (see the module doc for the rules)."""
    pred, ref = _lines(predicted), _lines(reference)
    verdict = _compare_errors(pred, ref)
    if verdict is not None:
        return verdict
    ref_has_errors = any(errors_catalogue.is_error_line(ln) for ln in ref)
    pred = [ln for ln in pred if not errors_catalogue.is_error_line(ln)]
    ref = [ln for ln in ref if not errors_catalogue.is_error_line(ln)]
    if variant == "auto":
        thesis = ref_has_errors or any(_HINT_RE.search(ln) for ln in ref)
    elif variant in ("thesis", "full"):
        thesis = variant == "thesis"
    else:
        return Equivalence(False, f"unknown variant {variant!r}; expected auto, thesis or full")
    try:
        ref_prog = _assemble(ref, thesis)
    except AssemblyError as e:
        return Equivalence(False, f"the reference does not assemble: {e}")
    try:
        pred_prog = _assemble(pred, thesis)
    except AssemblyError as e:
        return Equivalence(False, f"the prediction does not assemble: {e}")
    code = set(ref_prog.image) | set(pred_prog.image)
    for trial in range(trials):
        state = _initial_state(seed, trial)
        pe, p_status = _run(pred_prog, state, step_limit)
        re_, r_status = _run(ref_prog, state, step_limit)
        where = f"run {trial + 1}"
        if p_status != r_status:
            return Equivalence(False, f"{where}: the prediction ends with {p_status}, the reference with {r_status}")
        for i, (a, b) in enumerate(zip(pe.regs, re_.regs)):
            if a != b:
                return Equivalence(False, f"{where}: {isa.register_name(i)} = {a:04X} vs {b:04X}")
        if pe.flags != re_.flags:
            diff = " ".join(f"{k}={int(v)}/{int(re_.flags[k])}" for k, v in pe.flags.items() if v != re_.flags[k])
            return Equivalence(False, f"{where}: flags differ ({diff}, predicted/reference)")
        if pe.outputs != re_.outputs:
            return Equivalence(False, f"{where}: output ports differ: {pe.outputs[:4]} vs {re_.outputs[:4]}")
        for addr in code:
            pe.memory[addr] = re_.memory[addr] = 0
        if pe.memory != re_.memory:
            addr = _first_difference(pe.memory, re_.memory)
            return Equivalence(False, f"{where}: M[{addr:04X}] = {pe.memory[addr]:04X} vs {re_.memory[addr]:04X}")
    return Equivalence(True, f"same final state on {trials} random initial states")
