"""A preallocated key/value cache for incremental decoding.

Without a cache, producing token t means re-running the model over all t previous tokens:
generation costs O(n^2) token passes. With it, each layer keeps the keys and values it has
already computed and a decode step processes only the newest token.

The buffers are allocated once, at the longest length the generation can reach, so a
decode step never reallocates or copies the past: it writes one slot per layer and
attends to a view of the filled prefix. Rows of a batch may have different prompt lengths;
prompts are left-padded, and `pad` records how many leading slots of each row are padding
so attention can ignore them.
"""

from __future__ import annotations

import torch

from tinylm.config import ModelConfig


class KVCache:
    def __init__(
        self,
        cfg: ModelConfig,
        batch_size: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        pad: torch.Tensor | None = None,
    ) -> None:
        shape = (cfg.n_layer, batch_size, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0  # slots filled so far, the same for every row
        self.pad = pad if pad is not None and bool(pad.any()) else None

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's (B, H_kv, T, D) keys/values; return all keys/values so far."""
        end = self.length + k.shape[2]
        keys, values = self.k[layer, :, :, :end], self.v[layer, :, :, :end]
        keys[:, :, self.length :] = k
        values[:, :, self.length :] = v
        return keys, values

    def advance(self, n: int) -> None:
        """Called once per forward pass, after every layer has written its n new slots."""
        self.length += n

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows, in that order (beam search picks its survivors)."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)
        if self.pad is not None:
            self.pad = self.pad.index_select(0, rows)
