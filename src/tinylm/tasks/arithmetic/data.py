"""Paired data for the grammar-decoding study's task: "Rewrite A op B as ..." -> a chain of equal expressions.

    {"input": "Rewrite 9 * 15", "output": "(9*15)==(9*10+9*5)==(15*9)==(135*1)",
     "meta": {"a": 9, "op": "*", "b": 15, "value": 135}}

The prompt is the head of the study's instruction ("Rewrite 9 * 15 as others equivalents
expressions"): the tail is the same in every example, teaches a small model nothing and
would double what its training costs. The output is in the study's example format: the problem
itself in parentheses, then two or three other parenthesized expressions, joined by `==`,
every one of them equal to the problem's value (checked with exact arithmetic when made).

Problems: A op B for op in + - * / and A, B in 1..max_operand; a division is A = B * Q
with Q in 1..max_operand, so every value is an integer. The rewrites are the moves a
student would make: commute, split an operand into a sum (9*15 = 9*10+9*5), group
(9*(10+5)), factor an operand (9*3*5), add and take away the same number, or write the
value itself ((135*1)). Some need the value (a product the model must know), some only
need the operands, so a model can be right on a problem it never saw.

Splits: problems, not examples, are divided into train and test, so test problems are
unseen; the study's 9*15 (and 15*9) are always in the test split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tinylm.errors import TinyLMError

OPS = ("+", "-", "*", "/")
PROMPT = "Rewrite {a} {op} {b}"
STUDY_PROBLEM = (9, "*", 15)  # the one problem the grammar-decoding study asked its models
DEFAULT_MAX_OPERAND = 20
TEST_FRACTION = 0.1


@dataclass(frozen=True)
class Problem:
    a: int
    op: str
    b: int

    @property
    def value(self) -> int:
        return {"+": self.a + self.b, "-": self.a - self.b, "*": self.a * self.b, "/": self.a // self.b}[self.op]

    @property
    def prompt(self) -> str:
        return PROMPT.format(a=self.a, op=self.op, b=self.b)

    def meta(self) -> dict[str, Any]:
        return {"a": self.a, "op": self.op, "b": self.b, "value": self.value}


def all_problems(max_operand: int = DEFAULT_MAX_OPERAND) -> list[Problem]:
    if max_operand < 2:
        raise TinyLMError(f"max_operand must be at least 2, got {max_operand}")
    span = range(1, max_operand + 1)
    out = [Problem(a, op, b) for op in ("+", "-", "*") for a in span for b in span]
    out += [Problem(b * q, "/", b) for b in span for q in span]
    return out


def split_problems(max_operand: int = DEFAULT_MAX_OPERAND, seed: int = 0) -> dict[str, list[Problem]]:
    """train/test problems; the study's problem and its mirror image are always test."""
    problems = all_problems(max_operand)
    random.Random(seed).shuffle(problems)
    forced = {Problem(*STUDY_PROBLEM), Problem(STUDY_PROBLEM[2], "*", STUDY_PROBLEM[0])}
    n_test = max(1, int(TEST_FRACTION * len(problems)))
    test = [p for p in problems if p in forced]
    test += [p for p in problems if p not in forced][: n_test - len(test)]
    chosen = set(test)
    return {"train": [p for p in problems if p not in chosen], "test": test}


def rewrites(p: Problem, rng: random.Random) -> list[str]:
    """Expressions equal to p.value, other than p itself (no outer parentheses)."""
    a, b, v = p.a, p.b, p.value
    k = rng.randint(1, 9)
    out = [str(v), f"{v}*1", f"1*{v}", f"{v}+{k}-{k}"]
    if p.op == "*":
        out += [f"{b}*{a}", f"{a}*{b}*1"]
        if b > 1:
            b1 = rng.randint(1, b - 1)
            out += [f"{a}*{b1}+{a}*{b - b1}", f"{a}*({b1}+{b - b1})"]
        if a > 1:
            a1 = rng.randint(1, a - 1)
            out += [f"{a1}*{b}+{a - a1}*{b}"]
        out += [f"{a}*({b}+{k})-{a}*{k}"]
        factors = [f for f in range(2, b) if b % f == 0]
        if factors:
            f = rng.choice(factors)
            out += [f"{a}*{f}*{b // f}"]
    elif p.op == "+":
        out += [f"{b}+{a}", f"{a}+{b}+{k}-{k}"]
        if a > 1:
            a1 = rng.randint(1, a - 1)
            out += [f"{a1}+{a - a1}+{b}"]
        if b > 1:
            b1 = rng.randint(1, b - 1)
            out += [f"{a}+{b1}+{b - b1}", f"{a}+({b1}+{b - b1})"]
    elif p.op == "-":
        out += [f"-{b}+{a}", f"{a}+{k}-{b}-{k}", f"{a}-({b}+{k})+{k}"]
        if b > 1:
            b1 = rng.randint(1, b - 1)
            out += [f"{a}-{b1}-{b - b1}", f"{a}-({b1}+{b - b1})"]
    else:
        out += [f"{a}/{b}*1", f"{a}*1/{b}"]
        factors = [f for f in range(2, b) if b % f == 0]
        if factors:
            f = rng.choice(factors)
            out += [f"{a}/{f}/{b // f}"]
    return out


def chain(p: Problem, rng: random.Random) -> str:
    """The problem, then 2 or 3 distinct rewrites, each in parentheses, joined by ==."""
    options = list(dict.fromkeys(rewrites(p, rng)))  # distinct, in a stable order
    others = rng.sample(options, min(len(options), rng.randint(2, 3)))
    sides = [f"{p.a}{p.op}{p.b}"] + others
    text = "==".join(f"({s})" for s in sides)
    _check(text, p.value)
    return text


def _check(text: str, value: int) -> None:
    """Every side of every generated chain is verified with exact arithmetic, by a second implementation."""
    from tinylm.tasks.arithmetic.exact import sides

    values = sides(text)
    if values is None or any(v != Fraction(value) for v in values):
        raise AssertionError(f"generated chain {text!r} is not equal to {value}")


def make_pairs(problems: list[Problem], n: int, seed: int) -> list[dict[str, Any]]:
    """n examples: problems drawn uniformly with replacement, each with a fresh chain."""
    if not problems:
        raise TinyLMError("no problems to make examples from")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = rng.choice(problems)
        out.append({"input": p.prompt, "output": chain(p, rng), "meta": p.meta()})
    return out
