"""LoRA (Hu et al. 2021) as a persistent, mergeable transform.

A target nn.Linear computing y = x W^T + b becomes

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T        A: (r, in), B: (out, r)

with W and b frozen and only A and B trained: r (in + out) parameters instead of in * out.
A starts random (Kaiming-uniform, as PEFT does) and B at zero, so a fresh LoRA model computes
exactly what the base computes, and training starts from the base. The scale alpha / r keeps
the update's size roughly independent of the rank (the UGR thesis wrote W' = W + alpha A B).

Which layers: `targets`, a name pattern (tinylm.transforms.freeze has the names and the
syntax); the default "attn.qkv,attn.proj" is the UGR thesis's choice (the attention layers).
tinylm's qkv is one fused layer, so one LoRA covers q, k and v: its B rows split by
projection, A shared (interop/peft.py relies on this to export to PEFT's separate q/k/v).

Merging: `LoRA.merge(model)` (the transform contract) replaces each LoRALinear by a plain
nn.Linear holding W + (alpha / r) B A: a standalone model, no transform left.
`merge_lora(model)` / `unmerge_lora(model)` fold the update into W in place and take it
out again (the LoRA layers stay, so training can go on), as PEFT's merge_adapter does;
unmerging subtracts the same product, so the logits come back within float rounding.
The model is evaluated unmerged: the forward above is already the fine-tuned model, so
validation metrics need no merging (the UGR thesis had to merge by hand to get them right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import register_transform
from tinylm.transforms.freeze import TrainingTransform, linear_names, name_matches

DEFAULT_TARGETS = "attn.qkv,attn.proj"


class LoRALinear(nn.Module):
    """A frozen linear layer (`base`) plus the low-rank update B A, scaled by alpha / r."""

    def __init__(self, base: nn.Module, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.out_features, self.in_features = base.weight.shape
        self.rank, self.scaling = rank, alpha / rank
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, dtype=weight.dtype, device=weight.device))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # Saved with the weights, so a checkpoint written while merged loads merged.
        self.register_buffer("merged", torch.zeros((), dtype=torch.bool))

    def delta(self) -> torch.Tensor:
        """The update (alpha / r) B A, shaped like W."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    @torch.no_grad()
    def fold(self, sign: int) -> None:
        self.base.weight.add_(sign * self.delta())
        if hasattr(self.base, "refresh"):  # a prepared layer's layouts copy the weight
            self.base.refresh()
        self.merged.fill_(sign > 0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, scaling={self.scaling:g}"


@register_transform
@dataclass
class LoRA(TrainingTransform):
    name: ClassVar[str] = "lora"
    reversible: ClassVar[bool] = True
    mergeable: ClassVar[bool] = True
    trained: ClassVar[tuple[str, ...]] = (".lora_A", ".lora_B")

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise TinyLMError(f"LoRA rank must be a positive integer, not {self.rank!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise TinyLMError(f"LoRA dropout must be in [0, 1), not {self.dropout}")
        if self.alpha <= 0:
            raise TinyLMError(f"LoRA alpha must be positive, not {self.alpha}")

    def target_names(self, model: GPT) -> list[str]:
        names = [n for n in linear_names(model) if name_matches(n, self.targets)]
        if model.config.tie_weights and "lm_head" in names:
            raise TinyLMError("LoRA on lm_head of a tied model would untie it from the embedding; leave lm_head out")
        if not names:
            raise TinyLMError(f"LoRA targets {self.targets!r} match no linear layer; tinylm's are named like "
                              f"{', '.join(linear_names(model)[:4])} (see docs/finetune.md)")
        for name in names:
            out, inp = model.get_submodule(name).weight.shape
            if self.rank > min(out, inp):
                raise TinyLMError(f"LoRA rank {self.rank} is larger than {name} ({out} x {inp}); "
                                  f"use a rank of at most {min(out, inp)}")
        return names

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        return {name: LoRALinear(model.get_submodule(name), self.rank, self.alpha, self.dropout)
                for name in self.target_names(model)}

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        with torch.no_grad():
            for name, layer in (self._installed or {}).items():
                base = layer.base
                plain = nn.Linear(layer.in_features, layer.out_features, bias=base.bias is not None,
                                  device=base.weight.device, dtype=base.weight.dtype)
                plain.weight.copy_(base.weight if layer.merged else base.weight + layer.delta())
                if base.bias is not None:
                    plain.bias.copy_(base.bias)
                out[name] = plain
        return out


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight, in place (the LoRA layers stay)."""
    for layer in lora_layers(model):
        if not layer.merged:
            layer.fold(+1)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take the folded updates out of the base weights again."""
    for layer in lora_layers(model):
        if layer.merged:
            layer.fold(-1)
    return model
