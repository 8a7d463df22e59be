"""The three measures on the reference note's examples, and the SymPy safety filter."""

from __future__ import annotations

import pytest

pytest.importorskip("sympy")
pytest.importorskip("lark")

from tinylm.tasks.arithmetic.checks import safe_for_sympy, score  # noqa: E402


@pytest.mark.parametrize("text, syntactic, sympy, correct", [
    ("(9*15)==(9*10+9*5)==(135*1)", True, True, True),
    ("9*15==136", True, True, False),  # SymPy returns False, no error: "semantically correct"
    ("(5*5)==(5+5)", True, True, False),
    ("Here is 9*15", False, True, False),  # SymPy reads it (symbols), the grammar does not
    ("(9*15) .", False, False, False),
    ("(9*15)=(135)", False, False, False),
    ("9*15==0135", True, False, True),  # Lark's INT allows leading zeros, Python's literals do not
    ("", False, False, False),
])
def test_measures(text, syntactic, sympy, correct):
    s = score(text, 135)
    assert (s.syntactic, s.sympy, s.correct) == (syntactic, sympy, correct)


@pytest.mark.parametrize("text", ["exit()", "input()", "(exit)()", "9**9**9**9", "__import__('os')", "9^99999", "99999!"])
def test_unsafe_texts_never_reach_sympy(text):
    assert not safe_for_sympy(text)
    s = score(text, 135)
    assert s.sympy_refused and not s.sympy


def test_everything_the_grammar_accepts_is_safe():
    from tinylm.tasks.arithmetic.data import all_problems, make_pairs

    assert all(safe_for_sympy(p["output"]) for p in make_pairs(all_problems(10), 300, seed=2))
