"""The generated data: every chain is true by construction, and the splits keep test problems unseen."""

from __future__ import annotations

import pytest

from tinylm.constrain import builtin
from tinylm.tasks.arithmetic.data import PROMPT, Problem, all_problems, make_pairs, split_problems
from tinylm.tasks.arithmetic.exact import truly_correct


def test_every_generated_chain_is_true_and_grammatical():
    grammar = builtin("arithmetic")
    pairs = make_pairs(all_problems(12), 1500, seed=5)
    for pair in pairs:
        meta = pair["meta"]
        assert pair["input"] == PROMPT.format(**meta)
        assert truly_correct(pair["output"], meta["value"]), pair
        assert grammar.accepts(pair["output"])
        sides = pair["output"].split("==")
        assert sides[0] == f"({meta['a']}{meta['op']}{meta['b']})" and 3 <= len(sides) <= 4


def test_lark_accepts_the_data():
    pytest.importorskip("lark")
    from tinylm.tasks.arithmetic.grammar import parses

    assert all(parses(p["output"]) for p in make_pairs(all_problems(8), 200, seed=1))


def test_problems_have_integer_values():
    problems = all_problems(20)
    assert len(problems) == 1600
    division = [p for p in problems if p.op == "/"]
    assert all(p.a % p.b == 0 and p.value * p.b == p.a for p in division)
    assert Problem(9, "*", 15).value == 135 and Problem(3, "-", 7).value == -4


def test_splits_are_disjoint_and_the_study_problem_is_test():
    splits = split_problems(20, seed=0)
    train, test = set(splits["train"]), set(splits["test"])
    assert not train & test and len(train) + len(test) == 1600
    assert Problem(9, "*", 15) in test and Problem(15, "*", 9) in test
    assert len(test) == 160


def test_make_pairs_is_deterministic():
    problems = all_problems(6)
    assert make_pairs(problems, 50, seed=3) == make_pairs(problems, 50, seed=3)
    assert make_pairs(problems, 50, seed=3) != make_pairs(problems, 50, seed=4)
