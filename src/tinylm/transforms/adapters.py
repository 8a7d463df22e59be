"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) as a persistent transform.

An adapter is a small residual MLP on a sublayer's output h (n_embd wide):

    adapter(h) = h + up(relu(down(h)))      down: n_embd -> n_embd / reduction, up: back

(the UGR thesis's design: 512 -> 64 with ReLU, reduction 8). `up` starts at zero (weight
and bias), so a fresh adapter is the identity and the adapted model computes exactly what
the base computes. Only the adapters are trained; the base is frozen.

Placements (where h is taken):
    houlsby   after attention (its output projection, blocks.i.attn.proj) and after the FFN
              (its last linear, blocks.i.ffn.down): two adapters per block
    pfeiffer  after the FFN only: one adapter per block, half the parameters, usually
              about as good
The adapter sits on the sublayer's output before the residual addition (and before the
sublayer's dropout), as in both papers. It is not mergeable: relu in between means no plain
linear layer computes the same thing, so export-hf refuses an adapted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import register_transform
from tinylm.transforms.freeze import TrainingTransform

PLACEMENTS = {"houlsby": ("attn.proj", "ffn.down"), "pfeiffer": ("ffn.down",)}


class Bottleneck(nn.Module):
    def __init__(self, width: int, hidden: int, like: torch.Tensor) -> None:
        super().__init__()
        self.down = nn.Linear(width, hidden, device=like.device, dtype=like.dtype)
        self.up = nn.Linear(hidden, width, device=like.device, dtype=like.dtype)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(torch.relu(self.down(h)))


class AdaptedLinear(nn.Module):
    """A frozen linear layer (`base`) followed by an adapter."""

    def __init__(self, base: nn.Module, hidden: int) -> None:
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(base.weight.shape[0], hidden, base.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base(x))


@register_transform
@dataclass
class Adapters(TrainingTransform):
    name: ClassVar[str] = "adapter"
    reversible: ClassVar[bool] = True
    mergeable: ClassVar[bool] = False
    trained: ClassVar[tuple[str, ...]] = (".adapter.",)

    reduction: int = 16
    placement: str = "houlsby"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise TinyLMError(f"adapter placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")
        if not isinstance(self.reduction, int) or self.reduction < 1:
            raise TinyLMError(f"adapter reduction factor must be a positive integer, not {self.reduction!r}")

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        width = model.config.n_embd
        hidden = width // self.reduction
        if hidden < 1:
            raise TinyLMError(f"adapter reduction {self.reduction} leaves no units of n_embd {width}; "
                              f"use a reduction of at most {width}")
        out: dict[str, nn.Module] = {}
        for i in range(model.config.n_layer):
            for where in PLACEMENTS[self.placement]:
                name = f"blocks.{i}.{where}"
                out[name] = AdaptedLinear(model.get_submodule(name), hidden)
        return out
