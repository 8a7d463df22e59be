"""The three measures of one output: the grammar-decoding study's two, and the one it should have had.

- syntactic: the study's annex Lark grammar (LALR) accepts the raw text;
- sympy: the study's "semantic correctness": `sympy.sympify(text)` does not raise. It
  only asks whether SymPy can read the text: `sympify("9*15==136")` is False, no error,
  so it counts as correct;
- correct: every side of the `==` chain (at least two sides) equals the problem's value,
  in exact arithmetic (exact.py).
The measures can disagree in every direction: "9*15==0135" is grammatical and true, but
SymPy (Python's literals) refuses the leading zero that Lark's NUMBER allows.

The study rewrote "=" into "==" before scoring free-running outputs; our model writes
"==" itself (as its training data does), where that rewrite would only turn "==" into
"====", so every mode is scored on the raw text.

SymPy's sympify runs Python's eval on its input, and a free-running model writes
arbitrary text, so a text reaches SymPy only when it is made of digits, letters, white
space and `.+-*/()=<>`, has no `**` (9**9**9 would never finish) and calls nothing
(`name(` or `)(`, which is how eval reaches exit() or input()). Anything else counts as
"SymPy cannot parse it". For our models' outputs this never changes the verdict of a text
that is arithmetic (the filter only refuses what the grammar refuses too); the counts of
refused texts are reported beside the scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from tinylm.tasks.arithmetic.exact import truly_correct
from tinylm.tasks.arithmetic.grammar import parses

_SAFE = re.compile(r"[0-9A-Za-z\s.+\-*/()=<>]*")
_CALL = re.compile(r"[\w)]\s*\(")


@dataclass(frozen=True)
class Scores:
    syntactic: bool
    sympy: bool
    correct: bool
    sympy_refused: bool  # not handed to SymPy (unsafe text): counted as not parsing


def safe_for_sympy(text: str) -> bool:
    return _SAFE.fullmatch(text) is not None and "**" not in text and _CALL.search(text) is None


def sympy_parses(text: str) -> bool:
    """The study's semantic measure, on texts that are safe to eval (see the module docstring)."""
    import sympy

    if not safe_for_sympy(text):
        return False
    try:
        sympy.sympify(text)
    except Exception:  # SympifyError, SyntaxError, TypeError, TokenError...: all mean "does not parse"
        return False
    return True


def score(text: str, target: int | Fraction) -> Scores:
    return Scores(
        syntactic=parses(text),
        sympy=sympy_parses(text),
        correct=truly_correct(text, target),
        sympy_refused=not safe_for_sympy(text),
    )
