"""Exact values of the grammar-decoding study's expressions: a small lexer and recursive-descent parser over Fractions.

The study called an output "semantically correct" when SymPy could parse it, which says
nothing about whether `(9*15)==(9*10+9*6)` is true. This evaluates every side of the
chain exactly, without eval(): the language is the grammar's (grammar.py), read by hand:

    comparison := expression ("==" expression)*
    expression := term (("+" | "-") term)*          left to right
    term       := factor (("*" | "/") factor)*      left to right
    factor     := NUMBER | "-" factor | "(" comparison ")"

NUMBER is Lark's common.NUMBER (123, 1.5, .5, 5., 1e3, 2.5E-2), read exactly (Fraction of
its decimal text); spaces between tokens are skipped, as `%ignore " "` does.

A side that has no numeric value makes the chain wrong: division by zero, a parenthesized
comparison with an `==` inside (a truth value, not a number), or an exponent beyond
±MAX_EXPONENT (10**10**9 would not fit in memory; no honest rewrite of 9*15 needs it).
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_EXPONENT = 4096
_TOKEN = re.compile(r" *(?:(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)|(?P<op>==|[-+*/()]))")


class _Syntax(Exception):
    pass


Value = Fraction | None  # None: the (sub)expression has no numeric value; parsing goes on


def _number(text: str) -> Value:
    mantissa, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        return None
    value = Fraction(mantissa)  # Fraction reads "5.", ".5" and "1.25" exactly
    return value * Fraction(10) ** int(exponent) if exponent else value


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    stripped = text.rstrip(" ")
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if m is None:
            raise _Syntax
        out.append(m.group("num") or m.group("op"))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise _Syntax
        self.i += 1
        return self.tokens[self.i - 1]

    def comparison(self) -> list[Value]:
        sides = [self.expression()]
        while self.peek() == "==":
            self.take()
            sides.append(self.expression())
        return sides

    def expression(self) -> Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            if value is not None and right is not None:
                value = value + right if op == "+" else value - right
            else:
                value = None
        return value

    def term(self) -> Value:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.factor()
            if value is None or right is None or (op == "/" and right == 0):
                value = None
            else:
                value = value * right if op == "*" else value / right
        return value

    def factor(self) -> Value:
        token = self.take()
        if token == "-":
            value = self.factor()
            return None if value is None else -value
        if token == "(":
            sides = self.comparison()
            if self.take() != ")":
                raise _Syntax
            return sides[0] if len(sides) == 1 else None
        if token[0].isdigit() or token[0] == ".":
            return _number(token)
        raise _Syntax


def sides(text: str) -> list[Value] | None:
    """The exact value of every top-level side of the chain (None where a side has no
    value), or None if the text is not in the grammar's language at all."""
    try:
        parser = _Parser(_tokens(text))
        out = parser.comparison()
    except _Syntax:
        return None
    if parser.peek() is not None:
        return None
    return out


def truly_correct(text: str, target: int | Fraction) -> bool:
    """At least one `==`, and every side equal to target."""
    values = sides(text)
    return values is not None and len(values) >= 2 and all(v is not None and v == target for v in values)
