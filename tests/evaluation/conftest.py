from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_code2_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer CODE-2 line model trained for 20 steps on 60 generated examples (about a second)."""
    from tinylm.tasks.code2.recipes import Code2Recipe
    from tinylm.tasks.code2.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = Code2Recipe(
            name="tiny", preset="llama-style-nano", n=60,
            model=dict(n_layer=1, n_embd=32, n_head=2, n_kv_head=None, block_size=200),
            train=dict(max_steps=20, batch_size=16, warmup_steps=2, lr=3e-3, min_lr=3e-4, log_every=10),
            em_blocks=3,
        )
        summary = train(recipe, tmp_path_factory.mktemp("code2") / "run", quiet=True)
    finally:
        torch.set_num_threads(before)
    return Path(summary.model_dir)
