"""Feed-forward networks: the per-token MLP inside every block.

relu / gelu: Linear(d, h) -> activation -> Linear(h, d), the classic two-layer MLP.
swiglu: (silu(x W_gate) * x W_up) W_down, Llama's gated unit.
mlp3: the educational-GPT study's three-layer GELU MLP: Linear(d, h) -> GELU -> Linear(h, h) -> GELU -> Linear(h, d).
The last linear of each is named `down` so initialization can scale it (see gpt.py).
With "ffn" in cola_targets every linear here is a CoLA low-rank layer (cola.py).
For decoding, tinylm.transforms.inference swaps these layers for ones with faster weight
layouts (SwiGLU's gate and up in one matrix); the modules here are what training runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.model.cola import make_linear


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.up = make_linear(cfg, "ffn", cfg.n_embd, h, cfg.bias)
        self.act = nn.ReLU() if cfg.ffn == "relu" else nn.GELU()
        self.down = make_linear(cfg, "ffn", h, cfg.n_embd, cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.gate = make_linear(cfg, "ffn", cfg.n_embd, h, cfg.bias)
        self.up = make_linear(cfg, "ffn", cfg.n_embd, h, cfg.bias)
        self.down = make_linear(cfg, "ffn", h, cfg.n_embd, cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class MLP3(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.up = make_linear(cfg, "ffn", cfg.n_embd, h, cfg.bias)
        self.mid = make_linear(cfg, "ffn", h, h, cfg.bias)
        self.down = make_linear(cfg, "ffn", h, cfg.n_embd, cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.gelu(self.up(x)))
        x = self.dropout(F.gelu(self.mid(x)))
        return self.dropout(self.down(x))


def make_ffn(cfg: ModelConfig) -> nn.Module:
    if cfg.ffn == "swiglu":
        return SwiGLU(cfg)
    if cfg.ffn == "mlp3":
        return MLP3(cfg)
    return MLP(cfg)
