"""The three ways a model can know where a token is.

- learned: a trainable vector per position, added to the token embedding (GPT-2).
- sinusoidal: fixed sines and cosines of geometric frequencies, added (Vaswani et al.).
- RoPE: no addition at all; queries and keys are rotated by an angle proportional to their
  position, so q·k depends only on the distance between tokens (Llama).
Positions are passed explicitly as a (B, T) tensor: with left-padded batches and a KV cache,
row b's token in slot i sits at position i - pad[b], not at i. When every row shares the same
positions (no padding) they are a slice instead, which reads the tables without a gather.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    def __init__(self, block_size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(block_size, dim))

    def forward(self, positions: torch.Tensor | slice) -> torch.Tensor:
        return self.weight[positions]


class SinusoidalPositions(nn.Module):
    def __init__(self, block_size: int, dim: int) -> None:
        super().__init__()
        pos = torch.arange(block_size, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(block_size, dim)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: torch.Tensor | slice) -> torch.Tensor:
        return self.table[positions]


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables; `rotate` applies them to (B, T, H, D) queries or keys.

    We use the "rotate half" layout (pairs are (i, i + D/2)), the same as Hugging Face's
    Llama, so weights convert both ways without permuting rows. The first half of the sin
    table is stored negated, so that `rotate` needs no negation of its own.
    """

    def __init__(self, block_size: int, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], dim=-1), persistent=False)
        self.register_buffer("sin", torch.cat([-angles.sin(), angles.sin()], dim=-1), persistent=False)

    def tables(self, positions: torch.Tensor | slice, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for (B, T) positions (or a slice of T), shaped (B or 1, T, 1, D) to
        broadcast over heads, in the dtype of the queries (cast once per forward, not per layer)."""
        cos, sin = self.cos[positions].to(dtype), self.sin[positions].to(dtype)
        return cos.unsqueeze(-2), sin.unsqueeze(-2)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, T, H, D) rotated pairwise: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).

    Rolling by D/2 swaps the halves to (x2, x1); the sin table's negated first half supplies
    the minus sign. One roll instead of two slices, a negation and a concatenation.
    """
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin
