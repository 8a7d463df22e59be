"""The config hub: named model presets.

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
SPECIAL: dict[str, dict[str, Any]] = {}


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
