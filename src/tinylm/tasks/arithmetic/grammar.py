"""The grammar-decoding study's arithmetic grammar: the Lark original (for checking) and its GBNF translation (for decoding).

STUDY_LARK is the study's annex grammar, verbatim: the version that actually ran, both
as vLLM's guided_grammar and as the LALR parser that scored "syntactic correctness".
XGrammar reads GBNF, so ARITHMETIC_EBNF translates it rule by rule:

- `?comparison: expression ("==" expression)*` and the expression/term/factor levels are
  kept as they are (the `?` of Lark only inlines tree nodes; the language is the same);
- `%import common.NUMBER` is spelt out: NUMBER = FLOAT | INT, INT = [0-9]+,
  DECIMAL = INT "." INT? | "." INT, FLOAT = INT EXP | DECIMAL EXP?, EXP = [eE] [+-]? INT;
- `%ignore " "` (spaces allowed between any two tokens, never inside one) becomes `ws`
  after every token and once at the start. Spaces only follow tokens, so there is exactly
  one way to place them and the parser never has to carry ambiguous splits;
- the optional trailing "<|eot_id|>" literal is Llama 3's end token: in tinylm the
  tokenizer's eos plays that part, so the GBNF ends where the grammar may end and
  XGrammar allows eos there.

tests/arithmetic/test_arithmetic_grammar.py checks the translation against Lark on
thousands of strings. `parses(text)` is the study's syntactic measure: Lark's LALR parser
on the raw text (Lark is an optional dependency, `pip install 'tinylm[grammar]'`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tinylm.errors import TinyLMError

# Verbatim from the study's annex (its reference notes in shared/reference/, section 2).
STUDY_LARK = r"""
?start: comparison

?comparison: expression ("==" expression)* "<|eot_id|>"?

?expression: term (("+" | "-") term)*

?term: factor (("*" | "/" ) factor)*

?factor: NUMBER
    | "-" factor
    | "(" comparison ")"

%import common.NUMBER
%ignore " " // Ignore spaces

// Define <|eot_id|> as a terminal
EOT_ID: "<|eot_id|>"
"""

ARITHMETIC_EBNF = r"""# The grammar-decoding study's arithmetic grammar (annex Lark version), translated to GBNF by tinylm.
root ::= ws comparison
comparison ::= expression ("==" ws expression)*
expression ::= term ([-+] ws term)*
term ::= factor ([*/] ws factor)*
factor ::= number ws | "-" ws factor | "(" ws comparison ")" ws
number ::= int exp? | decimal exp?
decimal ::= int "." int? | "." int
exp ::= [eE] [-+]? int
int ::= [0-9]+
ws ::= " "*
"""


@lru_cache(maxsize=1)
def lark_parser() -> Any:
    try:
        from lark import Lark
    except ImportError:
        raise TinyLMError("the arithmetic checker needs lark: pip install 'tinylm[grammar]'") from None
    return Lark(STUDY_LARK, parser="lalr")


def parses(text: str) -> bool:
    """The study's syntactic correctness: Lark's LALR parser accepts the text."""
    from lark.exceptions import LarkError

    try:
        lark_parser().parse(text)
    except LarkError:
        return False
    return True
