"""The ISA table: codops, formats, cycles, encodings, and the ALU's flag decisions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tinylm.tasks.code2 import isa
from tinylm.tasks.code2.isa import BY_MNEMONIC, Instruction, decode

words16 = st.integers(0, 0xFFFF)


def test_table_has_16_codops_and_24_mnemonics():
    assert sorted(isa.BY_OPCODE) == list(range(16))
    assert len(isa.SPECS) == 24
    assert [s.mnemonic for s in isa.SPECS if s.opcode == 0xC] == ["BR", "BZ", "BS", "BC", "BV"]
    assert [s.mnemonic for s in isa.SPECS if s.opcode == 0xD] == ["CALLR", "CALLZ", "CALLS", "CALLC", "CALLV"]


def test_cycles_follow_the_thesis_table():
    expected = {"LD": 9, "ST": 9, "LLI": 6, "LHI": 8, "IN": 8, "OUT": 8, "ADDS": 7, "SUBS": 7, "NAND": 7,
                "SHL": 6, "SHR": 6, "SHRA": 6, "BZ": 6, "CALLZ": 6, "RET": 8, "HALT": 6}  # fmt: skip
    for name, cycles in expected.items():
        assert BY_MNEMONIC[name].cycles == cycles
    assert BY_MNEMONIC["CALLC"].cycles_taken == 10


def test_known_encodings():
    cases = {
        "ADDS": (Instruction(BY_MNEMONIC["ADDS"], rx=0xD, rs=1, ra=2), 0x6D12, "ADDS rD,r1,r2"),
        "LD": (Instruction(BY_MNEMONIC["LD"], rx=0xF, v=0x08), 0x0F08, "LD rF,[rD+H'08']"),
        "ST": (Instruction(BY_MNEMONIC["ST"], rx=3, v=0x45), 0x1345, "ST [rD+H'45'],r3"),
        "LLI": (Instruction(BY_MNEMONIC["LLI"], rx=1, v=0x2A), 0x212A, "LLI r1,H'2A'"),
        "IN": (Instruction(BY_MNEMONIC["IN"], rx=2, v=5), 0x4205, "IN r2,IP05"),
        "OUT": (Instruction(BY_MNEMONIC["OUT"], rx=2, v=1), 0x5201, "OUT OP01,r2"),
        "SHL": (Instruction(BY_MNEMONIC["SHL"], rx=3), 0x9300, "SHL r3"),
        "BZ": (Instruction(BY_MNEMONIC["BZ"]), 0xC100, "BZ"),
        "CALLR": (Instruction(BY_MNEMONIC["CALLR"]), 0xD000, "CALLR"),
        "RET": (Instruction(BY_MNEMONIC["RET"]), 0xE000, "RET"),
        "HALT": (Instruction(BY_MNEMONIC["HALT"]), 0xF000, "HALT"),
    }
    for ins, word, text in cases.values():
        assert ins.encode() == word
        assert ins.text() == text
        assert decode(word) == ins


def test_valid_word_count_and_exact_inverse():
    valid = [w for w in range(1 << 16) if decode(w) is not None]
    # F3: 6 codops x 4096, F4: 3 x 4096, F1: 3 x 16, F2: 2 x 5 conditions, F0: 2.
    assert len(valid) == 6 * 4096 + 3 * 4096 + 3 * 16 + 2 * 5 + 2 == 36_924
    assert all(decode(w).encode() == w for w in valid)


def test_unused_bits_and_unknown_conditions_are_invalid():
    for word in (0x9301, 0xA3FF, 0xC500, 0xCF00, 0xC101, 0xD700, 0xE001, 0xE100, 0xF800, 0xF001):
        assert decode(word) is None, hex(word)


def _signed(x: int) -> int:
    return x - 0x10000 if x & 0x8000 else x


@given(words16, words16)
def test_adds_flags_match_integer_arithmetic(a, b):
    r = isa.alu_adds(a, b)
    assert r.value == (a + b) % 65536
    assert r.c == (a + b > 0xFFFF)
    assert r.v == (not -32768 <= _signed(a) + _signed(b) <= 32767)
    assert r.z == (r.value == 0) and r.s == (r.value >= 0x8000)


@given(words16, words16)
def test_subs_flags_match_integer_arithmetic(a, b):
    r = isa.alu_subs(a, b)
    assert r.value == (a - b) % 65536
    assert r.c == (a < b)  # C is the borrow
    assert r.v == (not -32768 <= _signed(a) - _signed(b) <= 32767)
    assert r.z == (a == b) and r.s == (r.value >= 0x8000)


@given(words16, words16)
def test_nand_clears_c_and_v(a, b):
    r = isa.alu_nand(a, b)
    assert r.value == 0xFFFF - (a & b)
    assert (r.c, r.v) == (False, False)


@given(words16)
def test_shifts(a):
    assert isa.alu_shl(a).value == (a * 2) % 65536 and isa.alu_shl(a).c == (a >= 0x8000)
    assert isa.alu_shr(a).value == a // 2 and isa.alu_shr(a).c == bool(a % 2)
    assert _signed(isa.alu_shra(a).value) == _signed(a) // 2 and isa.alu_shra(a).c == bool(a % 2)
    assert isa.alu_shl(a).v is None and isa.alu_shr(a).v is None and isa.alu_shra(a).v is None


def test_conditions():
    assert isa.condition_holds(0, False, False, False, False)
    for cond, flag in ((1, "z"), (2, "s"), (3, "c"), (4, "v")):
        flags = dict(z=False, s=False, c=False, v=False)
        assert not isa.condition_holds(cond, **flags)
        flags[flag] = True
        assert isa.condition_holds(cond, **flags)


def test_public_api_resolves():
    import tinylm.tasks.code2 as code2

    for name in code2.__all__:
        assert getattr(code2, name) is not None, name
