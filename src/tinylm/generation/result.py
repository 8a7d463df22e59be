"""What generation hands back: a finished row (GenerationResult) or one streamed step (StreamEvent).

finish_reason is one of
- "stop": the row produced a stop token (eos or stop_token_ids), completed a stop string,
  or its logits processor said it is complete;
- "length": max_new_tokens reached, or the model's context is full;
- "no_valid_token": the logits processor allowed no token at all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationResult:
    token_ids: list[int]  # every generated id, including a final stop token
    text: str | None  # the completion's text (no stop token, no stop string); None without a tokenizer
    finish_reason: str
    prompt_tokens: int
    score: float | None = None  # beam search: sum of log-probs / length**length_penalty

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(slots=True)
class StreamEvent:
    row: int  # index of the prompt this event belongs to
    token_id: int | None  # None when the row ended without a new token ("no_valid_token")
    text: str  # new text ready to show ("" while a character or a possible stop string is pending)
    finish_reason: str | None = None  # set on the row's last event
