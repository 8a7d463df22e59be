"""decode: greedy tokens/s of tinylm's engine against Hugging Face `generate`, same weights, same run.

The model is `llama-style-small` (about 11M parameters) with random weights (speed does not
depend on the values), converted to `LlamaForCausalLM` by tinylm.interop. Both generate 256
new tokens greedily from the same prompts at batch 1 and batch 8, never stopping at eos.
Batch-1 decode reads every weight once per token, so weight bytes / time per token says how
close we are to the memory bandwidth (about 14 GB/s for a matrix-vector product on this CPU).
Goal: >= 1.5x HF at batch 1 and at batch 8.
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


def best_of(runs: int, fn) -> float:
    """Fastest of several timed runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.inference_mode()
def run(quick: bool = False) -> dict[str, Any]:
    from tinylm.interop.hf import to_hf

    new_tokens = 32 if quick else 256
    runs = 1 if quick else 3
    torch.manual_seed(0)
    cfg = model_config("llama-style-small", vocab_size=4096)
    model = GPT(cfg).eval()
    hf = to_hf(model).eval()
    engine = Engine(prepare_for_inference(model))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    rows = []
    for batch in (1, 8):
        prompts = torch.randint(0, cfg.vocab_size, (batch, PROMPT_LEN))
        config = GenerationConfig(max_new_tokens=new_tokens, temperature=0.0)
        ours = engine.generate(prompts.tolist(), config)
        theirs = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        same = all(r.token_ids == t[PROMPT_LEN:].tolist() for r, t in zip(ours, theirs))
        t_ours = best_of(runs, lambda: engine.generate(prompts.tolist(), config))
        t_hf = best_of(runs, lambda: hf.generate(
            prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0))
        tokens = batch * new_tokens
        rows.append({
            "batch": batch,
            "tinylm_tokens_per_s": round(tokens / t_ours, 1),
            "hf_tokens_per_s": round(tokens / t_hf, 1),
            "speedup_vs_hf": round(t_hf / t_ours, 2),
            "same_tokens_as_hf": same,
            "tinylm_weight_gb_per_s": round(weight_bytes * new_tokens / t_ours / 1e9, 2),
        })
    return {
        "model": {"preset": "llama-style-small", "parameters": model.num_params(), "weight_bytes": weight_bytes},
        "new_tokens": new_tokens,
        "prompt_tokens": PROMPT_LEN,
        "rows": rows,
        "goal": {"speedup_vs_hf_batch_1": ">= 1.5", "speedup_vs_hf_batch_8": ">= 1.5"},
        "anchor": "Hugging Face transformers generate() on the same weights, same run",
    }
