"""Tiny models, corpora and datasets shared by the training tests (and their subprocesses).

Kept in a plain module (not conftest.py) so a test can also import it from a child process.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.training import TrainConfig

PATTERN = "the quick brown fox jumps over the lazy dog. "
ALPHABET = sorted(set(PATTERN))
VOCAB = len(ALPHABET)
BLOCK = 16


def encode(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(ALPHABET)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


class TokenStream:
    """An in-memory stand-in for TextDataset: random windows of a 1-D id tensor."""

    def __init__(self, ids: torch.Tensor, block_size: int = BLOCK) -> None:
        self.ids = ids
        self.block_size = block_size

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.block_size
        starts = torch.randint(len(self.ids) - T, (batch_size,), generator=generator).tolist()
        x = torch.stack([self.ids[s : s + T] for s in starts])
        y = torch.stack([self.ids[s + 1 : s + T + 1] for s in starts])
        return x, y


def pattern_data(repeats: int = 40) -> TokenStream:
    return TokenStream(encode(PATTERN * repeats))


def random_data(n: int = 2000, seed: int = 123) -> TokenStream:
    """Uniformly random tokens: nothing to learn, so a model fit to PATTERN does worse on it over time."""
    g = torch.Generator().manual_seed(seed)
    return TokenStream(torch.randint(VOCAB, (n,), generator=g))


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32)
    return GPT(ModelConfig(**{**cfg, **overrides}))


def tiny_train_config(out_dir: str | Path, **overrides) -> TrainConfig:
    # One thread: tiny matrices gain nothing from more, and a busy machine makes them crawl.
    cfg = dict(
        out_dir=str(out_dir), max_steps=20, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=3,
        eval_every=5, eval_batches=2, save_every=5, log_every=1, num_threads=1, tensorboard=False,
    )
    return TrainConfig(**{**cfg, **overrides})
