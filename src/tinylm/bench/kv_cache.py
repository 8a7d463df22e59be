"""kv-cache: generation with and without the KV cache, and per-token latency along the sequence.

Without a cache, every new token re-runs the model over the whole sequence so far, so the
n-th token costs O(n) and a generation O(n^2); with the cache each step processes one
token against stored keys/values. Both paths are greedy on the same weights and must
produce the same tokens (checked here too). Anchor: the KV-cache study measured 1.95x at 50 tokens.
Goal: >= 10x at 512 new tokens, and per-token time nearly flat up to 1024.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from tinylm.generation import Engine, GenerationConfig
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.transforms import prepare_for_inference

PROMPT_LEN = 16


@torch.inference_mode()
def generate_without_cache(model: GPT, prompt: list[int], n: int) -> list[int]:
    """The naive loop: the whole sequence goes through the model for every new token."""
    ids = torch.tensor([prompt])
    for _ in range(n):
        logits, _ = model(ids, last_only=True)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


def run(quick: bool = False) -> dict[str, Any]:
    lengths = [64, 128] if quick else [64, 256, 512, 1024]
    torch.manual_seed(0)
    cfg = model_config("llama-style-nano", vocab_size=256, block_size=PROMPT_LEN + max(lengths))
    model = prepare_for_inference(GPT(cfg))
    engine = Engine(model)
    prompt = torch.randint(0, 256, (PROMPT_LEN,)).tolist()
    rows = []
    for n in lengths:
        config = GenerationConfig(max_new_tokens=n, temperature=0.0)
        engine.generate([prompt], GenerationConfig(max_new_tokens=8, temperature=0.0))  # warm-up
        t0 = time.perf_counter()
        [cached] = engine.generate([prompt], config)
        t_cache = time.perf_counter() - t0
        t0 = time.perf_counter()
        uncached = generate_without_cache(model, prompt, n)
        t_none = time.perf_counter() - t0
        rows.append({
            "new_tokens": n,
            "with_cache_s": round(t_cache, 4),
            "without_cache_s": round(t_none, 4),
            "speedup": round(t_none / t_cache, 2),
            "same_tokens": cached.token_ids == uncached,
        })
    # Per-token latency along one long cached generation, averaged over buckets of positions.
    n = max(lengths)
    stamps = [time.perf_counter()]
    for _ in engine.stream(prompt, GenerationConfig(max_new_tokens=n, temperature=0.0)):
        stamps.append(time.perf_counter())
    step_ms = [(b - a) * 1000 for a, b in zip(stamps[1:-1], stamps[2:])]  # skip the prefill step
    bucket = max(1, len(step_ms) // 8)
    profile = [{"from_token": i + 1, "to_token": min(i + bucket, len(step_ms)),
                "ms_per_token": round(sum(step_ms[i:i + bucket]) / len(step_ms[i:i + bucket]), 3)}
               for i in range(0, len(step_ms), bucket)]
    by_n = {r["new_tokens"]: r for r in rows}
    goal_n = 512 if 512 in by_n else max(by_n)
    return {
        "model": {"preset": "llama-style-nano", "parameters": model.num_params(), "block_size": cfg.block_size},
        "prompt_tokens": PROMPT_LEN,
        "rows": rows,
        "per_token_latency": profile,
        "latency_last_over_first": round(profile[-1]["ms_per_token"] / profile[0]["ms_per_token"], 2),
        "anchor": {"seed_002_speedup_at_50_tokens": 1.95},
        "goal": {"speedup_at_512": ">= 10", "per_token_time": "nearly flat up to 1024"},
        f"speedup_at_{goal_n}": by_n[goal_n]["speedup"],
    }
