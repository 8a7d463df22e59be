"""A tiny recipe, its corpus, and `tinylm tune` as a subprocess, for the tune tests."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import tinylm

TINY_RECIPE = {
    "name": "tiny", "preset": "gpt2-style-nano", "tokenizer": "char",
    "model": {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16},
    "train": {"max_steps": 12, "batch_size": 4, "eval_every": 4, "eval_batches": 2, "warmup_steps": 1,
              "log_every": 4, "save_every": 0, "tensorboard": False, "num_threads": 1},
}
# Two choices far apart, so the ranking of trials does not depend on noise.
LR_SPACE = {"lr": [3e-3, 1e-6]}


def write_tiny(folder: Path, **train: object) -> tuple[Path, Path]:
    """(recipe file, corpus file) in folder; `train` overrides the recipe's training settings."""
    rng = random.Random(0)
    words = "the quick brown fox jumps over a lazy dog and runs to the old forest".split()
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)), encoding="utf-8")
    recipe = folder / "tiny.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], **train}}), encoding="utf-8")
    return recipe, corpus


def write_space(folder: Path, space: dict, name: str = "space.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(space), encoding="utf-8")
    return path


def tune_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinylm.cli.main", "tune", *args]


def env() -> dict[str, str]:
    """The environment of a `tinylm` subprocess: this checkout's tinylm, one thread."""
    src = str(Path(tinylm.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def run_tune(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(tune_command(*args), env=env(), capture_output=True, text=True, timeout=timeout)
