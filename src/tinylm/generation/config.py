"""GenerationConfig: every knob of one generation call, validated before any work starts.

Defaults are plain sampling at temperature 1 (what the model learned). Greedy decoding is
temperature=0, as in the educational-GPT study; beam search is num_beams > 1 and is always deterministic
(temperature, top-k, top-p, min-p and seed are then unused, as in Hugging Face without
do_sample).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from tinylm.errors import TinyLMError


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 1.0  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off; CTRL/HF style, over prompt + generated tokens
    presence_penalty: float = 0.0  # OpenAI style, over generated tokens
    frequency_penalty: float = 0.0  # OpenAI style, over generated tokens
    num_beams: int = 1
    length_penalty: float = 1.0  # beam search: a hypothesis scores sum(log p) / length**length_penalty
    stop_token_ids: tuple[int, ...] = ()  # besides the tokenizer's eos
    stop_strings: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past the tokenizer's eos (fixed-length benchmarks)
    seed: int | None = None  # None = torch's global generator

    def __post_init__(self) -> None:
        # Tuples so a config is hashable and cannot change under a running generation;
        # lists are accepted for convenience.
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))
        self.validate()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def uses_counts(self) -> bool:
        """Whether any penalty needs per-token counts (kept only then: they cost a (B, V) update per step)."""
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def validate(self) -> None:
        _int(self.max_new_tokens, "max_new_tokens", minimum=1)
        _int(self.top_k, "top_k", minimum=0)
        _int(self.num_beams, "num_beams", minimum=1)
        for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                     "frequency_penalty", "length_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TinyLMError(f"generation: {name} must be a finite number, got {value!r}")
        if self.temperature < 0:
            raise TinyLMError(f"generation: temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise TinyLMError(f"generation: top_p must be in (0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise TinyLMError(f"generation: min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise TinyLMError(f"generation: repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        for token in self.stop_token_ids:
            _int(token, "stop_token_ids entry", minimum=0)
        for s in self.stop_strings:
            if not isinstance(s, str) or not s:
                raise TinyLMError(f"generation: stop_strings must be non-empty strings, got {s!r}")
        if self.seed is not None:
            _int(self.seed, "seed", minimum=0)
        if self.num_beams > 1 and self.stop_strings:
            raise TinyLMError("generation: stop_strings are not supported with beam search (use stop_token_ids)")


def _int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TinyLMError(f"generation: {name} must be an integer >= {minimum}, got {value!r}")
