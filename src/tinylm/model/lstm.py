"""The LSTM baseline: the recurrent model the educational-GPT study promised to compare with.

tokens (B, T) -> embedding -> n_layer LSTM layers of width n_embd -> linear head -> logits.
It has the GPT's interface (forward(idx, targets, cache=, last_only=), num_params,
flops_per_token, transforms), so the same tokenizer, data, trainer, checkpoints, evaluation
and generation engine serve it; `ModelConfig(arch="lstm")` builds it (model.build_model).

Its "cache" is the recurrent state (h, c) of every layer, carried from one step to the next
(LSTMState, the KV cache's counterpart). The other choice, recomputing the whole sequence at
every step, would cost O(n^2) where the LSTM is O(n) and would need a second decoding path
in the engine; carrying the state keeps one engine: it only ever asks a model for a cache
(`new_cache`) and feeds it the new tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig


class LSTMState:
    """(h, c) of each layer and batch row, with the KV cache's bookkeeping (length, pad,
    reorder, append, trim), so the continuous batcher and beam search drive it unchanged.

    Rows are left-padded like the KV cache's; a row's state stays at zero through its
    padding slots (see LSTMLM.forward), so padding is invisible, as attention masks make it.
    The state does not grow with the sequence: `capacity` is 1 slot per row."""

    def __init__(self, cfg: ModelConfig, batch_size: int, max_len: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", pad: torch.Tensor | None = None) -> None:
        shape = (cfg.n_layer, batch_size, cfg.n_embd)
        self.h = torch.zeros(shape, dtype=dtype, device=device)
        self.c = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0
        self.pad = pad if pad is not None and bool(pad.any()) else None

    @property
    def batch_size(self) -> int:
        return self.h.shape[1]

    @property
    def capacity(self) -> int:
        return 1

    def advance(self, n: int) -> None:
        self.length += n

    def reorder(self, rows: torch.Tensor) -> None:
        self.h, self.c = self.h.index_select(1, rows), self.c.index_select(1, rows)
        if self.pad is not None:
            self.pad = self.pad.index_select(0, rows)

    def append(self, other: LSTMState, capacity: int = 0) -> None:
        # Right-aligning only renumbers slots: every row's state already holds its whole past.
        length = max(self.length, other.length)
        pads = [s.pad if s.pad is not None else torch.zeros(s.batch_size, dtype=torch.long, device=s.h.device)
                for s in (self, other)]
        pad = torch.cat([pads[0] + (length - self.length), pads[1] + (length - other.length)])
        self.h, self.c = torch.cat([self.h, other.h], dim=1), torch.cat([self.c, other.c], dim=1)
        self.length, self.max_len = length, max(capacity, length)
        self.pad = pad if bool(pad.any()) else None

    def trim(self) -> None:
        if self.pad is not None:
            drop = int(self.pad.min())
            self.length -= drop
            self.max_len -= drop
            self.pad = self.pad - drop if bool((self.pad - drop).any()) else None


class LSTMLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transforms: list = []  # the GPT's contract (tinylm.transforms); none apply to the LSTM's cells
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        # nn.LSTM's dropout sits between layers; self.drop covers its input and output.
        self.lstm = nn.LSTM(cfg.n_embd, cfg.n_embd, cfg.n_layer, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        # std 1/sqrt(d): the LSTM's own (PyTorch) init scale, so its gates start neither
        # saturated nor starved; the GPT's 0.02 left a tied LSTM near chance for many steps.
        std = cfg.n_embd ** -0.5
        nn.init.normal_(self.tok_emb.weight, mean=0.0, std=std)
        if cfg.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        else:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=std)

    def new_cache(self, batch_size: int, max_len: int, **kwargs) -> LSTMState:
        return LSTMState(self.config, batch_size, max_len, **kwargs)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: LSTMState | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As GPT.forward: (logits, loss); with a cache, idx holds only the new tokens."""
        T = idx.shape[1]
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds the context of {self.config.block_size}")
        x = self.drop(self.tok_emb(idx))
        if cache is None:
            out, _ = self.lstm(x)  # training and full forwards: one fused call from a zero state
        elif cache.pad is None or int(cache.pad.max()) <= past:
            out, (cache.h, cache.c) = self.lstm(x, (cache.h, cache.c))
        else:
            out = self._padded(x, cache, past)
        if cache is not None:
            cache.advance(T)
        out = self.drop(out)
        if last_only:
            out = out[:, -1:]
        logits = self.lm_head(out)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def _padded(self, x: torch.Tensor, cache: LSTMState, past: int) -> torch.Tensor:
        """Step by step, keeping each row's state at zero while its slots are padding."""
        outs = []
        h, c = cache.h, cache.c
        for t in range(x.shape[1]):
            out, (h_new, c_new) = self.lstm(x[:, t : t + 1], (h, c))
            real = (past + t >= cache.pad)[None, :, None]  # (1, B, 1): this slot holds a token
            h, c = torch.where(real, h_new, h), torch.where(real, c_new, c)
            outs.append(out)
        cache.h, cache.c = h, c
        return torch.cat(outs, dim=1)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; a tied head is counted once."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_emb.weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> int:
        """2 per weight of the LSTM layers and the head (the state does not grow with seq_len)."""
        forward = 2 * (sum(p.numel() for p in self.lstm.parameters()) + self.config.vocab_size * self.config.n_embd)
        return 3 * forward if training else forward
