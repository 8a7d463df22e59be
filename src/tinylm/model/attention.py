"""Causal self-attention, multi-head (MHA) or grouped-query (GQA).

Two paths compute the same numbers:
- "explicit": the textbook formula, softmax(q k^T / sqrt(d) + mask) v, so a reader can see
  every step (and print the attention weights);
- "sdpa": PyTorch's fused `scaled_dot_product_attention`, faster and lighter on memory.
GQA lets several query heads share one key/value head: the cache shrinks by n_head/n_kv_head,
which is what makes decoding cheaper, at almost no loss in quality.

Options from the efficient-architecture study (docs/architectures.md), all off by default:
- qk_norm: each head's query and key are normalized (over its D features) before RoPE, so
  attention logits cannot grow without bound however large the weights get;
- HybridNorm's QKV-norm (norm_placement="hybrid"): the same for q, k and v, which replaces
  the norm on the block's input;
- CoLA projections (cola_targets has "attn") and a FAN layer before the q, k, v projection
  (fan_input), see cola.py and fan.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.model.cola import make_linear
from tinylm.model.fan import make_fan
from tinylm.model.kv_cache import KVCache
from tinylm.model.norms import make_norm
from tinylm.model.positions import rotate


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.fan = make_fan(cfg)
        # One fused projection for q, k and v: one matrix multiply instead of three.
        self.qkv = make_linear(cfg, "attn", cfg.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_dim, cfg.bias)
        self.proj = make_linear(cfg, "attn", self.n_head * self.head_dim, cfg.n_embd, cfg.bias)
        # Per-head norms, one per role, shared by the heads (as in OLMo 2 and Qwen 3).
        hybrid = cfg.norm_placement == "hybrid"
        head_norm = lambda: make_norm(cfg.norm, self.head_dim, cfg.norm_eps, cfg.bias)  # noqa: E731
        self.q_norm = head_norm() if cfg.qk_norm or hybrid else None
        self.k_norm = head_norm() if cfg.qk_norm or hybrid else None
        self.v_norm = head_norm() if hybrid else None
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.explicit = cfg.attention == "explicit"

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
    ) -> torch.Tensor:
        """x: (B, T, C). mask: bool (B or 1, 1, T, S), True = may attend; None = plain causal.
        rope: cos and sin tables shaped (B or 1, T, 1, D), or None."""
        B, T, _ = x.shape
        H, H_kv = self.n_head, self.n_kv_head
        if self.fan is not None:
            x = self.fan(x)
        qkv = self.qkv(x).view(B, T, H + 2 * H_kv, self.head_dim)
        # Heads stay in (B, T, heads, D) order until attention: the query and key heads are
        # adjacent there, so RoPE rotates both in one go.
        if self.q_norm is not None:
            q, k, v = qkv.split([H, H_kv, H_kv], dim=2)
            qk = torch.cat([self.q_norm(q), self.k_norm(k)], dim=2)
            v = self.v_norm(v) if self.v_norm is not None else v
        else:
            qk, v = qkv.split([H + H_kv, H_kv], dim=2)
        if rope is not None:
            qk = rotate(qk, *rope)
        q, k = qk.split([H, H_kv], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # now (B, H_kv, S, D) with S = past + T
        # With no mask, T > 1 means a causal block starting at position 0; T == 1 (a decode
        # step) may see every cached key, so it needs no mask at all.
        causal = mask is None and T > 1
        dropout = self.dropout if self.training else 0.0
        if self.explicit:
            y = self._explicit(q, k, v, mask, causal, dropout)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal,
                enable_gqa=self.n_kv_head != self.n_head,
            )
        y = y.transpose(1, 2).reshape(B, T, H * self.head_dim)
        return self.resid_dropout(self.proj(y))

    def _explicit(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        mask: torch.Tensor | None, causal: bool, dropout: float,
    ) -> torch.Tensor:
        repeat = self.n_head // self.n_kv_head
        if repeat > 1:  # each group of `repeat` query heads reads the same key/value head
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, S)
        if causal:
            T, S = scores.shape[-2:]
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.softmax(scores, dim=-1)
        weights = F.dropout(weights, dropout) if dropout else weights
        return weights @ v
