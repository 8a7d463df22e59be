"""Length-bucketed batches of paired data: rows of a batch have about the same length.

PairedDataset pads every batch to its longest example. CODE-2 lines run from 20 to 200
characters, so a uniformly drawn batch of 64 is about half padding: half the compute of a
step spent on positions that carry no loss. Here the examples are sorted by length and
cut into buckets of `bucket_batches` batches; a batch is drawn from one bucket (chosen
with probability proportional to its size, so every example stays equally likely), so it
is almost padding-free, while 8 batches' worth of examples per bucket keep batches varied.
"""

from __future__ import annotations

import torch

from tinylm.data import PairedDataset
from tinylm.errors import TinyLMError


class LengthBucketed:
    def __init__(self, data: PairedDataset, batch_size: int, bucket_batches: int = 8) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise TinyLMError("batch_size and bucket_batches must be at least 1")
        self.data = data
        self.bucket_size = batch_size * bucket_batches
        order = sorted(range(len(data)), key=lambda i: len(data.examples[i][0]))
        self.buckets = [order[i : i + self.bucket_size] for i in range(0, len(order), self.bucket_size)]

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # The bucket of a uniformly drawn example: each bucket is chosen in proportion to its size.
        anchor = int(torch.randint(len(self.data), (1,), generator=generator))
        bucket = self.buckets[anchor // self.bucket_size]
        picks = torch.randint(len(bucket), (batch_size,), generator=generator).tolist()
        return self.data.collate([bucket[i] for i in picks])
