"""Emulator: hand-written programs with known results, each instruction's effect and flags,
the stop conditions, and the trace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm.tasks.code2 import isa
from tinylm.tasks.code2.assembler import assemble
from tinylm.tasks.code2.emulator import Emulator


def run(text: str, **kwargs) -> tuple[Emulator, object]:
    emu = Emulator(assemble(text), **kwargs)
    return emu, emu.run()


def test_sum_of_a_list_with_a_loop():
    # The pointer lives in rB; rD is loaded only to address an element or to jump.
    text = """
            LLI rB,lo(list)
            LHI rB,hi(list)
            LLI r0,0
            LLI r3,1
            ADDS rD,rB,r0
            LD r2,[rD+0]        ; count
            LLI r1,0            ; sum
    loop:   ADDS r2,r2,r0       ; Z <- count == 0
            LLI rD,lo(done)
            LHI rD,hi(done)
            BZ
            ADDS rB,rB,r3       ; next element
            ADDS rD,rB,r0
            LD r4,[rD+0]
            ADDS r1,r1,r4
            SUBS r2,r2,r3
            LLI rD,lo(loop)
            LHI rD,hi(loop)
            BR
    done:   OUT OP01,r1
            HALT
            ORG H'0200'
    list:   DW 5
            DW 10
            DW 20
            DW 30
            DW 40
            DW H'FFFF'
    """
    emu, result = run(text)
    assert result.ok, result.message
    assert emu.outputs == [(1, 0xFFFF + 100 & 0xFFFF)]
    assert emu.regs[1] == (10 + 20 + 30 + 40 + 0xFFFF) & 0xFFFF


MULTIPLY = """
; r3 <- r1 * r2 by shifts and adds (the multiplier's bits, lowest first)
        IN r1,IP00
        IN r2,IP01
        LLI r3,0
        LLI r0,0
loop:   ADDS r2,r2,r0       ; Z <- multiplier == 0
        LLI rD,lo(done)
        LHI rD,hi(done)
        BZ
        SHR r2              ; C <- the multiplier's lowest bit
        LLI rD,lo(add)
        LHI rD,hi(add)
        BC
next:   SHL r1
        LLI rD,lo(loop)
        LHI rD,hi(loop)
        BR
add:    ADDS r3,r3,r1
        LLI rD,lo(next)
        LHI rD,hi(next)
        BR
done:   OUT OP02,r3
        HALT
"""


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
@settings(max_examples=60)
def test_multiply_by_shifts_and_adds(a, b):
    emu, result = run(MULTIPLY, inputs={0: [a], 1: [b]})
    assert result.ok, result.message
    assert emu.outputs == [(2, (a * b) & 0xFFFF)]


def test_multiply_by_ten_with_shifts():
    emu, result = run("IN r1,IP00\nSHL r1\nADDS r2,r1,r0\nSHL r1\nSHL r1\nADDS r1,r1,r2\nOUT OP00,r1\nHALT", inputs=[123])
    assert result.ok and emu.outputs == [(0, 1230)]


SUBROUTINE = """
        LLI rE,0            ; the stack starts at the top of memory
        LLI r1,21
        LLI rD,lo(double)
        LHI rD,hi(double)
        CALLR
        CALLR               ; rD still points at the subroutine
        OUT OP00,r1
        HALT
double: ADDS r1,r1,r1
        RET
"""


def test_subroutine_call_and_return():
    emu, result = run(SUBROUTINE)
    assert result.ok, result.message
    assert emu.outputs == [(0, 84)]
    assert emu.regs[isa.STACK_REGISTER] == 0  # balanced
    assert emu.memory[0xFFFF] == 6  # the second CALLR pushed the address after it
    cycles = sum(isa.BY_MNEMONIC[m].cycles for m in ("LLI", "LLI", "LLI", "LHI", "OUT", "HALT"))
    cycles += 2 * (10 + 7 + 8)  # two taken calls, each running ADDS and RET
    assert result.cycles == cycles and result.steps == 12


def test_conditional_call_not_taken_costs_six_cycles():
    emu, result = run("LLI r1,1\nSUBS r1,r1,r0\nCALLZ\nHALT")
    assert result.ok and result.cycles == 6 + 7 + 6 + 6


ECHO = """
        LLI r0,0
loop:   IN r1,IP00
        ADDS r1,r1,r0       ; Z <- (input == 0)
        LLI rD,lo(done)
        LHI rD,hi(done)
        BZ
        OUT OP01,r1
        LLI rD,lo(loop)
        LHI rD,hi(loop)
        BR
done:   HALT
"""


def test_io_echo_until_zero():
    emu, result = run(ECHO, inputs=[3, 5, 0xBEEF, 0])
    assert result.ok
    assert emu.outputs == [(1, 3), (1, 5), (1, 0xBEEF)]


def test_inputs_from_a_callback_and_per_port_lists():
    emu, _ = run("IN r1,IP07\nIN r2,IP07\nHALT", inputs=lambda port: port * 100)
    assert emu.regs[1:3] == [700, 700]
    emu, _ = run("IN r1,IP01\nIN r2,IP02\nIN r3,IP01\nHALT", inputs={1: [10, 11], 2: [20]})
    assert emu.regs[1:4] == [10, 20, 11]


# --- one instruction at a time ------------------------------------------------------------


def one(text: str, regs: dict[int, int] | None = None, flags: dict[str, bool] | None = None) -> Emulator:
    r = [0] * 16
    for k, v in (regs or {}).items():
        r[k] = v
    emu = Emulator(assemble(text + "\nHALT"), registers=r, flags=flags)
    assert emu.run().ok
    return emu


def f(emu: Emulator) -> str:
    return "".join(k for k, v in emu.flags.items() if v)


ALL_SET = {"Z": True, "S": True, "C": True, "V": True}


def test_ld_st_address_rd_plus_offset_wraps():
    regs = [0, 0xABCD] + [0] * 11 + [0xFFFF, 0, 0]
    emu = Emulator(assemble("ST [rD+H'06'],r1\nLD r2,[rD+H'06']\nHALT"), registers=regs)
    assert emu.run().ok
    assert emu.memory[5] == 0xABCD and emu.regs[2] == 0xABCD


def test_loads_and_io_leave_flags_alone():
    for text in ("LLI r1,5", "LHI r1,5", "LD r1,[rD+0]", "ST [rD+9],r1", "OUT OP00,r1"):
        assert f(one(text, flags=ALL_SET)) == "ZSCV", text


def test_lli_clears_high_byte_lhi_keeps_low_byte():
    assert one("LLI r1,H'2A'", {1: 0xFFFF}).regs[1] == 0x002A
    assert one("LHI r1,H'2A'", {1: 0xFFFF}).regs[1] == 0x2AFF


@pytest.mark.parametrize(
    "a,b,result,flags",
    [(1, 2, 3, ""), (0xFFFF, 1, 0, "ZC"), (0x7FFF, 1, 0x8000, "SV"), (0x8000, 0x8000, 0, "ZCV"), (0xFFFF, 0xFFFF, 0xFFFE, "SC")],
)
def test_adds(a, b, result, flags):
    emu = one("ADDS r3,r1,r2", {1: a, 2: b})
    assert (emu.regs[3], f(emu)) == (result, flags)


@pytest.mark.parametrize(
    "a,b,result,flags",
    [(5, 3, 2, ""), (3, 3, 0, "Z"), (3, 5, 0xFFFE, "SC"), (0x8000, 1, 0x7FFF, "V"), (0x7FFF, 0xFFFF, 0x8000, "SCV")],
)
def test_subs_is_minuend_minus_subtrahend(a, b, result, flags):
    emu = one("SUBS r3,r1,r2", {1: a, 2: b})
    assert (emu.regs[3], f(emu)) == (result, flags)


def test_nand():
    emu = one("NAND r3,r1,r2", {1: 0xFF00, 2: 0x0FF0}, flags=ALL_SET)
    assert (emu.regs[3], f(emu)) == (0xF0FF, "S")
    emu = one("NAND r3,r1,r1", {1: 0xFFFF})
    assert (emu.regs[3], f(emu)) == (0, "Z")


def test_shifts_keep_v_and_set_c_from_the_bit_out():
    assert (lambda e: (e.regs[1], f(e)))(one("SHL r1", {1: 0xC001}, {"V": True})) == (0x8002, "SCV")
    assert (lambda e: (e.regs[1], f(e)))(one("SHR r1", {1: 0x8001})) == (0x4000, "C")
    assert (lambda e: (e.regs[1], f(e)))(one("SHRA r1", {1: 0x8001})) == (0xC000, "SC")
    assert (lambda e: (e.regs[1], f(e)))(one("SHR r1", {1: 1})) == (0, "ZC")


@pytest.mark.parametrize("cond,flag", [("Z", "Z"), ("S", "S"), ("C", "C"), ("V", "V")])
def test_branches_follow_their_flag(cond, flag):
    text = f"LLI rD,lo(yes)\nB{cond}\nLLI r1,1\nHALT\nyes: LLI r1,2\nHALT"
    taken = Emulator(assemble(text), flags={flag: True})
    taken.run()
    not_taken = Emulator(assemble(text), flags={k: k != flag for k in isa.FLAGS})
    not_taken.run()
    assert (taken.regs[1], not_taken.regs[1]) == (2, 1)


# --- stopping -----------------------------------------------------------------------------


def test_runaway_loop_stops_at_the_step_limit():
    emu, result = run("loop: LLI rD,lo(loop)\nBR", step_limit=1000)
    assert result.status == "step_limit" and result.steps == 1000
    assert "step limit of 1000" in result.message


@pytest.mark.parametrize("word", [0x9301, 0xC500, 0xD900, 0xE001, 0xF100])
def test_invalid_word_stops_with_its_address(word):
    emu, result = run(f"HALT\nORG 0\nLLI r1,1\nDW H'{word:04X}'".replace("HALT\nORG 0\n", ""))
    assert result.status == "invalid_instruction"
    assert f"{word:04X} at 0001" in result.message and emu.pc == 1 and result.steps == 1


def test_stack_underflow_and_overflow():
    _, result = run("RET")
    assert result.status == "stack_underflow"
    _, result = run("LLI rD,lo(rec)\nrec: CALLR", stack_limit=64)
    assert result.status == "stack_overflow" and result.steps == 1 + 64
    # Writing rE sets up a new, empty stack.
    _, result = run("LLI rD,lo(sub)\nCALLR\nHALT\nsub: LLI rE,H'40'\nRET")
    assert result.status == "stack_underflow"


def test_missing_input_is_an_error():
    _, result = run("IN r1,IP03\nHALT")
    assert result.status == "no_input" and "IP03" in result.message


def test_halt_leaves_pc_on_halt():
    emu, result = run("LLI r1,1\nHALT")
    assert result.ok and emu.pc == 1 and emu.halted


# --- trace --------------------------------------------------------------------------------


def test_trace_lists_pc_instruction_and_changes():
    lines: list[str] = []
    emu = Emulator(assemble("LLI r1,5\nSUBS r2,r0,r1\nST [rD+H'10'],r2\nOUT OP03,r2\nLLI rD,lo(end)\nBR\nHALT\nend: HALT"))
    emu.run(trace=lines.append)
    assert lines[0] == "0000  2105  LLI r1,H'05'         r1=0005"
    assert lines[1].endswith("r2=FFFB S=1 C=1")
    assert lines[2].endswith("M[0010]=FFFB")
    assert lines[3].endswith("OP03=FFFB")
    assert lines[5].endswith("PC=0007")
    assert lines[6].startswith("0007  F000  HALT")
    assert len(lines) == 7
