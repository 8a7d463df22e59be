"""Length-bucketed batches of paired data: rows of a batch have about the same length.

PairedDataset pads every batch to its longest example. CODE-2 lines run from 20 to 200
characters, so a uniformly drawn batch of 64 is about half padding: half the compute of a
step spent on positions that carry no loss. Here the examples are sorted by length and
cut into buckets of `bucket_batches` batches; a batch is drawn from one bucket (chosen
with probability proportional to its weight, so every example keeps its share), so it
is almost padding-free, while 8 batches' worth of examples per bucket keep batches varied.

`weights` (one per example, default all 1) oversample the examples a model finds hard:
an example of weight 4 is drawn four times as often as one of weight 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tinylm.data import PairedDataset
from tinylm.errors import TinyLMError


class LengthBucketed:
    def __init__(self, data: PairedDataset, batch_size: int, bucket_batches: int = 8,
                 weights: Sequence[float] | None = None) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise TinyLMError("batch_size and bucket_batches must be at least 1")
        if weights is not None and (len(weights) != len(data) or min(weights) <= 0):
            raise TinyLMError("weights must hold one positive number per example")
        self.data = data
        bucket_size = batch_size * bucket_batches
        order = sorted(range(len(data)), key=lambda i: len(data.examples[i][0]))
        self.buckets = [order[i : i + bucket_size] for i in range(0, len(order), bucket_size)]
        w = torch.ones(len(data), dtype=torch.float64) if weights is None else torch.tensor(weights, dtype=torch.float64)
        self.weights = [w[bucket] for bucket in self.buckets]
        self.bucket_weights = torch.stack([b.sum() for b in self.weights])

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b = int(torch.multinomial(self.bucket_weights, 1, generator=generator))
        picks = torch.multinomial(self.weights[b], batch_size, replacement=True, generator=generator).tolist()
        return self.data.collate([self.buckets[b][i] for i in picks])
