"""Fuzzing: random text into the assembler and the line tools, random memory into the
emulator. Zero uncaught exceptions, zero hangs (every run is bounded by its step limit and
each example by a hypothesis deadline).

The CI versions run a few hundred inputs; the `slow` versions run 100 000 each and print
their figures:  python -m pytest tests/code2/test_fuzz.py -m slow -s -q
"""

from __future__ import annotations

import collections
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinylm.tasks.code2 import isa
from tinylm.tasks.code2.assembler import AssemblyError, assemble, canonicalize, check
from tinylm.tasks.code2.emulator import Emulator
from tinylm.tasks.code2.equivalence import equivalent
from tinylm.tasks.code2.validate import line_problem, syntax_check

VOCAB = [m for m in isa.MNEMONICS] + ["ORG", "DW", "lo", "hi", "(", ")", "[", "]", "+", ",", ":", ";", " ", "  ",
         "\t", "\n", "rD", "r1", "rf", "RG", "r16", "IP05", "OP1F", "IPX", "H'2A'", "H'", "h'zz'", "H'12345'", "42",
         "256", "65536", "0", "loop", "loop:", "rD = 0000", "rD = DAC00", "'", "é", "Error:", "\r", "\x00"]  # fmt: skip

SOURCE_LINES = [
    "LD rF,[rD+H'08'] ; rD = 0000", "ST [rD+H'45'],r3 ; rD = DA00", "ADDS rD,r1,r2", "SUBS rD,r7,r9",
    "LLI rD,lo(end)", "LHI rD,hi(end)", "BZ", "CALLR", "RET", "HALT", "end:", "ORG H'0100'", "DW end",
    "IN r2,IP05", "OUT OP01,r2", "SHL r3", "NAND r1,r2,r3", "; comment", "Error: dirección vacía (ambigua)",
]  # fmt: skip


def _near_valid(seed: int) -> str:
    """A plausible program with a few characters deleted, inserted or replaced."""
    rng = random.Random(seed)
    text = "\n".join(rng.choice(SOURCE_LINES) for _ in range(rng.randint(1, 8)))
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(text) + 1)
        ch = rng.choice(VOCAB)
        text = rng.choice([text[:i] + text[i + 1 :], text[:i] + ch + text[i:], text[:i] + ch + text[i + 1 :]])
    return text


any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
token_soup = st.lists(st.sampled_from(VOCAB), max_size=25).map("".join)
source = st.one_of(any_text, token_soup, st.integers(0, 2**63).map(_near_valid))

STATS: collections.Counter = collections.Counter()


def _exercise_assembler(text: str) -> None:
    for thesis in (False, True):
        try:
            program = assemble(text, thesis=thesis)
            STATS["assembled"] += 1
            assert all(0 <= a <= 0xFFFF and 0 <= w <= 0xFFFF for a, w in program.image.items())
            assert assemble(canonicalize(text, thesis=thesis), thesis=thesis).image == program.image
        except AssemblyError as e:
            STATS["rejected"] += 1
            assert e.diagnostics and all(d.line >= 1 and d.column >= 1 for d in e.diagnostics)
        check(text, thesis=thesis)
    for variant in ("thesis", "full"):
        syntax_check(text, variant)
        for line in text.split("\n")[:3]:
            line_problem(line, variant)


def _random_emulator(seed: int) -> Emulator:
    """A random program (mostly valid words, every mnemonic equally likely) at a random
    origin, with random registers, flags, inputs and limits. Drawn from one seed so that
    100 000 of them take minutes, not hours."""
    rng = random.Random(seed)
    words = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.8:
            spec = rng.choice(isa.SPECS)
            ins = isa.Instruction(spec, rx=rng.randrange(16), rs=rng.randrange(16), ra=rng.randrange(16), v=rng.randrange(256))
            words.append(ins.encode())
        else:
            words.append(rng.getrandbits(16))
    origin = rng.getrandbits(16)
    image = {(origin + i) & 0xFFFF: w for i, w in enumerate(words)}
    regs = [rng.getrandbits(16) for _ in range(16)]
    if rng.random() < 0.7:  # jumps and calls that land inside the program
        regs[isa.ADDRESS_REGISTER] = (origin + rng.randrange(len(words))) & 0xFFFF
    inputs = rng.choice([None, [rng.getrandbits(16) for _ in range(rng.randint(0, 5))], lambda p: p * 257])
    return Emulator(
        image,
        inputs=inputs,
        registers=regs,
        flags={k: rng.random() < 0.5 for k in isa.FLAGS},
        step_limit=rng.randint(1, 400),
        stack_limit=rng.randint(1, 64),
    )


def _exercise_emulator(seed: int) -> None:
    emu = _random_emulator(seed)
    result = emu.run()
    STATS[result.status] += 1
    assert result.steps <= emu.step_limit
    assert result.status in ("halted", "step_limit", "invalid_instruction", "stack_overflow", "stack_underflow", "no_input")
    assert all(0 <= r <= 0xFFFF for r in emu.regs) and 0 <= emu.pc <= 0xFFFF


CI = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=100_000, deadline=2000, suppress_health_check=list(HealthCheck), database=None)


@given(source)
@CI
def test_fuzz_assembler(text):
    _exercise_assembler(text)


@given(st.integers(0, 2**63))
@CI
def test_fuzz_emulator(seed):
    _exercise_emulator(seed)


@given(source, source)
@settings(max_examples=100, deadline=2000)
def test_fuzz_equivalence(a, b):
    r = equivalent(a, b, trials=1)
    assert isinstance(r.equal, bool)


@pytest.mark.slow
def test_fuzz_assembler_long():
    STATS.clear()
    given(source)(LONG(_exercise_assembler))()
    total = STATS["assembled"] + STATS["rejected"]
    print(f"\nassembler fuzz: {total // 2} inputs x 2 modes, {STATS['assembled']} assembled, "
          f"{STATS['rejected']} rejected with diagnostics, 0 uncaught exceptions")  # fmt: skip
    assert total // 2 >= 100_000


@pytest.mark.slow
def test_fuzz_emulator_long():
    STATS.clear()
    given(st.integers(0, 2**63))(LONG(_exercise_emulator))()
    total = sum(STATS.values())
    print(f"\nemulator fuzz: {total} random programs, outcomes {dict(STATS)}, 0 uncaught exceptions, 0 hangs")
    assert total >= 100_000
