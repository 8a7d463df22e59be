"""From logits to the next token: penalties, filters and the draw, as plain functions.

Every function takes logits of shape (B, V), one row per sequence, and returns a new
tensor; a filtered-out token gets -inf, so the softmax gives it probability exactly 0.
`select_tokens` applies them in Hugging Face's order: temperature first, then top-k,
top-p and min-p on the tempered distribution, then one draw per row.
"""

from __future__ import annotations

import torch

from tinylm.generation.config import GenerationConfig

NEG_INF = float("-inf")


def apply_penalties(
    logits: torch.Tensor,
    counts: torch.Tensor | None = None,
    *,
    repetition: float = 1.0,
    presence: float = 0.0,
    frequency: float = 0.0,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discourage tokens that already appeared.

    counts: (B, V) how often each token was generated so far (presence and frequency).
    seen: (B, V) bool, tokens in the prompt or generated so far (repetition); defaults to counts > 0.

    - repetition (CTRL, Keskar et al. 2019): a seen token's logit is divided by the penalty
      when positive and multiplied when negative, so it always moves down for penalty > 1;
    - presence and frequency (OpenAI): z_i <- z_i - presence * [count_i > 0] - frequency * count_i.
    """
    if repetition != 1.0:
        if seen is None:
            seen = counts > 0
        penalized = torch.where(logits > 0, logits / repetition, logits * repetition)
        logits = torch.where(seen, penalized, logits)
    if presence != 0.0:
        logits = logits - presence * (counts > 0).to(logits.dtype)
    if frequency != 0.0:
        logits = logits - frequency * counts.to(logits.dtype)
    return logits


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (ties with the k-th are kept too)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose mass is >= p.

    A token is kept when the mass of the tokens ranked above it is still below p, so the
    token that crosses p is kept, as in standard implementations (and the educational-GPT study).
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    remove = (mass_before >= p).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(remove, NEG_INF)


def min_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least p times that of the most likely token."""
    if p <= 0.0:
        return logits
    probs = logits.softmax(dim=-1)
    threshold = p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, NEG_INF)


def sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row: the argmax when temperature == 0, else a draw from softmax(logits / temperature)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    if temperature != 1.0:
        logits = logits / temperature
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def select_tokens(logits: torch.Tensor, config: GenerationConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of every row under `config` (penalties already applied)."""
    if config.greedy:
        return sample(logits, 0.0)
    if config.temperature != 1.0:
        logits = logits / config.temperature
    logits = min_p(top_p(top_k(logits, config.top_k), config.top_p), config.min_p)
    return sample(logits, 1.0, generator)
