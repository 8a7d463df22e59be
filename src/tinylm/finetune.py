"""Fine-tuning a trained checkpoint: the methods, and what a fine-tuning run saves.

    model = load_base("runs/base/best")                    # the float checkpoint to adapt
    apply_method(model, "lora", rank=8, alpha=16)          # full | lora | prompt | adapter (+ freeze)
    ... train (tinylm finetune does: the same Trainer as tinylm train) ...
    save_adapter(model, "runs/ft/adapter", base="runs/base/best")   # only the trained tensors
    lm = tinylm.load("runs/base/best", adapter="runs/ft/adapter")   # base + adapter
    merge_adapter("runs/base/best", "runs/ft/adapter", "runs/ft/merged")  # one standalone checkpoint

The methods are model transforms (tinylm/transforms/: lora.py, adapters.py, prompt.py,
freeze.py); applying one freezes what the method keeps fixed, so the optimizer only ever
sees the trainable tensors (training/optim.py skips frozen ones).

An adapter folder:
    adapter_config.json        {"format": "tinylm-adapter", "method", "transforms": [the
                               transforms to apply to the base, in order], "base": {"path",
                               "sha256" (of the base's weights), "config" (its ModelConfig)},
                               "trainable_parameters", "model_extra" (the fine-tuned model's
                               config.extra: its task and prompt format)}
    adapter_model.safetensors  the trained tensors, by their names in the transformed model
A LoRA of rank 8 on a small model's attention is a few KB. Loading checks the base: a
different architecture (config) or different weights (sha256) is refused in one line,
since an adapter only means something on the weights it was trained against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinylm.atomic_files import atomic_folder, read_json, write_json
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms import Adapters, Freeze, LoRA, PromptTuning, Transform, apply_recorded

METHODS = ("full", "lora", "prompt", "adapter")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FORMAT = "tinylm-adapter"


def method_transforms(method: str, *, rank: int = 8, alpha: float = 16.0, lora_dropout: float = 0.0,
                      targets: str | None = None, virtual_tokens: int = 20, prompt_init: str = "vocab",
                      reduction: int = 16, placement: str = "houlsby", freeze: str | None = None) -> list[Transform]:
    """The transforms that make `method` (validated; nothing is applied yet)."""
    if method not in METHODS:
        raise TinyLMError(f"unknown fine-tuning method {method!r}; choose one of: {', '.join(METHODS)}")
    out: list[Transform] = []
    if freeze:
        out.append(Freeze(pattern=freeze))
    if method == "lora":
        out.append(LoRA(rank=rank, alpha=alpha, dropout=lora_dropout,
                        **({"targets": targets} if targets else {})))
    elif method == "prompt":
        out.append(PromptTuning(virtual_tokens=virtual_tokens, init=prompt_init))
    elif method == "adapter":
        out.append(Adapters(reduction=reduction, placement=placement))
    elif targets:
        raise TinyLMError("--targets chooses LoRA's layers; with --method full use --freeze PATTERN")
    if freeze and method != "full":
        raise TinyLMError(f"--freeze goes with --method full ({method} already freezes everything but its own tensors)")
    return out


def apply_method(model: GPT, method: str, **settings: Any) -> GPT:
    for transform in method_transforms(method, **settings):
        transform.apply(model)
    if not any(p.requires_grad for p in model.parameters()):
        raise TinyLMError("nothing left to train: every parameter is frozen")
    return model


def load_base(path: str | os.PathLike) -> GPT:
    """A float checkpoint to fine-tune (one with transforms already applied is refused)."""
    from tinylm.checkpoint import load_model

    model = load_model(path)
    if model.transforms:
        names = ", ".join(t.name for t in model.transforms)
        raise TinyLMError(f"{path} carries model transforms ({names}); fine-tune a plain float checkpoint "
                          f"(merge a fine-tuned one first: tinylm finetune --merge)")
    return model


def weights_sha256(model: GPT) -> str:
    """A hash of the model's weights (names, dtypes, shapes and values), transform-free."""
    from tinylm.checkpoint import model_state

    digest = hashlib.sha256()
    for name, tensor in sorted(model_state(model).items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def trained_state(model: GPT) -> dict[str, torch.Tensor]:
    """The trainable tensors by their state_dict names (a tied head counted once)."""
    from tinylm.checkpoint import model_state

    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    params = dict(model.named_parameters())
    state = model_state(model)
    return {name: state[name] for name in state if name in params and id(params[name]) in trainable}


def _architecture(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config_dict.items() if k != "extra"}


def save_adapter(model: GPT, folder: str | os.PathLike, *, base: str | os.PathLike, base_sha256: str,
                 method: str) -> Path:
    """Write only the trained tensors and the adapter config into `folder` (atomically)."""
    from tinylm.transforms import persistent_transforms
    from tinylm.transforms.lora import lora_layers

    if any(layer.merged for layer in lora_layers(model)):
        raise TinyLMError("unmerge the LoRA layers before saving the adapter (the base weights hold the update)")
    tensors = trained_state(model)
    config = {
        "format": FORMAT, "version": 1, "method": method,
        "transforms": persistent_transforms(model),
        "base": {"path": str(base), "sha256": base_sha256, "config": _architecture(model.config.to_dict())},
        "trainable_parameters": sum(t.numel() for t in tensors.values()),
        "model_extra": model.config.extra,
    }
    with atomic_folder(Path(folder)) as tmp:
        write_json(tmp / ADAPTER_CONFIG, config)
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS))
    return Path(folder)


def read_adapter(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise TinyLMError(f"{folder} is not an adapter folder (no {ADAPTER_CONFIG})")
    config = read_json(folder / ADAPTER_CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise TinyLMError(f"{folder}/{ADAPTER_CONFIG} is not a tinylm adapter config (a PEFT adapter? "
                          f"import it with tinylm.interop.peft.import_peft_lora)")
    try:
        tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise TinyLMError(f"adapter {folder}: cannot read {ADAPTER_WEIGHTS}: {e}") from None
    return config, tensors


def attach_adapter(model: GPT, folder: str | os.PathLike) -> GPT:
    """Apply the adapter in `folder` to `model`, its base; refuses a different base in one line."""
    config, tensors = read_adapter(folder)
    base = config.get("base", {})
    if model.transforms:
        raise TinyLMError(f"adapter {folder}: its base must be a plain float checkpoint")
    if base.get("config") != _architecture(model.config.to_dict()):
        want, have = base.get("config") or {}, _architecture(model.config.to_dict())
        diff = next((k for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)), "?")
        raise TinyLMError(f"adapter {folder} was trained on a different base model ({diff}: "
                          f"{want.get(diff)} there, {have.get(diff)} here)")
    if base.get("sha256") != weights_sha256(model):
        raise TinyLMError(f"adapter {folder} was trained on different base weights (sha256 {str(base.get('sha256'))[:12]}…, "
                          f"this base's {weights_sha256(model)[:12]}…)")
    try:
        apply_recorded(model, config.get("transforms", []))
    except TinyLMError as e:
        raise TinyLMError(f"adapter {folder}: {e}") from None
    expected = trained_state(model)
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in tensors):
        raise TinyLMError(f"adapter {folder}: its tensors do not fit the transforms its config names")
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    extra = config.get("model_extra")
    if isinstance(extra, dict):  # the fine-tuned model's task and prompt format
        model.config = dataclasses.replace(model.config, extra=extra)
    return model


def merge_adapter(base: str | os.PathLike, adapter: str | os.PathLike, out: str | os.PathLike) -> Path:
    """base + adapter -> one standalone checkpoint in `out` (LoRA and freezing fold into plain
    weights; adapters and prompt tuning, which no plain layer computes, stay as recorded transforms)."""
    from tinylm.checkpoint import save_checkpoint
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer

    model = attach_adapter(load_base(base), adapter)
    fold_mergeable(model)
    tokenizer = load_tokenizer(Path(base) / TOKENIZER_FILENAME) if (Path(base) / TOKENIZER_FILENAME).is_file() else None
    return save_checkpoint(out, model, tokenizer)


def fold_mergeable(model: GPT) -> GPT:
    """Merge the transforms that can be merged, from the last one back, while they can."""
    while model.transforms and model.transforms[-1].mergeable:
        model.transforms[-1].merge(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
