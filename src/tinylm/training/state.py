"""The training state inside a checkpoint: everything besides the weights that resuming needs.

    last/train_state/
      state.json           format, progress (step, tokens, time, best val loss, patience),
                           the TrainConfig, the optimizer's structure and non-tensor values,
                           the Python and NumPy RNG states
      tensors.safetensors  the optimizer's tensors ("optimizer.<param index>.<name>"), the
                           global torch RNG ("rng.torch", used by dropout) and the data
                           sampler's generator ("rng.data": which batches come next)

The learning-rate schedule is a pure function of the step, so the step is its whole state.
Both files are written into the checkpoint's temporary folder by `save_checkpoint(...,
extra=...)`, so they are replaced together with the weights or not at all.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinylm.errors import TinyLMError
from tinylm.atomic_files import read_json, write_json

STATE_DIR = "train_state"
STATE_JSON = "state.json"
STATE_TENSORS = "tensors.safetensors"
FORMAT = 1


@dataclass
class Progress:
    """How far a run has come; the scalars of the training state."""

    step: int = 0  # optimizer steps done
    tokens: int = 0  # input positions trained on (for paired data, padding included)
    elapsed_s: float = 0.0  # wall time spent in fit(), summed over resumes
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the last improvement (early-stopping patience)
    last_eval_step: int | None = None


def write_train_state(
    folder: Path,
    *,
    progress: Progress,
    train_config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> None:
    """Write `folder/train_state/`. Pass as `extra=functools.partial(write_train_state, ...)`."""
    tensors: dict[str, torch.Tensor] = {
        "rng.torch": torch.get_rng_state(),
        "rng.data": data_generator.get_state(),
    }
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in opt["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    meta = {
        "format": FORMAT,
        "progress": dataclasses.asdict(progress),
        "train_config": train_config,
        "optimizer": {
            "class": type(optimizer).__name__,
            "param_groups": [_jsonable(g) for g in opt["param_groups"]],
            "scalars": scalars,
        },
        "rng": {
            "python": [py_version, list(py_internal), py_gauss],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        },
    }
    out = folder / STATE_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / STATE_TENSORS))
    write_json(out / STATE_JSON, meta)


def read_train_state(checkpoint: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(state.json as a dict, tensors) of a checkpoint, or a TinyLMError saying what is missing."""
    folder = checkpoint / STATE_DIR
    if not (folder / STATE_JSON).is_file() or not (folder / STATE_TENSORS).is_file():
        raise TinyLMError(f"cannot resume: {checkpoint} has no complete {STATE_DIR}/ (was it saved by a trainer?)")
    meta = read_json(folder / STATE_JSON)
    if meta.get("format") != FORMAT:
        raise TinyLMError(f"cannot resume: {folder / STATE_JSON} has format {meta.get('format')!r}, expected {FORMAT}")
    try:
        tensors = load_file(str(folder / STATE_TENSORS))
    except (SafetensorError, OSError, ValueError) as e:
        raise TinyLMError(f"cannot resume: {folder / STATE_TENSORS} is unreadable: {e}") from None
    return meta, tensors


def restore_train_state(
    meta: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> Progress:
    """Put the optimizer and every RNG back as they were; return the progress scalars."""
    _restore_optimizer(optimizer, meta["optimizer"], tensors)
    torch.set_rng_state(tensors["rng.torch"])
    data_generator.set_state(tensors["rng.data"])
    py_version, py_internal, py_gauss = meta["rng"]["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    name, keys, pos, has_gauss, cached = meta["rng"]["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return Progress(**meta["progress"])


def _restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    if saved["class"] != type(optimizer).__name__:
        raise TinyLMError(f"cannot resume: the checkpoint's optimizer is {saved['class']}, this run uses {type(optimizer).__name__}")
    live_groups = optimizer.state_dict()["param_groups"]
    if [g["params"] for g in saved["param_groups"]] != [g["params"] for g in live_groups]:
        raise TinyLMError("cannot resume: the optimizer's parameter groups do not match the model's parameters")
    # JSON turned tuples (betas) into lists; give each value back the type the live group uses.
    groups = [
        {k: (tuple(v) if isinstance(live.get(k), tuple) else v) for k, v in g.items()}
        for g, live in zip(saved["param_groups"], live_groups)
    ]
    state: dict[int, dict[str, Any]] = {int(i): dict(s) for i, s in saved["scalars"].items()}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _jsonable(group: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
