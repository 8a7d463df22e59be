"""What `tinylm distill --task code2` needs from CODE-2 (training/distill_run.py looks this module
up by the teacher's task name): the teacher's dataset, its pairs and its batches."""

from __future__ import annotations

import dataclasses
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.tasks.code2.recipes import Code2Settings
from tinylm.tasks.code2.train import TRAIN_DEFAULTS, bucketed_batches, dataset, training_pairs

__all__ = ["TRAIN_DEFAULTS", "batches", "pairs", "settings"]


def settings(extra: dict[str, Any], recipe) -> Code2Settings:
    """The teacher recipe's CODE-2 settings, with the dataset its checkpoint records."""
    base = recipe.settings if recipe is not None and recipe.task == "code2" else Code2Settings()
    known = {f.name for f in dataclasses.fields(Code2Settings)}
    return dataclasses.replace(base, **{k: v for k, v in (extra.get("code2") or {}).items() if k in known})


def pairs(s: Code2Settings, data: list[str] | None, n_val: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train pairs, the first n_val validation pairs) of the CODE-2 dataset of settings `s`."""
    from tinylm.tasks.code2.task import Code2Task

    if data is not None and len(data) != 1:
        raise TinyLMError("--task code2 takes one --data folder (train.jsonl and valid.jsonl)")
    folder = data[0] if data else None
    task = Code2Task(s.data_preset, s.unit, folder, s.n, s.seed, s.hex_hints, s.data_style)
    train_blocks, val_blocks = dataset(s, folder)
    return training_pairs(train_blocks, task), training_pairs(val_blocks, task)[:n_val]


batches = bucketed_batches  # length buckets, hard lines drawn more often: as `tinylm code2 train`
