"""Small random models for the generation tests (seeded; no training needed)."""

from __future__ import annotations

import pytest
import torch

from tinylm.config import ModelConfig
from tinylm.model import GPT


def build_model(seed: int = 0, scale: float = 0.0, **overrides) -> GPT:
    """A tiny GPT. scale > 0 redraws the weights with that std: untrained models at the usual
    0.02 predict almost uniform distributions, which makes beams and samples uninformative."""
    base = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, n_embd=32)
    torch.manual_seed(seed)
    model = GPT(ModelConfig(**{**base, **overrides})).eval()
    if scale:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() > 1:
                    p.normal_(0.0, scale)
    return model


@pytest.fixture
def make_model():
    return build_model
