"""Request bodies of the HTTP API, validated before anything reaches the model.

Strict types (no "0.5" for a number, no true for an integer), finite numbers, ranges as
in OpenAI's API, and unknown fields refused: a misspelt parameter is an error, not a
silent default. Checks that need the model (prompt length against the context) are done
by the app after encoding.

tinylm extensions to OpenAI's /v1/completions: top_k, min_p, repetition_penalty,
ignore_eos (benchmarks), and structured output by `grammar` (GBNF) or `regex`, besides
OpenAI's response_format (json_object, json_schema).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 16
MAX_STOP = 16


class StrictBody(BaseModel):
    """A request body: strict types, finite numbers, no unknown fields (task routes use it too)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True)


class JsonSchemaFormat(StrictBody):
    name: str = Field("response", max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(StrictBody):
    include_usage: bool = False


class CompletionRequest(StrictBody):
    model: str | None = None
    prompt: str | list[str] = Field(..., description="one prompt, or several (each gets n choices)")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, description="0 or -1 = off")
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1, le=MAX_N)
    best_of: int | None = Field(None, ge=1, le=MAX_N)
    echo: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    suffix: str | None = None
    user: str | None = None
    ignore_eos: bool = False
    response_format: ResponseFormat | None = None
    grammar: str | None = Field(None, min_length=1, max_length=100_000)
    regex: str | None = Field(None, min_length=1, max_length=10_000)

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not 1 <= len(v) <= 64:
            raise ValueError("a list of prompts must hold 1 to 64 strings")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings")
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return v

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def unsupported(self) -> tuple[str, str] | None:
        """(param, reason) for an OpenAI parameter this server does not implement, if one is set."""
        if self.logprobs is not None:
            return "logprobs", "logprobs are not supported"
        if self.logit_bias:
            return "logit_bias", "logit_bias is not supported (use grammar or regex to restrict tokens)"
        if self.suffix:
            return "suffix", "suffix (insertion) is not supported"
        if self.best_of is not None and self.best_of != self.n:
            return "best_of", "best_of must equal n (no server-side ranking)"
        if self.stream_options is not None and not self.stream:
            return "stream_options", "stream_options needs stream: true"
        structured = [name for name in ("grammar", "regex") if getattr(self, name) is not None]
        if self.response_format is not None and self.response_format.type != "text":
            structured.append("response_format")
        if len(structured) > 1:
            return structured[1], f"use only one of grammar, regex, response_format (got {', '.join(structured)})"
        if self.response_format is not None and self.response_format.type == "json_schema" \
                and self.response_format.json_schema is None:
            return "response_format", "type json_schema needs a json_schema object"
        return None
