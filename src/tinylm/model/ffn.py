"""Feed-forward networks: the per-token MLP inside every block.

relu / gelu: Linear(d, h) -> activation -> Linear(h, d), the classic two-layer MLP.
swiglu: (silu(x W_gate) * x W_up) W_down, Llama's gated unit.
mlp3: the educational-GPT study's three-layer GELU MLP: Linear(d, h) -> GELU -> Linear(h, h) -> GELU -> Linear(h, d).
The last linear of each is named `down` so initialization can scale it (see gpt.py).
At inference each multiplies by cached (in, out) weights (see inference.py), SwiGLU's gate and
up stacked into one matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.model.inference import InferenceLinear, inferring


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.up = nn.Linear(cfg.n_embd, h, bias=cfg.bias)
        self.act = nn.ReLU() if cfg.ffn == "relu" else nn.GELU()
        self.down = nn.Linear(h, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.up_t, self.down_t = InferenceLinear(), InferenceLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inferring(self):
            return self.down_t.linear(self.act(self.up_t.linear(x, self.up)), self.down)
        return self.dropout(self.down(self.act(self.up(x))))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.gate = nn.Linear(cfg.n_embd, h, bias=cfg.bias)
        self.up = nn.Linear(cfg.n_embd, h, bias=cfg.bias)
        self.down = nn.Linear(h, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.gate_up_t, self.down_t = InferenceLinear(), InferenceLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inferring(self):  # one multiply for gate and up; in place on the fresh product
            gate, up = self.gate_up_t.linear(x, self.gate, self.up).chunk(2, dim=-1)
            return self.down_t.linear(F.silu(gate, inplace=True).mul_(up), self.down)
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class MLP3(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.up = nn.Linear(cfg.n_embd, h, bias=cfg.bias)
        self.mid = nn.Linear(h, h, bias=cfg.bias)
        self.down = nn.Linear(h, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.up_t, self.mid_t, self.down_t = InferenceLinear(), InferenceLinear(), InferenceLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inferring(self):
            x = F.gelu(self.mid_t.linear(F.gelu(self.up_t.linear(x, self.up)), self.mid))
            return self.down_t.linear(x, self.down)
        x = self.dropout(F.gelu(self.up(x)))
        x = self.dropout(F.gelu(self.mid(x)))
        return self.dropout(self.down(x))


def make_ffn(cfg: ModelConfig) -> nn.Module:
    if cfg.ffn == "swiglu":
        return SwiGLU(cfg)
    if cfg.ffn == "mlp3":
        return MLP3(cfg)
    return MLP(cfg)
