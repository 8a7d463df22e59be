"""The learning-rate schedule: linear warm-up, then a decay to min_lr.

A pure function of the step, so resuming needs no scheduler object: the step number is
the whole scheduler state. Warm-up starts small because Adam's second-moment estimates
are noisy in the first steps; the decay lets the model settle into a minimum at the end.
"""

from __future__ import annotations

import math
from typing import Any


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


class FitScheduleToBudget:
    """Shorten the lr schedule when the recipe's steps would not fit in the time budget.

    A recipe is a number of steps (reproducible) and a time budget (a promise). Every
    `every` steps, the seconds per step so far (validation and checks included) give how
    many more steps fit in what is left of the budget minus `reserve_s`; if that is fewer
    than the recipe's, max_steps comes down so the cosine decay still ends, instead of the
    budget cutting the run off at a high learning rate. It never goes above the recipe's
    steps, so on a machine fast enough the run is exactly the recipe.

    With `warmup_steps`, the warm-up shrinks with the schedule, keeping its share of the
    recipe's steps: a recipe written for thousands of GPU steps (1 000 warm-up steps of
    8 000) would otherwise still be warming up when a CPU's budget ends."""

    def __init__(self, budget_s: float, reserve_s: float, max_steps: int, every: int = 20, min_steps: int = 10,
                 warmup_steps: int | None = None) -> None:
        self.budget_s, self.reserve_s, self.max_steps = budget_s, reserve_s, max_steps
        self.every, self.min_steps, self.warmup_steps = every, min_steps, warmup_steps

    def __call__(self, trainer: Any, row: dict[str, Any]) -> None:
        p = trainer.progress
        if p.step < self.min_steps or p.step % self.every:
            return
        per_step = p.elapsed_s / p.step
        left = self.budget_s - self.reserve_s - p.elapsed_s
        trainer.cfg.max_steps = min(self.max_steps, p.step + max(1, int(left / per_step)))
        if self.warmup_steps is not None:
            trainer.cfg.warmup_steps = min(self.warmup_steps,
                                           round(self.warmup_steps * trainer.cfg.max_steps / self.max_steps))
