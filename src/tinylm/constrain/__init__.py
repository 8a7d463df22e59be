"""Grammar-constrained decoding with XGrammar: every output is in the grammar by construction.

    import tinylm
    from tinylm.constrain import Grammar, constrain

    lm = tinylm.load("runs/arithmetic/model")
    lm.generate(prompt, logits_processor=constrain(lm, grammar="arithmetic"))     # a built-in, or a .gbnf file
    lm.generate(prompt, logits_processor=constrain(lm, regex=r"[0-9]+(\\.[0-9]+)?"))
    lm.generate(prompt, logits_processor=constrain(lm, json_schema=MyPydanticModel))  # or a dict, JSON text, a path

The same as `tinylm generate CKPT --grammar NAME|FILE`, `--regex PATTERN`, `--json-schema FILE`.
Files: backend (importing xgrammar, its error messages), grammar (the Grammar value:
EBNF, regex, JSON schema; named grammars), builtins (the names: each task plug-in's
grammars, e.g. code2-thesis, code2-full, arithmetic; and json),
compiler (tokenizer vocabulary -> XGrammar, compile caches), processor (the masking hook).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tinylm.constrain.builtins import BUILTIN_GRAMMARS
from tinylm.constrain.compiler import CacheInfo, CompiledGrammar, cache_info, clear_cache, compile_grammar
from tinylm.constrain.grammar import Grammar, builtin
from tinylm.constrain.processor import GrammarProcessor
from tinylm.errors import TinyLMError

__all__ = [
    "BUILTIN_GRAMMARS", "CacheInfo", "CompiledGrammar", "Grammar", "GrammarProcessor", "builtin", "cache_info",
    "clear_cache", "compile_grammar", "constrain", "to_grammar",
]

GrammarSpec = Grammar | str | os.PathLike


def to_grammar(
    grammar: GrammarSpec | None = None, *, regex: str | None = None, json_schema: Any = None
) -> Grammar:
    """Exactly one of: grammar (a Grammar, a built-in name or an EBNF file), regex, json_schema."""
    given = [name for name, value in (("grammar", grammar), ("regex", regex), ("json_schema", json_schema))
             if value is not None]
    if len(given) != 1:
        raise TinyLMError(f"give exactly one of grammar, regex, json_schema (got {', '.join(given) or 'none'})")
    if regex is not None:
        return Grammar.regex(regex)
    if json_schema is not None:
        return json_schema if isinstance(json_schema, Grammar) else Grammar.json_schema(json_schema)
    if isinstance(grammar, Grammar):
        return grammar
    if isinstance(grammar, os.PathLike):
        return Grammar.from_file(grammar)
    if isinstance(grammar, str):
        return Grammar.resolve(grammar)
    raise TinyLMError(f"grammar must be a Grammar, a built-in name or a file path, got {type(grammar).__name__}")


def constrain(
    lm: Any,
    grammar: GrammarSpec | Sequence[GrammarSpec] | None = None,
    *,
    regex: str | None = None,
    json_schema: Any = None,
    num_beams: int = 1,
) -> GrammarProcessor:
    """A GrammarProcessor for a LanguageModel (anything with .model and .tokenizer).

    A list of grammars gives each prompt its own (same order as the prompts); with beam
    search pass the same num_beams as the generation."""
    vocab_size = lm.model.config.vocab_size
    if isinstance(grammar, (list, tuple)):
        if regex is not None or json_schema is not None:
            raise TinyLMError("give exactly one of grammar, regex, json_schema")
        grammars = [to_grammar(g) for g in grammar]
    else:
        grammars = [to_grammar(grammar, regex=regex, json_schema=json_schema)]
    compiled = [compile_grammar(g, lm.tokenizer, vocab_size) for g in grammars]
    return GrammarProcessor(compiled, num_beams=num_beams)
