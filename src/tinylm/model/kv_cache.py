"""A preallocated key/value cache for incremental decoding.

Without a cache, producing token t means re-running the model over all t previous tokens:
generation costs O(n^2) token passes. With it, each layer keeps the keys and values it has
already computed and a decode step processes only the newest token.

The buffers are allocated once, at the longest length the generation can reach, so a
decode step never reallocates or copies the past: it writes one slot per layer and
attends to a view of the filled prefix. Rows of a batch may have different prompt lengths;
prompts are left-padded, and `pad` records how many leading slots of each row are padding
so attention can ignore them.

Continuous batching (generation/continuous.py) changes the batch between steps, through
this class's methods only: `append` adds prefilled rows (right-aligned with the rows
already there, so every row's newest token sits in the same slot), `reorder` keeps some
rows in some order (finished rows leave; beam search follows parents) and `trim` drops
the leading slots that are padding in every row. Nothing outside this class writes its
fields.
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
        self._spare: tuple[torch.Tensor, torch.Tensor] | None = None  # reorder's second buffers

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def capacity(self) -> int:
        """Slots per row allocated (filled or not)."""
        return self.k.shape[3]

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
        """Keep only the given batch rows, in that order (beam search picks its survivors).

        Beam search reorders at every step, so this must not cost a whole cache: only the
        filled slots are gathered, into a second buffer of the same size that then swaps
        with the first (no allocation: allocating and copying whole buffers made a step
        of 128 beams take 65 ms instead of a few)."""
        n = self.length
        if rows.numel() == self.batch_size:
            if self._spare is None or self._spare[0].shape != self.k.shape:  # (continuous batching trims k, v)
                self._spare = (torch.empty_like(self.k), torch.empty_like(self.v))
            spare_k, spare_v = self._spare
            torch.index_select(self.k[:, :, :, :n], 1, rows, out=spare_k[:, :, :, :n])
            torch.index_select(self.v[:, :, :, :n], 1, rows, out=spare_v[:, :, :, :n])
            self._spare = (self.k, self.v)
            self.k, self.v = spare_k, spare_v
        else:
            shape = (self.k.shape[0], rows.numel(), *self.k.shape[2:])
            k, v = self.k.new_zeros(shape), self.v.new_zeros(shape)
            k[:, :, :, :n] = self.k[:, :, :, :n].index_select(1, rows)
            v[:, :, :, :n] = self.v[:, :, :, :n].index_select(1, rows)
            self.k, self.v, self._spare = k, v, None
        if self.pad is not None:
            self.pad = self.pad.index_select(0, rows)

    def append(self, other: KVCache, capacity: int = 0) -> None:
        """Add `other`'s rows after this cache's, right-aligned: the shorter side is shifted
        right and its extra leading slots become padding. The buffers are reallocated with
        room for `capacity` slots (at least the filled length), so the decode steps until
        the next change do not reallocate."""
        length = max(self.length, other.length)
        capacity = max(capacity, length)
        n_self, n_other = self.batch_size, other.batch_size
        shape = (self.k.shape[0], n_self + n_other, self.k.shape[2], capacity, self.k.shape[4])
        k, v = self.k.new_zeros(shape), self.v.new_zeros(shape)
        for rows, src in ((slice(0, n_self), self), (slice(n_self, None), other)):
            k[:, rows, :, length - src.length : length] = src.k[:, :, :, : src.length]
            v[:, rows, :, length - src.length : length] = src.v[:, :, :, : src.length]
        pad = torch.cat([self._pad_or_zeros() + (length - self.length), other._pad_or_zeros() + (length - other.length)])
        self.k, self.v, self._spare = k, v, None
        self.length, self.max_len = length, capacity
        self.pad = pad if bool(pad.any()) else None

    def trim(self) -> None:
        """Drop the leading slots that are padding in every row (after rows left the batch),
        so the cache is no longer than its longest row."""
        if self.pad is None:
            return
        drop = int(self.pad.min())
        if drop:
            self.k, self.v = self.k[:, :, :, drop:], self.v[:, :, :, drop:]
            self.length -= drop
            self.max_len -= drop
            self.pad = self.pad - drop
        if not bool(self.pad.any()):
            self.pad = None

    def _pad_or_zeros(self) -> torch.Tensor:
        if self.pad is not None:
            return self.pad
        return torch.zeros(self.batch_size, dtype=torch.long, device=self.k.device)
