"""Checkpoints: a folder anyone can inspect, with no pickle in it.

    ckpt/
      config.json         the ModelConfig, plus "transforms": the persistent model transforms
                          applied, in order (tinylm/transforms/; none in older checkpoints)
      model.safetensors   the weights (a tied head is stored once, as the embedding)
      tokenizer.json      the tokenizer (tinylm.tokenizers)
      train_state/        optional: optimizer, scheduler, RNG and data position (training/)

Saving writes a whole new folder beside the target and renames it into place, so a crash
mid-save leaves the previous checkpoint intact: there is never a moment when `ckpt/` holds
a mix of old and new files.

Loading builds the plain model, applies the recorded transforms again (so their modules, and
the names of their tensors, are in place) and then reads the weights. Non-persistent
transforms such as prepare_for_inference are never recorded: they keep the plain weights'
names and values, so a prepared model saves exactly what the plain one would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_folder, read_json, recover_interrupted_swap, write_json
from tinylm.model import GPT, build_model
from tinylm.transforms import apply_recorded, persistent_transforms

CONFIG_FILE = "config.json"
TRANSFORMS_KEY = "transforms"
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
        write_json(tmp / CONFIG_FILE, {**model.config.to_dict(), TRANSFORMS_KEY: persistent_transforms(model)})
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
    return _read_config(Path(path))[0]


def _read_config(path: Path) -> tuple[ModelConfig, list[Any]]:
    """The ModelConfig and the recorded transforms' entries of the checkpoint at `path`."""
    recover_interrupted_save(path)
    if not path.is_dir():
        raise TinyLMError(f"checkpoint not found: {path} is not a folder")
    raw = read_json(path / CONFIG_FILE)
    transforms = raw.pop(TRANSFORMS_KEY, []) if isinstance(raw, dict) else []
    if not isinstance(transforms, list):
        raise TinyLMError(f"checkpoint {path}: {CONFIG_FILE} \"{TRANSFORMS_KEY}\" must be a list")
    return ModelConfig.from_dict(raw), transforms


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> GPT:
    path = Path(path)
    cfg, transforms = _read_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise TinyLMError(f"checkpoint {path} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise TinyLMError(f"checkpoint {path}: cannot read {WEIGHTS_FILE}: {e}") from None
    model = build_model(cfg)
    try:
        apply_recorded(model, transforms)
    except TinyLMError as e:
        raise TinyLMError(f"checkpoint {path}: {e}") from None
    model.to(device)
    expected = set(model_state(model))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise TinyLMError(f"checkpoint {path}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise TinyLMError(f"checkpoint {path}: weight shapes do not match config.json: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()
