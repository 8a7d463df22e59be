"""Line validation for model outputs: is_valid_line / line_problem / syntax_check."""

from __future__ import annotations

import pytest

from tinylm.errors import TinyLMError
from tinylm.tasks.code2.validate import is_valid_line, line_problem, quote_problems, syntax_check


def test_thesis_lines():
    assert is_valid_line("LD rF,[rD+H'08'] ; rD = 0000")
    assert is_valid_line("SUBS rD,r7,r9")
    assert is_valid_line("Error: registro 'N' inválido y dirección vacía (ambigua)")
    assert not is_valid_line("NAND r1,r2,r3")  # a real instruction, but not in the thesis format
    assert not is_valid_line("ADDS r1,r2,r3 ; a comment")
    assert not is_valid_line("LD rF,[rD+lo(x)] ; rD = 0000")
    assert "rD = HH00" in line_problem("LD rF,[rD+H'08']")
    assert "canonical form" in line_problem("ADDS r1, r2, r3")
    assert "canonical error line" in line_problem("Error: dirección vaca (ambigua)")


def test_full_lines():
    for line in ("NAND r1,r2,r3", "loop:", "; note", "LLI rD,lo(loop)", "ORG H'0100'", "DW loop", "HALT ; stop"):
        assert is_valid_line(line, "full"), line
    assert line_problem("x: HALT", "full") == "not in canonical form; expected 'x: / HALT'"
    assert line_problem("", "full") == "blank line: nothing to assemble"
    assert not is_valid_line("Error: dirección vacía (ambigua)", "full")


def test_syntax_check_reports_lines_and_columns():
    text = "SUBS rD,r2,r2\nLD rF,[rD+H'08']\nADDS rG,r1,r2\n"
    diags = syntax_check(text)
    assert [(d.line, d.column) for d in diags] == [(2, 17), (3, 6)]
    assert syntax_check("LLI rD,lo(end)\nBZ\nend:\nHALT\n", "full") == []
    assert [d.message for d in syntax_check("LLI rD,lo(nope)\nBZ", "full")] == ["undefined label 'nope'"]


def test_unknown_variant():
    with pytest.raises(TinyLMError, match="unknown CODE-2 output variant"):
        is_valid_line("HALT", "x86")


def test_quote_problems_finds_text_the_user_never_wrote():
    text = "Lee la dirección 4ADA menos r4 y ponlo en rG"
    assert quote_problems("Error: registro 'G' inválido", text) == []
    assert quote_problems("LD r4,[rD+H'DA'] ; rD = 4A00", text) == []  # only Error lines quote tokens
    assert quote_problems("Error: registro 'g' inválido", text)  # the case is the user's
    assert quote_problems("Error: registro '' inválido", text)
    mixed = "Error: dirección '4'ADA'mENos r4' contiene caracteres no hexadecimales"  # issue 13's example
    assert any("'mENos r4'" in p for p in quote_problems(mixed, text))
    # a wrong message quoting the input verbatim is a syntax problem, not a quoting one
    assert quote_problems("Error: registro '4ADA' excede 4 dígitos", text) == []
    assert any("odd number" in p for p in quote_problems("Error: registro 'G'' inválido", text))


def test_generated_error_lines_quote_only_their_input():
    from tinylm.tasks.code2.generator import generate_examples

    n_errors = 0
    for ex in generate_examples("thesis", 400, seed=3):
        for line, out in zip(ex.input.split("\n"), ex.output.split("\n")):
            assert quote_problems(out, line) == [], (line, out)
            n_errors += out.startswith("Error")
    assert n_errors > 200
