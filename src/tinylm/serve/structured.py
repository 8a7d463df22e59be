"""Structured output for the API: response_format / grammar / regex -> a LogitsProcessor.

The grammar machinery lives in tinylm.constrain (XGrammar); it is imported only when a
request asks for structure, so a server without xgrammar still serves plain text and
answers structured requests with a clear 400.
"""

from __future__ import annotations

from typing import Any

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.generation import LogitsProcessor
from tinylm.serve.schemas import CompletionRequest


def requested_grammar(request: CompletionRequest) -> tuple[str, dict[str, Any]] | None:
    """(param, keyword arguments of tinylm.constrain.constrain) for the structure a request
    asks for, or None for free text."""
    fmt = request.response_format
    if request.grammar is not None:
        return "grammar", {"grammar": _ebnf(request.grammar)}
    if request.regex is not None:
        return "regex", {"regex": request.regex}
    if fmt is not None and fmt.type == "json_object":
        # Any object (compact JSON, as every tinylm JSON grammar writes it).
        return "response_format", {"json_schema": {"type": "object", "additionalProperties": True}}
    if fmt is not None and fmt.type == "json_schema":
        return "response_format", {"json_schema": fmt.json_schema.schema_}
    return None


def build_processor(lm: LanguageModel, spec: dict[str, Any]) -> LogitsProcessor:
    """Compile the grammar for this model (raises TinyLMError for a bad grammar or no xgrammar)."""
    try:
        from tinylm.constrain import constrain
    except ImportError as e:
        raise TinyLMError(f"structured output is not available on this server ({e})") from None
    return constrain(lm, **spec)


def _ebnf(text: str) -> Any:
    """A request's grammar is GBNF text, never a file path or a built-in name on the server."""
    from tinylm.constrain import Grammar

    return Grammar.ebnf(text, "grammar")
