"""GPT: a decoder-only transformer, built from a ModelConfig.

tokens (B, T) -> token embedding (+ learned/sinusoidal positions) -> n_layer blocks
-> final norm -> linear head -> logits (B, T, vocab).

Each block is attention then a feed-forward network, each wrapped in a residual
connection. Pre-norm (GPT-2, Llama) normalizes the input of each sublayer and keeps the
residual stream untouched, which trains stably without warm-up tricks; post-norm (the
original 2017 transformer) normalizes after each residual addition.

HybridNorm (norm_placement="hybrid", Zhuo et al. 2025, as the efficient-architecture study
gives it) mixes the two: attention normalizes q, k and v inside (QKV-norm) instead of its
input, and the feed-forward network is post-norm on the attention's output:
    Y = Attn_QKV(X) + X;   X' = FFN(Norm(Y)) + Norm(Y)
except the first block ("HybridNorm*"), which is pre-norm around both sublayers, because
embeddings are distributed unlike the later residual stream:
    Y = Attn_QKV(Norm(X)) + X;   X' = FFN(Norm(Y)) + Y
(the study's Eq. 7 reading; its prose would keep block 0's FFN post-norm).

Every module here has one forward, the one training runs. Anything else (the faster
inference layouts today; quantization or LoRA the same way) is a transform
(tinylm/transforms/): it swaps modules of a built GPT for others and is listed, in order of
application, in `GPT.transforms`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.model.attention import CausalSelfAttention
from tinylm.model.ffn import make_ffn
from tinylm.model.kv_cache import KVCache
from tinylm.model.norms import make_norm
from tinylm.model.positions import LearnedPositions, RotaryEmbedding, SinusoidalPositions

if TYPE_CHECKING:
    from tinylm.transforms import Transform


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        # HybridNorm's first block is pre-norm (with QKV-norm inside its attention).
        self.placement = "pre" if cfg.norm_placement == "hybrid" and layer == 0 else cfg.norm_placement
        # A hybrid block past the first normalizes inside attention instead of its input.
        self.norm1 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias) if self.placement != "hybrid" else None
        self.attn = CausalSelfAttention(cfg, layer)
        self.norm2 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.ffn = make_ffn(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, rope, cache: KVCache | None) -> torch.Tensor:
        if self.placement == "pre":
            x = x + self.attn(self.norm1(x), mask, rope, cache)
            return x + self.ffn(self.norm2(x))
        if self.placement == "hybrid":
            y = self.norm2(x + self.attn(x, mask, rope, cache))
            return y + self.ffn(y)
        x = self.norm1(x + self.attn(x, mask, rope, cache))
        return self.norm2(x + self.ffn(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transforms: list[Transform] = []  # applied in this order (tinylm.transforms)
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb: nn.Module | None = None
        self.rope: RotaryEmbedding | None = None
        if cfg.position == "learned":
            self.pos_emb = LearnedPositions(cfg.block_size, cfg.n_embd)
        elif cfg.position == "sinusoidal":
            self.pos_emb = SinusoidalPositions(cfg.block_size, cfg.n_embd)
        else:
            self.rope = RotaryEmbedding(cfg.block_size, cfg.head_dim, cfg.rope_theta)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        # Post-norm blocks already end in a norm; pre-norm and hybrid need one before the head.
        self.norm_f = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias) if cfg.norm_placement != "post" else None
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            # The same matrix maps tokens to vectors and vectors back to token scores:
            # fewer parameters, and in small models usually a lower loss.
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: each residual branch adds to the stream, so its last projection starts
        # smaller (std / sqrt(2 * n_layer)) to keep the stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ffn.down.weight", "attn.proj.B.weight", "ffn.down.B.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def new_cache(self, batch_size: int, max_len: int, **kwargs) -> KVCache:
        """An empty cache for `batch_size` rows of up to `max_len` tokens (the generation
        engine asks the model, so a model with another kind of state brings its own)."""
        return KVCache(self.config, batch_size, max_len, **kwargs)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, LearnedPositions)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids. Returns (logits, loss); loss is None without targets.

        With a cache, idx holds only the new tokens; they are placed after the cached ones.
        `last_only` computes logits for the last position only (all that sampling needs).
        Targets equal to -100 are ignored by the loss (padding, prompt tokens).
        """
        T = idx.shape[1]
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds the context of {self.config.block_size}")
        pad = cache.pad if cache is not None else None
        if pad is None:  # every row at past..past+T-1: the position tables are read by a slice
            positions: torch.Tensor | slice = slice(past, past + T)
        else:
            positions = (torch.arange(past, past + T, device=idx.device) - pad[:, None]).clamp(min=0)
        mask = self._mask(T, past, pad, idx.device)

        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        rope = self.rope.tables(positions, x.dtype) if self.rope is not None else None
        for block in self.blocks:
            x = block(x, mask, rope, cache)
        if cache is not None:
            cache.advance(T)
        if self.norm_f is not None:
            x = self.norm_f(x)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    @staticmethod
    def _mask(T: int, past: int, pad: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
        """Which keys each query may see, or None when plain causal attention suffices."""
        if pad is None and (past == 0 or T == 1):
            return None
        S = past + T
        q = torch.arange(past, S, device=device)[:, None]  # absolute slot of each query
        k = torch.arange(S, device=device)[None, :]
        mask = (k <= q)[None, None]  # (1, 1, T, S)
        if pad is not None:
            # Keys in a row's padding are hidden; a padding query still sees itself, so its
            # softmax is never over an empty set (its output is never used).
            visible = k[None] >= pad[:, None, None]  # (B, 1, S)
            mask = mask & (visible[:, None] | (k == q)[None, None])
        return mask

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; tied weights are counted once."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel()
            if isinstance(self.pos_emb, LearnedPositions):
                n -= self.pos_emb.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> int:
        """Approximate FLOPs to process one token (Kaplan et al.; PaLM appendix B).

        Forward: 2 per weight (a multiply and an add) plus attention over `seq_len` keys,
        2 * 2 * n_layer * seq_len * n_head * head_dim (scores and weighted sum; n_head * head_dim
        is n_embd unless heads were pruned). Training: 3x forward.
        """
        cfg = self.config
        seq_len = seq_len or cfg.block_size
        forward = 2 * self.num_params(exclude_embeddings=True) + 4 * cfg.n_layer * seq_len * cfg.n_head * cfg.head_dim
        if cfg.tie_weights:  # the tied head was excluded with the embedding, yet it runs per token
            forward += 2 * cfg.vocab_size * cfg.n_embd
        return 3 * forward if training else forward
