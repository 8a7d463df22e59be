"""Prefill: run the prompts through the model once, filling a KV cache with room for the generation.

Prompts of different lengths are left-padded to a common width W, so every row's last
prompt token sits in the same slot and each decode step appends one slot to all rows;
the cache's `pad` hides the padding from attention and shifts each row's positions.

Context policy: a prompt longer than the model's context is an error. Otherwise each
row's max_new_tokens is clamped to its own prompt: prompt + new - 1 <= block_size (the
very last token is sampled but never fed back); a row that hits it ends with "length".
"""

from __future__ import annotations

from collections.abc import Sequence
import operator

import torch

from tinylm.errors import TinyLMError
from tinylm.model import GPT, KVCache


def check_prompts(model: GPT, prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    cfg = model.config
    out = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, (str, bytes)):
            raise TinyLMError("prompts must be lists of token ids (encode text with the tokenizer first)")
        try:
            ids = [operator.index(t) for t in prompt]  # ints of any kind (numpy, 0-d tensors), never floats
        except TypeError:
            raise TinyLMError(f"prompt {i} must be a list of integer token ids") from None
        if not ids:
            raise TinyLMError(f"prompt {i} is empty; start it with at least one token (e.g. bos)")
        if len(ids) > cfg.block_size:
            raise TinyLMError(f"prompt {i} has {len(ids)} tokens, more than the model's context of {cfg.block_size}")
        # A prompt-tuned model's embedding also reads its virtual tokens' ids (transforms/prompt.py).
        limit = getattr(getattr(model, "tok_emb", None), "num_embeddings", cfg.vocab_size)
        if min(ids) < 0 or max(ids) >= limit:
            bad = next(t for t in ids if not 0 <= t < limit)
            raise TinyLMError(f"prompt {i} holds {bad}, not a token id in [0, {limit})")
        out.append(ids)
    return out


def prefill(model: GPT, prompts: list[list[int]], capacity: int = 0) -> tuple[KVCache, torch.Tensor]:
    """Returns the cache (room for `capacity` slots per row, at least the prompts' width) and
    the logits (B, V) of each row's next token."""
    param = next(model.parameters())
    width = max(map(len, prompts))
    idx = torch.tensor([[0] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=param.device)
    pad = torch.tensor([width - len(p) for p in prompts], dtype=torch.long, device=param.device)
    cache = model.new_cache(len(prompts), max(capacity, width), dtype=param.dtype, device=param.device, pad=pad)
    logits, _ = model(idx, cache=cache, last_only=True)
    return cache, logits[:, -1]
