"""The tiny CODE-2 recipe the shared `tiny_code2_model` fixture (tests/conftest.py) trains."""

from __future__ import annotations


def tiny_code2_recipe():
    """A one-layer CODE-2 line recipe: 100 steps on 60 generated examples (a few seconds)."""
    from tinylm.tasks.code2.recipes import Code2Settings
    from tinylm.training.recipe import Recipe

    return Recipe(
        name="tiny", preset="llama-style-nano", tokenizer="char", task="code2",
        model=dict(n_layer=1, n_embd=32, n_head=2, n_kv_head=None, block_size=200),
        train=dict(max_steps=100, batch_size=16, warmup_steps=2, lr=3e-3, min_lr=3e-4, log_every=10),
        settings=Code2Settings(n=60, em_blocks=3),
    )
