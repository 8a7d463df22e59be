"""Checkpoints: a folder anyone can inspect, with no pickle in it.

    ckpt/
      config.json         the ModelConfig
      model.safetensors   the weights (a tied head is stored once, as the embedding)
      tokenizer.json      the tokenizer (tinylm.tokenizers)
      train_state/        optional: optimizer, scheduler, RNG and data position (training/)

Saving writes a whole new folder beside the target and renames it into place, so a crash
mid-save leaves the previous checkpoint intact: there is never a moment when `ckpt/` holds
a mix of old and new files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_folder, read_json, recover_interrupted_swap, write_json
from tinylm.model import GPT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The weights to store: contiguous copies, with a tied head left out (it is the embedding)."""
    state = model.state_dict()
    if model.config.tie_weights:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous() for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike,
    model: GPT,
    tokenizer=None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write model (+ tokenizer, + whatever `extra(folder)` writes) atomically to `path`."""
    path = Path(path)
    with atomic_folder(path) as tmp:
        write_json(tmp / CONFIG_FILE, model.config.to_dict())
        save_file(model_state(model), str(tmp / WEIGHTS_FILE))
        if tokenizer is not None:
            from tinylm.tokenizers import TOKENIZER_FILENAME

            tokenizer.save(tmp / TOKENIZER_FILENAME)
        if extra is not None:
            extra(tmp)
    return path


def recover_interrupted_save(path: Path) -> None:
    """If a crash hit between the two renames of a save, the old checkpoint is put back."""
    recover_interrupted_swap(path)


def load_config(path: str | os.PathLike) -> ModelConfig:
    path = Path(path)
    recover_interrupted_save(path)
    if not path.is_dir():
        raise TinyLMError(f"checkpoint not found: {path} is not a folder")
    return ModelConfig.from_dict(read_json(path / CONFIG_FILE))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> GPT:
    path = Path(path)
    cfg = load_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise TinyLMError(f"checkpoint {path} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise TinyLMError(f"checkpoint {path}: cannot read {WEIGHTS_FILE}: {e}") from None
    model = GPT(cfg).to(device)
    expected = set(model_state(model))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise TinyLMError(f"checkpoint {path}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise TinyLMError(f"checkpoint {path}: weight shapes do not match config.json: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()
