"""CoLA: a low-rank linear layer with a nonlinearity between its two factors.

A dense d_in -> d_out layer costs d_in * d_out weights. CoLA (arXiv:2502.10940, as used in
the efficient-architecture study) replaces it with

    h = B σ(A x),   A: r x d_in,  B: d_out x r,  σ = GELU,  r < min(d_in, d_out),

so it costs r * (d_in + d_out) weights (+ d_out for B's bias). Activations of trained
transformers have a fast-decaying spectrum, which is why a rank of d/4 loses little; the
GELU between the factors is what makes it more than a factorized matrix (two plain
factors would just be one rank-r matrix). The study uses r = d/4 with d the model width,
which is `ModelConfig.cola_r`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig


class CoLALinear(nn.Module):
    def __init__(self, d_in: int, d_out: int, rank: int, bias: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.A = nn.Linear(d_in, rank, bias=False)
        self.B = nn.Linear(rank, d_out, bias=bias)
        # The study puts its dropout after the GELU, before B (0 unless the config asks).
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.B(self.dropout(F.gelu(self.A(x))))


def make_linear(cfg: ModelConfig, target: str, d_in: int, d_out: int, bias: bool) -> nn.Module:
    """A projection of the `target` sublayer ("attn" or "ffn"): CoLA where the config asks."""
    if target in cfg.cola_targets:
        return CoLALinear(d_in, d_out, cfg.cola_r, bias)
    return nn.Linear(d_in, d_out, bias=bias)
