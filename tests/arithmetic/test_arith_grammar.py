"""The GBNF translation of the grammar-decoding study's grammar accepts exactly what its Lark grammar accepts."""

from __future__ import annotations

import random

import pytest

from tinylm.constrain import builtin
from tinylm.tasks.arithmetic.exact import sides

pytest.importorskip("lark")
from tinylm.tasks.arithmetic.grammar import parses  # noqa: E402

PIECES = ["0", "1", "9", "12", "3.5", ".5", "5.", "1e3", "2E-2", "e", "E", ".", "+", "-", "*", "/", "(", ")",
          "==", "=", " ", "  ", "\n"]
ALPHABET = "0123456789.eE+-*/()= \n"

# From the reference note (Lark 1.3.1 on the annex grammar).
ACCEPTED = ["(9*15)==(9+9+9+9+9+9+9+9+9+9+9+9+9+9+9)==(135*1)", "9.5*2", "1e3", "--3", "(9*15==135)", " 9 * 15 == 135 "]
REJECTED = ["\n9*15", "9*15 .", "(9*15)=(135)", "9*15==", "", "9*15==135<", "9 15"]


def random_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2:
            out.append("".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))))
        else:
            out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 10))))
    return out


def test_reference_examples():
    g = builtin("arithmetic")
    for text in ACCEPTED:
        assert parses(text) and g.accepts(text) and sides(text) is not None, text
    for text in REJECTED:
        assert not parses(text) and not g.accepts(text) and sides(text) is None, text


def test_ebnf_translation_agrees_with_lark_on_random_strings():
    g = builtin("arithmetic")
    texts = random_strings(4000, seed=1)
    verdicts = [(parses(t), g.accepts(t), sides(t) is not None) for t in texts]
    disagreements = [(t, v) for t, v in zip(texts, verdicts) if len(set(v)) != 1]
    assert not disagreements, disagreements[:5]
    assert 200 < sum(v[0] for v in verdicts) < 3800  # both verdicts well represented


def test_every_prefix_of_a_sentence_is_a_viable_prefix():
    g = builtin("arithmetic")
    for text in ACCEPTED:
        assert all(g.is_prefix(text[:k]) for k in range(len(text) + 1))
    assert not g.is_prefix("9*15 .") and not g.is_prefix("(9*15)=(")
