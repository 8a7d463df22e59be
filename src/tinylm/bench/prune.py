"""prune: file size, perplexity and decode speed of pruned models, in one run.

The same model, prompts and timing as `bench quant` (llama-style-small with random weights, or
a float checkpoint with `--model CKPT`; 128 greedy tokens (16 with --quick; fewer where the
context is short), at batch 1 and 8, fastest of interleaved rounds; with `--model`, perplexity on the Tiny Shakespeare validation
text). Rows, with the same fields as bench quant's:

    fp32            the model itself
    magnitude-10/30/50   that share of every attention/FFN matrix zeroed (per matrix), saved merged
    structured      half the key/value head groups (with their query heads) and half the FFN
                    channels removed in every layer, by weight-norm importance

No fine-tune after pruning: the perplexities are the damage pruning itself does. What to expect
(docs/compression.md): magnitude pruning keeps dense storage, so the same size and speed
(`smaller` and `speedup` near 1); structured pruning shrinks both.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch

from tinylm.bench.quant import PROMPT_LEN, _perplexity, decode_speeds, decode_workload, float_model
from tinylm.checkpoint import WEIGHTS_FILE, save_checkpoint
from tinylm.generation import Engine
from tinylm.transforms import merge_all, prepare_for_inference, prune
from tinylm.transforms.prune import sparsity

VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "magnitude-10": {"method": "magnitude", "amount": 0.1},
    "magnitude-30": {"method": "magnitude", "amount": 0.3},
    "magnitude-50": {"method": "magnitude", "amount": 0.5},
    "structured": {"method": "structured", "heads": 0.5, "ffn": 0.5},
}


@torch.inference_mode()
def run(quick: bool = False, model: str | None = None) -> dict[str, Any]:
    runs = 1 if quick else 5
    base, val = float_model(model, quick)
    prompts, config = decode_workload(base, quick)

    rows: dict[str, dict[str, Any]] = {}
    engines: dict[str, Engine] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in VARIANTS.items():
            variant = copy.deepcopy(base)
            if settings:
                variant = merge_all(prune(variant, **settings))  # magnitude: plain layers holding the zeros
            path = save_checkpoint(Path(tmp) / name, variant)
            cfg = variant.config
            rows[name] = {"settings": settings or None,
                          "parameters": variant.num_params(),
                          "shape": {"n_head": cfg.n_head, "n_kv_head": cfg.kv_heads, "ffn_hidden": cfg.hidden_dim},
                          "sparsity": round(sparsity(variant), 4),
                          "file_bytes": (path / WEIGHTS_FILE).stat().st_size,
                          "perplexity": round(_perplexity(variant, val), 4) if val is not None else None}
            engines[name] = Engine(prepare_for_inference(variant))
    for name, speeds in decode_speeds(engines, prompts, config, runs).items():
        rows[name].update(speeds)
    fp32 = rows["fp32"]
    for row in rows.values():
        for batch in (1, 8):
            row[f"speedup_batch_{batch}"] = round(row[f"tokens_per_s_batch_{batch}"] / fp32[f"tokens_per_s_batch_{batch}"], 2)
        row["smaller"] = round(fp32["file_bytes"] / row["file_bytes"], 2)
        if row["perplexity"] is not None:
            row["perplexity_increase"] = round(row["perplexity"] / fp32["perplexity"] - 1, 4)
    return {
        "model": {"source": model or "llama-style-small, random weights", "parameters": base.num_params()},
        "new_tokens": config.max_new_tokens,
        "prompt_tokens": PROMPT_LEN,
        "validation_tokens": len(val) - 1 if val is not None else None,
        "rows": rows,
        "anchor": "fp32 of the same model, same run, prepared for inference as tinylm.load does",
    }
