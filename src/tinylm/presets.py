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


# --- the efficient-architecture and educational-GPT studies (docs/architectures.md) ---------

# The educational-GPT study's final model: learned positions, pre-LayerNorm, the 3-layer GELU
# MLP (d_ff 1024), 8 heads of 32, untied head, dropout 0.3. Its tokenizer is a SentencePiece
# BPE of 8 000 pieces, and so do the recipes here (tokenizer "sentencepiece", model_type bpe).
SPECIAL["educational-gpt"] = dict(
    n_layer=3, n_head=8, n_embd=256, block_size=128, ffn="mlp3", ffn_hidden=1024, position="learned",
    norm="layernorm", norm_placement="pre", bias=True, tie_weights=False, dropout=0.3,
    extra={"preset": "educational-gpt"},
)
# The LSTM baseline the study promised beside it: 2 layers of 256, untied head, same dropout.
SPECIAL["lstm-educational"] = dict(
    arch="lstm", n_layer=2, n_embd=256, block_size=128, tie_weights=False, dropout=0.3,
    extra={"preset": "lstm-educational"},
)
# A character LSTM for Tiny Shakespeare, the counterpart of the shakespeare-char preset.
SPECIAL["lstm-char"] = dict(
    arch="lstm", n_layer=2, n_embd=256, block_size=64, tie_weights=True, extra={"preset": "lstm-char"},
)

# The study's optimizer: AdamW lr 1.5e-3, weight decay 0.01, betas (0.9, 0.98), cosine after a
# warm-up of 1/8 of the steps. It trained 40 epochs on a GPU; here the recipe is a promise of
# 15 minutes (time_budget_s): the schedule, warm-up included, shrinks to the steps that fit
# (`tinylm train` fits it, FitScheduleToBudget), and batches of 16 instead of the study's 64
# give a CPU four times the optimizer steps in that time (about 1 000 on 2 cores).
_EDUCATIONAL_TRAIN = dict(max_steps=8000, batch_size=16, lr=1.5e-3, min_lr=1.5e-4, warmup_steps=1000,
                          betas=(0.9, 0.98), weight_decay=0.01, grad_clip=1.0, eval_every=100, time_budget_s=900.0)
RECIPES["educational-gpt"] = dict(preset="educational-gpt", model={}, tokenizer="sentencepiece", vocab_size=8000,
                                  train=_EDUCATIONAL_TRAIN)
RECIPES["lstm-educational"] = dict(preset="lstm-educational", model={}, tokenizer="sentencepiece", vocab_size=8000,
                                   train=_EDUCATIONAL_TRAIN)
RECIPES["lstm-shakespeare-char"] = dict(preset="lstm-char", model={}, tokenizer="char",
                                        train=dict(RECIPES["shakespeare-char"]["train"]))

# The ablation's variants: each is the llama-style baseline with one idea switched on
# (model fields, training fields). `tinylm bench ablation` runs them at equal wall time,
# and each is a recipe: shakespeare-char-<variant> (and code2-thesis with the same changes).
ABLATION_VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "baseline": ({}, {}),
    "qk-norm": ({"qk_norm": True}, {}),
    "hybridnorm": ({"norm_placement": "hybrid"}, {}),
    "cola": ({"cola_targets": ["attn", "ffn"]}, {}),
    "cola-ffn": ({"cola_targets": ["ffn"]}, {}),
    "fan": ({"fan_input": "fan"}, {}),
    "cola-fan": ({"cola_targets": ["attn", "ffn"], "fan_input": "cola_fan"}, {}),
    "muon": ({}, {"optimizer": "muon"}),
    "study-stack": ({"cola_targets": ["attn", "ffn"], "fan_input": "cola_fan", "norm_placement": "hybrid"},
                    {"optimizer": "muon"}),
    "lstm": ({"arch": "lstm", "n_layer": 2, "n_embd": 256}, {}),
}
for _variant, (_model, _train) in ABLATION_VARIANTS.items():
    if _variant != "baseline":
        _base = RECIPES["shakespeare-char"]
        RECIPES[f"shakespeare-char-{_variant}"] = dict(
            _base, model={**_base["model"], **_model}, train={**_base["train"], **_train})

# The CPU speedrun's best candidate (bench train-shakespeare-char --recipes shakespeare-char-speedrun):
# the fast recipe with Muon on the hidden matrices and QK-norm (which keeps the attention
# logits bounded), at twice its lr: 6e-3 beat 3e-3 (time ratio 0.397 vs 0.499, loss 1.618 vs
# 1.635 at the reference's time). Measured: docs/architectures.md, "CPU speedrun".
RECIPES["shakespeare-char-speedrun"] = dict(
    RECIPES["shakespeare-char"], model={"qk_norm": True},
    train={**RECIPES["shakespeare-char"]["train"], "optimizer": "muon", "lr": 6e-3})


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
