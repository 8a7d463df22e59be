"""Grammar: what a constrained generation must produce, as a value (kind + source text).

Three kinds, all compiled by XGrammar into the same pushdown automaton:
- "ebnf": GBNF text (llama.cpp's EBNF dialect, as XGrammar reads it), root rule `root`;
- "regex": a regular expression the whole output must match;
- "json_schema": a JSON schema (text, dict or pydantic model); the output is compact,
  single-line JSON as `json.dumps` writes it (", " and ": "), properties in schema order,
  no properties the schema does not name. Compact because a small model cannot be
  trusted with free whitespace: it may emit spaces until it runs out of tokens.

A Grammar is parsed when it is made, so a mistake surfaces at once, as one line with the
position and the reason, before any model runs:

    invalid grammar my.gbnf: EBNF parser error at line 3, column 9: Rule "term" is not defined

Parsing depends only on the source, so it is cached by (kind, source); compiling for a
tokenizer is compiler.py's job. `Grammar.resolve("code2-full" | "path/to/file.gbnf")` is
what `tinylm generate --grammar` calls; `builtin(name)` gives a named grammar (their names
and sources: builtins.py, where each task plug-in contributes its own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tinylm.constrain.backend import reason, xgrammar
from tinylm.constrain.builtins import BUILTIN_GRAMMARS
from tinylm.errors import TinyLMError

KINDS = ("ebnf", "regex", "json_schema")
_WHAT = {"ebnf": "grammar", "regex": "regex", "json_schema": "JSON schema"}


@dataclass(frozen=True)
class Grammar:
    kind: str
    source: str
    name: str = ""  # how messages refer to it: a built-in name, a file path

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TinyLMError(f"unknown grammar kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if not isinstance(self.source, str):
            raise TinyLMError(f"a {_WHAT[self.kind]} must be text, got {type(self.source).__name__}")
        self.parse()

    @property
    def key(self) -> tuple[str, str]:
        """What the compiled form depends on (the name is only for messages)."""
        return (self.kind, self.source)

    @classmethod
    def ebnf(cls, text: str, name: str = "") -> "Grammar":
        return cls("ebnf", text, name)

    @classmethod
    def regex(cls, pattern: str) -> "Grammar":
        return cls("regex", pattern, "")

    @classmethod
    def json_schema(cls, schema: str | dict | type | os.PathLike, name: str = "") -> "Grammar":
        """From JSON text, a dict, a pydantic model class, or a path to a .json file."""
        if isinstance(schema, os.PathLike):
            name = name or str(schema)
            schema = _read(Path(schema), "JSON schema")
        if isinstance(schema, type):
            if not hasattr(schema, "model_json_schema"):
                raise TinyLMError(f"{schema.__name__} is not a pydantic model (it has no model_json_schema)")
            schema = schema.model_json_schema()
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as e:
                where = f" {name}" if name else ""
                raise TinyLMError(f"invalid JSON schema{where}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        if not isinstance(schema, (dict, bool)):
            raise TinyLMError(f"a JSON schema must be an object, got {type(schema).__name__}")
        # Key order is kept: it is the order the properties are generated in.
        return cls("json_schema", json.dumps(schema, ensure_ascii=False), name)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Grammar":
        """An EBNF (GBNF) grammar file."""
        return cls.ebnf(_read(Path(path), "grammar"), str(path))

    @classmethod
    def resolve(cls, spec: str) -> "Grammar":
        """A built-in grammar's name, or the path of an EBNF file."""
        if spec in BUILTIN_GRAMMARS:
            return builtin(spec)
        if Path(spec).is_file():
            return cls.from_file(spec)
        raise TinyLMError(
            f"grammar {spec!r} is neither a built-in grammar ({', '.join(BUILTIN_GRAMMARS)}) nor a file"
        )

    def parse(self) -> Any:
        """The xgrammar.Grammar (cached by source)."""
        try:
            return _parse(self.kind, self.source)
        except RuntimeError as e:
            where = f" {self.name}" if self.name else ""
            raise TinyLMError(f"invalid {_WHAT[self.kind]}{where}: {reason(e)}") from None

    def ebnf_text(self) -> str:
        """The grammar in XGrammar's normalized EBNF (what a regex or schema turns into)."""
        return str(self.parse())

    def accepts(self, text: str) -> bool:
        """Whether `text` is a complete sentence of the grammar (an independent check of outputs)."""
        xgr = xgrammar()
        matcher = xgr.GrammarMatcher(_checker(self.kind, self.source))
        return matcher.accept_string(text) and matcher.is_completed()

    def is_prefix(self, text: str) -> bool:
        """Whether `text` can still be completed into a sentence (what a cut-off output must be)."""
        xgr = xgrammar()
        return xgr.GrammarMatcher(_checker(self.kind, self.source)).accept_string(text)

    def __str__(self) -> str:
        return self.name or f"<{_WHAT[self.kind]}>"


@lru_cache(maxsize=None)
def builtin(name: str) -> Grammar:
    """A named grammar (builtins.py), parsed once."""
    if name not in BUILTIN_GRAMMARS:
        raise TinyLMError(f"unknown built-in grammar {name!r}; choose one of: {', '.join(BUILTIN_GRAMMARS)}")
    entry = BUILTIN_GRAMMARS[name]
    return Grammar(entry.kind, entry.source(), name)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TinyLMError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise TinyLMError(f"expected a {what} file, got a folder: {path}") from None
    except UnicodeDecodeError as e:
        raise TinyLMError(f"{what} file {path} is not UTF-8 text (byte {e.start})") from None


# XGrammar 0.2.8 writes the characters of a length-limited JSON string (minLength, maxLength)
# as this class, which lets raw control characters through; JSON requires them escaped.
_LOOSE_JSON_CHAR = r'[^\"\\\r\n]'
_JSON_CHAR = r'[^\0-\x1f\"\\]'


@lru_cache(maxsize=128)
def _parse(kind: str, source: str) -> Any:
    xgr = xgrammar()
    if kind == "ebnf":
        return xgr.Grammar.from_ebnf(source, root_rule_name="root")
    if kind == "regex":
        return xgr.Grammar.from_regex(source)
    grammar = xgr.Grammar.from_json_schema(source, any_whitespace=False, strict_mode=True)
    text = str(grammar)
    if _LOOSE_JSON_CHAR in text:
        grammar = xgr.Grammar.from_ebnf(text.replace(_LOOSE_JSON_CHAR, _JSON_CHAR), root_rule_name="root")
    return grammar


@lru_cache(maxsize=32)
def _checker(kind: str, source: str) -> Any:
    """Compiled for an empty vocabulary: matching strings needs no tokenizer."""
    xgr = xgrammar()
    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), max_threads=1, cache_enabled=False).compile_grammar(
        _parse(kind, source)
    )
