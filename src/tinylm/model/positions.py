"""The three ways a model can know where a token is.

- learned: a trainable vector per position, added to the token embedding (GPT-2).
- sinusoidal: fixed sines and cosines of geometric frequencies, added (Vaswani et al.).
- RoPE: no addition at all; queries and keys are rotated by an angle proportional to their
  position, so q·k depends only on the distance between tokens (Llama).
Positions are passed explicitly as a (B, T) tensor: with left-padded batches and a KV cache,
row b's token in slot i sits at position i - pad[b], not at i.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    def __init__(self, block_size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(block_size, dim))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
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

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables; `rotate` applies them to (B, H, T, D) queries or keys.

    We use the "rotate half" layout (pairs are (i, i + D/2)), the same as Hugging Face's
    Llama, so weights convert both ways without permuting rows.
    """

    def __init__(self, block_size: int, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for (B, T) positions, shaped (B, 1, T, D) to broadcast over heads."""
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
