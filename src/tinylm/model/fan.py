"""FAN: Fourier features of the attention input (FANformer, arXiv:2502.21309).

FANformer's attention first maps its input x (width d) to

    FAN(x) = [cos(W_p x), sin(W_p x), σ(W_b x + b)]        (σ = GELU)

with W_p: p_dim x d and W_b: (d - 2 p_dim) x d, p_dim = int(d * p), so the output is again
d wide and q, k, v are projected from it. The cos/sin part lets attention match periodic
patterns directly; p (default 0.15) is the share of the output given to each of cos and sin.

CoLA_FAN (the efficient-architecture study's own layer) builds both branches from CoLA
factors, with the GELU between them, and no activation on the non-periodic output:

    p_proj  = B_p σ(A_p x)        z = [cos(p_proj), sin(p_proj), B_np σ(A_np x)]

with A_p, A_np: r x d, B_p: p_dim x r, B_np: (d - 2 p_dim) x r. The study's dropout sits after
each GELU (ModelConfig.dropout here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.model.cola import CoLALinear


def fan_dims(cfg: ModelConfig) -> tuple[int, int]:
    """(p_dim, non-periodic width) of a FAN layer whose output is n_embd wide."""
    p_dim = int(cfg.n_embd * cfg.fan_p)
    return p_dim, cfg.n_embd - 2 * p_dim


class FAN(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p_dim, rest = fan_dims(cfg)
        self.periodic = nn.Linear(cfg.n_embd, p_dim, bias=False)  # W_p: cos and sin share it
        self.other = nn.Linear(cfg.n_embd, rest, bias=True)  # W_b and b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.periodic(x)
        return torch.cat([torch.cos(p), torch.sin(p), F.gelu(self.other(x))], dim=-1)


class CoLAFAN(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p_dim, rest = fan_dims(cfg)
        self.periodic = CoLALinear(cfg.n_embd, p_dim, cfg.cola_r, bias=False, dropout=cfg.dropout)
        self.other = CoLALinear(cfg.n_embd, rest, cfg.cola_r, bias=cfg.bias, dropout=cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.periodic(x)
        return torch.cat([torch.cos(p), torch.sin(p), self.other(x)], dim=-1)


def make_fan(cfg: ModelConfig) -> nn.Module | None:
    if cfg.fan_input == "fan":
        return FAN(cfg)
    if cfg.fan_input == "cola_fan":
        return CoLAFAN(cfg)
    return None
