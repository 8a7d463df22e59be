"""Normalization layers, written out so the arithmetic is visible.

LayerNorm centres and scales each vector; RMSNorm only scales (no mean, no bias), which
is cheaper and works as well in practice, so modern models (Llama) use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, over the last dimension."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.layer_norm computes exactly the formula above in one fused kernel.
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 for stability."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.rms_norm computes exactly the formula above in one call; at decode time (one
        # token) the five separate ops it replaces cost more than the matrix multiplies.
        weight = self.weight
        if x.dtype == torch.float32:  # nothing to cast: the weight is applied inside, same numbers
            return F.rms_norm(x, weight.shape, weight, self.eps)
        normed = F.rms_norm(x.float(), weight.shape, eps=self.eps)
        return weight * normed.to(x.dtype)


def make_norm(kind: str, dim: int, eps: float, bias: bool) -> nn.Module:
    return LayerNorm(dim, eps, bias) if kind == "layernorm" else RMSNorm(dim, eps)
