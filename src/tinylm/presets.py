"""The config hub: named model presets and the generic training recipes.

A preset is a family (how the model is built) times a size (how big it is). Families:
- gpt2-style: learned positions, LayerNorm, GELU, biases, tied head (like nanoGPT/GPT-2);
- llama-style: RoPE, RMSNorm, SwiGLU, no biases, grouped-query attention, tied head.
`model_config("llama-style-small", vocab_size=4096)` gives a validated ModelConfig; any
field can be overridden by keyword.
"""

from __future__ import annotations

from typing import Any

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError

FAMILIES: dict[str, dict[str, Any]] = {
    "gpt2-style": dict(position="learned", norm="layernorm", ffn="gelu", bias=True, tie_weights=True),
    "llama-style": dict(position="rope", norm="rmsnorm", ffn="swiglu", bias=False, tie_weights=True),
}

SIZES: dict[str, dict[str, Any]] = {
    # nanoGPT's CPU recipe for Tiny Shakespeare: 4 layers, 4 heads, 128 dims, context 64.
    "nano": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
    "micro": dict(n_layer=6, n_head=6, n_embd=192, block_size=256),
    # About 11M parameters with a 4k vocabulary: the size of the decode benchmark.
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=512),
}

# GQA for the llama family: 3 query heads share each key/value head at every size.
LLAMA_KV_HEADS = {"nano": 2, "micro": 2, "small": 2}

# Presets tuned for one job, beyond family x size.
SPECIAL: dict[str, dict[str, Any]] = {
    # The fastest Tiny Shakespeare character model we found (bench train-shakespeare-char):
    # llama-style blocks at nanoGPT's CPU size, full multi-head attention (GQA saves cache
    # memory at generation, but at this size it only costs quality).
    "shakespeare-char": dict(
        n_layer=4, n_head=4, n_embd=128, block_size=64, position="rope", norm="rmsnorm", ffn="swiglu",
        bias=False, tie_weights=True, extra={"preset": "shakespeare-char"},
    ),
}

# The generic recipes: language modelling on a text corpus (`tinylm train --recipe NAME
# --shakespeare`). A task's recipes live in its package (tasks/<name>/recipes.py); one
# loader reads both, and files: tinylm.training.recipe.load_recipe.
RECIPES: dict[str, dict[str, Any]] = {
    # nanoGPT's CPU recipe for Tiny Shakespeare (README "I only have a macbook"), as given:
    # 4 layers, 4 heads, 128 dims, context 64, batch 12, 2000 iters, lr 1e-3, dropout 0, AdamW.
    "nanogpt-shakespeare-char": dict(
        preset="gpt2-style-nano", model={"dropout": 0.0}, tokenizer="char",
        train=dict(max_steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=100, betas=(0.9, 0.99),
                   weight_decay=0.1, grad_clip=1.0),
    ),
    # Ours: RoPE + RMSNorm + SwiGLU learn the same text in far fewer tokens, which tolerates
    # a 3x higher learning rate and a slightly larger batch (better matrix shapes on a CPU).
    "shakespeare-char": dict(
        preset="shakespeare-char", model={}, tokenizer="char",
        train=dict(max_steps=1500, batch_size=16, lr=3e-3, min_lr=1e-4, warmup_steps=50, betas=(0.9, 0.99),
                   weight_decay=0.0, grad_clip=1.0),
    ),
}


def preset_names() -> list[str]:
    return [f"{f}-{s}" for f in FAMILIES for s in SIZES] + list(SPECIAL)


def preset_dict(name: str) -> dict[str, Any]:
    if name in SPECIAL:
        return dict(SPECIAL[name])
    for family in FAMILIES:
        size = name.removeprefix(family + "-")
        if name.startswith(family + "-") and size in SIZES:
            d = {**FAMILIES[family], **SIZES[size], "extra": {"preset": name}}
            if family == "llama-style":
                d["n_kv_head"] = LLAMA_KV_HEADS[size]
            return d
    raise TinyLMError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a named preset, with fields overridden by keyword."""
    return ModelConfig.from_dict({**preset_dict(name), **overrides})
