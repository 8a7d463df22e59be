"""The learning-rate schedule: linear warm-up, then a decay to min_lr.

A pure function of the step, so resuming needs no scheduler object: the step number is
the whole scheduler state. Warm-up starts small because Adam's second-moment estimates
are noisy in the first steps; the decay lets the model settle into a minimum at the end.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int, decay: str = "cosine") -> float:
    """Learning rate for optimizer step `step` (0-based).

    Warm-up: lr * (step + 1) / (warmup_steps + 1), so step 0 already moves (nanoGPT).
    Then `progress` goes from 0 at the end of warm-up to 1 at max_steps, and the rate falls
    from lr to min_lr along half a cosine ("cosine"), a straight line ("linear"), or stays
    at lr ("constant"). Past max_steps it stays at min_lr.
    """
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if decay == "constant":
        return lr
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if decay == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
    if decay == "linear":
        return min_lr + (1.0 - progress) * (lr - min_lr)
    raise ValueError(f"unknown decay {decay!r}")
