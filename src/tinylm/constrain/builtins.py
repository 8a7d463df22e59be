"""The grammars `--grammar NAME` knows, each owned by the task that defines its language.

- code2-thesis, code2-full: the CODE-2 task's output (one or more assembly lines), generated
  from the ISA table by tinylm.tasks.code2.grammar;
- arithmetic: seed 003's arithmetic grammar (its annex Lark version, translated to GBNF by
  tinylm.tasks.arithmetic.grammar);
- json: any JSON value, written compactly (the JSON schema `{}`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from tinylm.constrain.grammar import Grammar
from tinylm.errors import TinyLMError


def _code2(variant: str) -> Grammar:
    from tinylm.tasks.code2.grammar import grammar_ebnf

    return Grammar.ebnf(grammar_ebnf(variant), f"code2-{variant}")


def _arithmetic() -> Grammar:
    from tinylm.tasks.arithmetic.grammar import ARITHMETIC_EBNF

    return Grammar.ebnf(ARITHMETIC_EBNF, "arithmetic")


BUILTIN_GRAMMARS: dict[str, tuple[str, Callable[[], Grammar]]] = {
    "code2-thesis": ("CODE-2 assembly output, thesis variant (LD/ST/ADDS/SUBS, error lines)", lambda: _code2("thesis")),
    "code2-full": ("CODE-2 assembly output, every instruction, labels, comments, ORG, DW", lambda: _code2("full")),
    "arithmetic": ("seed 003's arithmetic expressions with chained ==", _arithmetic),
    "json": ("any JSON value, compact", lambda: Grammar.json_schema({}, "json")),
}


@lru_cache(maxsize=None)
def builtin(name: str) -> Grammar:
    if name not in BUILTIN_GRAMMARS:
        raise TinyLMError(f"unknown built-in grammar {name!r}; choose one of: {', '.join(BUILTIN_GRAMMARS)}")
    return BUILTIN_GRAMMARS[name][1]()
