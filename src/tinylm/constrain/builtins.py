"""The grammars `--grammar NAME` knows: every task plug-in's, and json.

Each task supplies the grammar of its own language through its plug-in (tinylm.tasks):
CODE-2's assembly output is generated from its ISA table, arithmetic is the
grammar-decoding study's Lark grammar translated to GBNF. `json` is any JSON value,
written compactly (the JSON schema `{}`).

This module only names the grammars and knows how to produce their source text;
grammar.py turns a name into a Grammar (`builtin(name)`), so the dependency runs one way:
grammar.py -> builtins.py -> the task registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinGrammar:
    description: str
    kind: str  # a Grammar kind: "ebnf" or "json_schema"
    source: Callable[[], str]  # the grammar's text, built on demand


def _builtins() -> dict[str, BuiltinGrammar]:
    from tinylm.tasks import plugins

    table = {name: BuiltinGrammar(g.description, "ebnf", g.ebnf) for p in plugins() for name, g in p.grammars.items()}
    table["json"] = BuiltinGrammar("any JSON value, compact", "json_schema", lambda: "{}")
    return table


BUILTIN_GRAMMARS: dict[str, BuiltinGrammar] = _builtins()
