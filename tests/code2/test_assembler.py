"""Assembler and disassembler: syntax, tolerance, diagnostics, and the round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm.errors import TinyLMError
from tinylm.tasks.code2 import isa
from tinylm.tasks.code2.assembler import AssemblyError, assemble, canonicalize, check
from tinylm.tasks.code2.disassembler import disassemble, disassemble_word

SPEC_EXAMPLES = {
    "ADDS rD,r1,r2": 0x6D12,
    "SUBS rD,r7,r9": 0x7D79,
    "LD rF,[rD+H'08']": 0x0F08,
    "ST [rD+H'45'],r3": 0x1345,
    "LLI r1,H'2A'": 0x212A,
    "IN r2,IP05": 0x4205,
    "OUT OP01,r2": 0x5201,
    "SHL r3": 0x9300,
    "BZ": 0xC100,
    "CALLR": 0xD000,
    "RET": 0xE000,
    "HALT": 0xF000,
}


@pytest.mark.parametrize("text,word", SPEC_EXAMPLES.items())
def test_spec_examples(text, word):
    assert assemble(text).words == [word]
    assert disassemble([word]) == text


@pytest.mark.parametrize(
    "variant",
    ["adds rd, r1, r2", "ADDS   RD ,R1 ,  r2", "\tAdds rD,r1,r2   ; a comment", "AdDs Rd,R1,R2;x"],
)
def test_tolerant_spelling(variant):
    assert assemble(variant).words == [0x6D12]
    assert canonicalize(variant).split(" ;")[0] == "ADDS rD,r1,r2"


def test_constants_memory_operands_and_ports():
    text = "LLI r1,42\nLLI r1,H'2a'\nLLI r1,h'2A'\nLD r1,[rD]\nLD r1,[ 8 ]\nLD r1,[rD + 8]\nIN r1,ip5\nOUT op1F,r1"
    assert assemble(text).words == [0x212A, 0x212A, 0x212A, 0x0100, 0x0108, 0x0108, 0x4105, 0x511F]


def test_labels_origin_data_and_comments():
    text = """
    ; a comment line, then a blank line

            ORG H'0010'
    start:  LLI rD,lo(end)
            LHI rD,hi(end)
            BR              ; jump over the data
    table:  DW H'BEEF'
            DW table
            DW 65535
    end:    HALT
    """
    p = assemble(text)
    assert p.entry == 0x10
    assert p.labels == {"start": 0x10, "table": 0x13, "end": 0x16}
    assert p.image == {0x10: 0x2D16, 0x11: 0x3D00, 0x12: 0xC000, 0x13: 0xBEEF, 0x14: 0x0013, 0x15: 0xFFFF, 0x16: 0xF000}
    assert p.lines[0x10] == 5
    canonical = canonicalize(text)
    assert canonical.splitlines()[:4] == ["; a comment line, then a blank line", "ORG H'0010'", "start:", "LLI rD,lo(end)"]
    assert "BR ; jump over the data" in canonical
    assert assemble(canonical).image == p.image


def test_label_on_org_line_takes_the_new_address():
    assert assemble("HALT\nhere: ORG 100\nDW here").image == {0: 0xF000, 100: 100}


@pytest.mark.parametrize(
    "text,line,column,expected",
    [
        ("ADDS r1,r2", 1, 11, "expected ','"),
        ("HALT\nLD rG,[rD+8]", 2, 4, "expected a register"),
        ("LLI r1,256", 1, 8, "8-bit constant"),
        ("LLI r1,H'100'", 1, 8, "8-bit constant"),
        ("FOO r1", 1, 1, "expected an instruction"),
        ("LD r1,[rE+1]", 1, 8, "expected rD"),
        ("LD r1,[rD+H'zz']", 1, 13, "hex digits"),
        ("LD r1,[rD+H'1", 1, 11, "closing quote"),
        ("IN r1,OP05", 1, 7, "input port"),
        ("OUT IP05,r1", 1, 5, "output port"),
        ("HALT r1", 1, 6, "expected end of line"),
        ("LLI r1,é", 1, 8, "unexpected character"),
        ("r1: HALT", 1, 1, "label name"),
        ("x: HALT\nx: HALT", 2, 1, "defined twice"),
        ("LLI rD,lo(nowhere)", 1, 11, "undefined label"),
        ("LLI rD,fin", 1, 8, "lo(label)"),
        ("ORG H'FFFF'\nHALT\nHALT", 3, 1, "past address FFFF"),
        ("HALT\nORG 0\nHALT", 3, 1, "assigned twice"),
        ("DW 65536", 1, 4, "16-bit constant"),
        ("HALT\rHALT", 1, 5, "carriage return"),
    ],
)
def test_diagnostics_name_line_column_and_expectation(text, line, column, expected):
    with pytest.raises(AssemblyError) as info:
        assemble(text)
    d = info.value.diagnostics[0]
    assert (d.line, d.column) == (line, column)
    assert expected in d.message
    assert isinstance(info.value, TinyLMError)
    assert str(info.value).startswith(f"line {line}, column {column}: ")


def test_every_bad_line_is_reported():
    diags = check("LLI r1,300\nHALT\nADDS r1\nFOO\n")
    assert [d.line for d in diags] == [1, 3, 4]


def test_crlf_files():
    assert assemble("LLI r1,1\r\nHALT\r\n").words == [0x2101, 0xF000]


def test_thesis_mode_loads_rd_from_the_comment():
    p = assemble("LD rF,[rD+H'08'] ; rD = 0000\nST [rD+H'45'],r3 ; rd=da00", thesis=True)
    lli, lhi = isa.BY_MNEMONIC["LLI"].opcode, isa.BY_MNEMONIC["LHI"].opcode
    assert p.words == [lli << 12 | 0xD00, lhi << 12 | 0xD00, 0x0F08, lli << 12 | 0xD00, lhi << 12 | 0xDDA, 0x1345]
    assert canonicalize("ST [rD+H'45'],r3 ; rd=da00", thesis=True) == "ST [rD+H'45'],r3 ; rD = DA00"
    # Outside thesis mode the comment is only a comment.
    assert assemble("LD rF,[rD+H'08'] ; rD = 0000").words == [0x0F08]


@pytest.mark.parametrize(
    "line,expected",
    [
        ("LD rF,[rD+H'08']", "expected '; rD = HH00'"),
        ("LD rF,[rD+H'08'] ; hello", "expected 'rD = HH00'"),
        ("LD rF,[rD+H'08'] ; rD = DAC00", "expected 'rD = HH00'"),
        ("ST [rD+H'08'],r1 ; rD = 0001", "page address"),
    ],
)
def test_thesis_mode_requires_a_page_address_comment(line, expected):
    with pytest.raises(AssemblyError, match=expected):
        assemble(line, thesis=True)


def test_round_trip_of_all_65536_words():
    """assemble(disassemble(w)) == w for every word: valid instructions as themselves, the
    rest as DW data words; done as one 65 536-line listing."""
    listing = disassemble(range(1 << 16))
    lines = listing.split("\n")
    assert len(lines) == 1 << 16
    assert sum(not ln.startswith("DW ") for ln in lines) == 36_924
    assert assemble(listing).image == {w: w for w in range(1 << 16)}
    assert all(isa.decode(w) is None for w, ln in enumerate(lines) if ln.startswith("DW "))


def test_disassemble_image_with_gaps_round_trips():
    image = {0x10: 0x2101, 0x11: 0xF000, 0x200: 0x1234}
    text = disassemble(image, addresses=True)
    assert text.splitlines()[0] == "ORG H'0010'"
    assert assemble(text).image == image


# --- property: disassemble(assemble(text)) is the canonical form of text ------------------

_specs = st.sampled_from(isa.SPECS)


@st.composite
def instructions(draw):
    spec = draw(_specs)
    return isa.Instruction(
        spec,
        rx=draw(st.integers(0, 15)) if spec.format in (isa.Format.F1, isa.Format.F3, isa.Format.F4) else 0,
        rs=draw(st.integers(0, 15)) if spec.format is isa.Format.F4 else 0,
        ra=draw(st.integers(0, 15)) if spec.format is isa.Format.F4 else 0,
        v=draw(st.integers(0, 255)) if spec.format is isa.Format.F3 else 0,
    )


@st.composite
def messy_spelling(draw, ins):
    """The same instruction as a person might type it: case, spaces, decimal constants."""
    text = ins.text()
    if draw(st.booleans()):
        text = text.replace(f"H'{ins.v:02X}'", str(ins.v))
    if draw(st.booleans()):
        text = text.replace(",", draw(st.sampled_from([", ", " ,", " , ", ",\t"])))
    text = draw(st.sampled_from([str, str.lower, str.upper]))(text)
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return pad + text + pad


@given(st.lists(instructions(), min_size=1, max_size=12), st.data())
@settings(max_examples=200)
def test_disassemble_of_assemble_is_canonical(inss, data):
    text = "\n".join(data.draw(messy_spelling(i)) for i in inss)
    words = assemble(text).words
    assert words == [i.encode() for i in inss]
    assert disassemble(words) == canonicalize(text) == "\n".join(i.text() for i in inss)


def test_disassemble_word_of_invalid_word():
    assert disassemble_word(0xC500) == "DW H'C500'"
