"""The arithmetic recipe and the arithmetic part of a recipe (ArithmeticSettings).

`arithmetic`: a small character-level model, a few minutes on a CPU: llama-style-nano with full multi-head attention and context 256 (a
prompt of about 16 tokens plus the protocol's longest answer, 200 tokens), 1 500 steps of
32 examples, lr 3e-3 -> 3e-4, the checkpoint with the lowest validation loss kept.
`tinylm arithmetic train` and `tinylm train --recipe arithmetic` run it (train.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylm.errors import TinyLMError


@dataclass
class ArithmeticSettings:
    n_train: int = 20000  # training examples, drawn from the training problems
    n_val: int = 640  # validation examples (other draws from the training problems)
    max_operand: int = 20  # problems A op B with A, B in 1..max_operand
    seed: int = 0  # the problem split and the examples drawn

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_val < 1 or self.max_operand < 2:
            raise TinyLMError("n_train and n_val must be at least 1, max_operand at least 2")


RECIPES: dict[str, dict[str, Any]] = {
    "arithmetic": dict(
        description="rewrite 'A op B' as a chain of equal expressions (the grammar-decoding study's task)",
        preset="llama-style-nano", model={"n_kv_head": None, "block_size": 256}, tokenizer="char",
        train=dict(max_steps=1500, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=100, weight_decay=0.0,
                   grad_clip=1.0, eval_every=200, eval_batches=10, log_every=50, save_every=0, tensorboard=False,
                   seed=0),
        task=dict(n_train=20000, n_val=640, max_operand=20, seed=0),
    ),
}
