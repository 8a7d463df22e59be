"""Exact evaluation of every side, checked against SymPy's exact arithmetic on generated expressions."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from tinylm.tasks.arithmetic.exact import MAX_EXPONENT, sides, truly_correct

sympy = pytest.importorskip("sympy")


def random_expression(rng: random.Random, depth: int = 0) -> str:
    kind = rng.random()
    if depth > 2 or kind < 0.35:
        return rng.choice([str(rng.randint(0, 99)), f"{rng.randint(0, 9)}.{rng.randint(0, 99)}", f".{rng.randint(1, 9)}",
                           f"{rng.randint(1, 9)}e{rng.randint(-2, 2)}"])
    if kind < 0.45:
        return "-" + random_expression(rng, depth + 1)
    if kind < 0.6:
        return "(" + random_expression(rng, depth + 1) + ")"
    return random_expression(rng, depth + 1) + rng.choice("+-*/") + random_expression(rng, depth + 1)


def sympy_value(text: str) -> Fraction | None:
    """SymPy's exact value (floats given as exact rationals), None for division by zero."""
    value = sympy.sympify(text, rational=True)
    if value.has(sympy.zoo, sympy.nan, sympy.oo):
        return None
    return Fraction(int(value.p), int(value.q))


def test_values_match_sympy_on_random_expressions():
    rng = random.Random(0)
    checked = 0
    for _ in range(400):
        text = random_expression(rng)
        [ours] = sides(text)
        assert ours == sympy_value(text), text
        checked += ours is not None
    assert checked > 300


def test_chains_sides_and_truth():
    assert sides("(9*15)==(9*10+9*5)==(135*1)") == [135, 135, 135]
    assert truly_correct("(9*15)==(9*10+9*5)==(135*1)", 135)
    assert not truly_correct("(9*15)==(9*10+9*6)", 135)
    assert not truly_correct("(9*15)", 135)  # a rewrite needs at least one ==
    assert not truly_correct("9*15==136", 135)
    assert truly_correct(" 9 * 15 == 135.0 == 1.35e2 ", 135)


def test_sides_without_value():
    assert sides("(1/0)==3") == [None, 3]
    assert sides("(9*15==135)*1==1") == [None, 1]  # a truth value is not a number
    assert sides(f"1e{MAX_EXPONENT + 1}==1") == [None, 1]
    assert sides("1e99999999999==1") == [None, 1]  # refused, not computed
    assert not truly_correct("(135/0)==135", 135)


def test_not_in_the_language():
    for text in ("9*15==", "(9*15", "9*15)", "9 15", "9**2", "a==1", "9*15\n"):
        assert sides(text) is None, text
