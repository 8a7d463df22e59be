"""The generated grammars: XGrammar and Lark accept exactly the canonical lines that the
line validator (and so the assembler in canonical form) accepts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinylm.tasks.code2 import errors_catalogue, isa
from tinylm.tasks.code2.generator import generate_examples
from tinylm.tasks.code2.grammar import GrammarChecker, grammar_ebnf, grammar_lark
from tinylm.tasks.code2.validate import is_valid_line

pytest.importorskip("xgrammar")
lark = pytest.importorskip("lark")

VARIANTS = ("thesis", "full")


@pytest.fixture(scope="module")
def line_checker():
    return {v: GrammarChecker(v, root="line") for v in VARIANTS}


@pytest.fixture(scope="module")
def root_checker():
    return {v: GrammarChecker(v, root="root") for v in VARIANTS}


@pytest.fixture(scope="module")
def lark_parser():
    return {v: lark.Lark(grammar_lark(v), start="line") for v in VARIANTS}


def lark_accepts(parser, text: str) -> bool:
    try:
        parser.parse(text)
        return True
    except lark.exceptions.LarkError:
        return False


def test_grammars_are_generated_from_the_isa():
    import xgrammar

    for v in VARIANTS:
        text = grammar_ebnf(v)
        xgrammar.Grammar.from_ebnf(text, root_rule_name="root")
        assert text.startswith("#") and "root ::=" in text
    full = grammar_ebnf("full")
    assert all(f'"{s.mnemonic}' in full for s in isa.SPECS)
    thesis = grammar_ebnf("thesis")
    assert '"NAND' not in thesis and '" ; rD = "' in thesis
    assert all(p.template.split("{tok}")[0] in thesis for p in errors_catalogue.CATALOGUE)


THESIS_BLOCK = """Error: dirección vacía (ambigua)
SUBS rD,r2,r2
SUBS rD,r7,r9
LD rF,[rD+H'08'] ; rD = 0000
LD rA,[rD+H'01'] ; rD = 0000"""

FULL_PROGRAM = """; doubles the input
ORG H'0010'
start:
IN r1,IP00
LLI rD,lo(twice)
LHI rD,hi(twice)
CALLR
OUT OP01,r1 ; result
HALT
twice:
ADDS r1,r1,r1
RET
DW H'BEEF'
DW start"""


def test_spec_examples(root_checker, line_checker):
    assert root_checker["thesis"].accepts(THESIS_BLOCK)
    assert root_checker["full"].accepts(FULL_PROGRAM)
    for line in (
        "Error: dirección 'DF216' excede 4 dígitos",
        "Error: dirección 'mem689' contiene caracteres no hexadecimales y dirección 'mem689' excede 4 dígitos",
        "Error: registro 'N' inválido",
        "ST [rD+H'45'],r3 ; rD = DA00",
        "LD r0,[rD+H'C1'] ; rD = DA00",
    ):
        assert line_checker["thesis"].accepts(line) and is_valid_line(line, "thesis")
    for line in (
        "Error: dirección vaca (ambigua)",  # the thesis model's slip
        "Error: dirección'mem689' excede 4 dígitos",
        "LD r0,[rD+H'C1'] ; rD = DAC00",
        "LD r0, [rD+H'C1'] ; rD = DA00",
        "LD rF,[rD+H'08']",
        "HALT",
    ):
        assert not line_checker["thesis"].accepts(line) and not is_valid_line(line, "thesis")
    assert not root_checker["thesis"].accepts(THESIS_BLOCK + "\n")


def test_every_valid_instruction_word_is_a_full_line(root_checker):
    lines = [isa.decode(w).text() for w in range(1 << 16) if isa.decode(w) is not None]
    assert len(lines) == 36_924
    assert root_checker["full"].accepts("\n".join(lines))
    assert all(is_valid_line(ln, "full") for ln in lines[::37])


def test_generated_outputs_are_in_the_language(root_checker):
    for preset in VARIANTS:
        for ex in generate_examples(preset, 300, seed=7):
            assert root_checker[preset].accepts(ex.output), ex.output


# --- random canonical lines and random mutations ------------------------------------------

hexdig = st.sampled_from("0123456789ABCDEF")
reg = st.integers(0, 15).map(isa.register_name)
label = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not (len(s) == 2 and s[0] in "rR" and s[1] in "0123456789abcdefABCDEF")
)
comment = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=12).map(
    lambda s: s.strip(" \t")
).filter(bool)
token = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="'\n\r"), min_size=1, max_size=8)


@st.composite
def instruction_line(draw):
    spec = draw(st.sampled_from(isa.SPECS))
    ins = isa.Instruction(spec, rx=draw(st.integers(0, 15)), rs=draw(st.integers(0, 15)), ra=draw(st.integers(0, 15)),
                          v=draw(st.integers(0, 255)))  # fmt: skip
    if spec.format in (isa.Format.F0, isa.Format.F2):
        ins = isa.Instruction(spec)
    elif spec.format is isa.Format.F1:
        ins = isa.Instruction(spec, rx=ins.rx)
    return ins.text()


@st.composite
def full_line(draw):
    kind = draw(st.sampled_from(["ins", "ins_comment", "label", "comment", "org", "dw", "lohi"]))
    if kind == "ins":
        return draw(instruction_line())
    if kind == "ins_comment":
        return f"{draw(instruction_line())} ; {draw(comment)}"
    if kind == "label":
        return f"{draw(label)}:"
    if kind == "comment":
        return f"; {draw(comment)}"
    if kind == "org":
        return f"ORG H'{draw(st.integers(0, 0xFFFF)):04X}'"
    if kind == "dw":
        return draw(st.sampled_from(["DW H'{:04X}'".format(draw(st.integers(0, 0xFFFF))), f"DW {draw(label)}"]))
    part = draw(st.sampled_from(["lo", "hi"]))
    return draw(st.sampled_from([f"LLI {draw(reg)},{part}({draw(label)})", f"LD {draw(reg)},[rD+{part}({draw(label)})]"]))


@st.composite
def thesis_line(draw):
    kind = draw(st.sampled_from(["LD", "ST", "ADDS", "SUBS", "Error"]))
    page = f"{draw(hexdig)}{draw(hexdig)}00"
    off = f"H'{draw(hexdig)}{draw(hexdig)}'"
    if kind == "LD":
        return f"LD {draw(reg)},[rD+{off}] ; rD = {page}"
    if kind == "ST":
        return f"ST [rD+{off}],{draw(reg)} ; rD = {page}"
    if kind in ("ADDS", "SUBS"):
        return f"{kind} {draw(reg)},{draw(reg)},{draw(reg)}"
    problems = draw(st.lists(st.tuples(st.sampled_from(errors_catalogue.CATALOGUE), token), min_size=1, max_size=3))
    return errors_catalogue.error_line([(p.code, t) for p, t in problems])


NOISE = list(" ,;:'[]+()rRhHdD0123456789ABCDEFabcxyzLSTWOPI\t\r_") + ["í", "é", "\x00"]


@st.composite
def mutated(draw, base):
    s = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "swapcase"]))
        ch = draw(st.sampled_from(NOISE))
        if op == "delete":
            s = s[:i] + s[i + 1 :]
        elif op == "insert":
            s = s[:i] + ch + s[i:]
        elif op == "replace":
            s = s[:i] + ch + s[i + 1 :]
        else:
            s = s[:i] + s[i : i + 1].swapcase() + s[i + 1 :]
    return s


LINES = {"thesis": thesis_line(), "full": full_line()}
FAST = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.mark.parametrize("variant", VARIANTS)
@given(data=st.data())
@FAST
def test_canonical_lines_are_accepted(line_checker, variant, data):
    line = data.draw(LINES[variant])
    assert is_valid_line(line, variant), line
    assert line_checker[variant].accepts(line), line


@pytest.mark.parametrize("variant", VARIANTS)
@given(data=st.data())
@FAST
def test_grammar_and_validator_agree_on_mutated_lines(line_checker, variant, data):
    line = data.draw(mutated(LINES[variant]))
    assert line_checker[variant].accepts(line) == is_valid_line(line, variant), repr(line)


@pytest.mark.parametrize("variant", VARIANTS)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30))
@FAST
def test_random_text_is_rejected_by_both(line_checker, variant, text):
    assert line_checker[variant].accepts(text) == is_valid_line(text, variant), repr(text)


@pytest.mark.parametrize("variant", VARIANTS)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_lark_agrees(lark_parser, line_checker, variant, data):
    line = data.draw(st.one_of(LINES[variant], mutated(LINES[variant])))
    assert lark_accepts(lark_parser[variant], line) == line_checker[variant].accepts(line), repr(line)
