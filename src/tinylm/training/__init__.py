"""Training: the Trainer loop, its config, optimizers with parameter groups, the lr schedule,
metric logging and the resumable training state stored in checkpoints; recipes and the one
run set-up that turns a recipe into a Trainer (recipe.py, run.py).

Names are imported on first use, so `tinylm.training.config` (a plain dataclass, which
the CLI reads to show defaults in --help) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "tinylm.training.config",
    "Trainer": "tinylm.training.trainer",
    "TrainResult": "tinylm.training.trainer",
    "OPTIMIZERS": "tinylm.training.optim",
    "build_optimizer": "tinylm.training.optim",
    "param_groups": "tinylm.training.optim",
    "lr_at": "tinylm.training.schedule",
    "FitScheduleToBudget": "tinylm.training.schedule",
    "Recipe": "tinylm.training.recipe",
    "load_recipe": "tinylm.training.recipe",
    "prepare_run": "tinylm.training.run",
    "resume_run": "tinylm.training.run",
    "train_config": "tinylm.training.run",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tinylm.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
