"""The transform contract: swap modules of a built model for others, and say how to go back.

A transform never edits a layer's code. It takes a built GPT and replaces some of its
modules, found by qualified name ("blocks.0.attn.qkv", "blocks.3.ffn", "lm_head"), by modules
with their own forward. The model's code (GPT.forward, Block.forward) calls whatever module
sits under that name, so a replacement takes the same inputs and returns the same shapes as
the module it replaces. Faster inference layouts work this way (inference.py), and so will
quantization, pruning masks, LoRA and adapters.

A transform is a dataclass: its fields are its settings (a LoRA rank, a bit width) and are
what a checkpoint records. Its class says three things about it:

- persistent: recorded in the checkpoint's config.json (`"transforms": [{"name": ..., **fields}]`)
  and applied again at load, to the freshly built model and before the weights are read, so
  the replacements' own tensors (LoRA's A and B, quantized weights and their scales) are
  stored in model.safetensors under their own names. A non-persistent transform is never
  saved; it must keep the state_dict of what it replaces (same names, same values), so that
  saving a transformed model writes the plain weights.
- reversible: `undo(model)` puts back the very modules it replaced.

Undo and merge go last in, first out: a later transform may have replaced modules inside the
ones an earlier transform installed (prepare_for_inference prepares the plain layer inside a
LoRA layer).
- mergeable: `merge(model)` replaces its modules by plain ones that compute the same thing
  (LoRA: W + BA in one nn.Linear). export-hf merges mergeable transforms and refuses the rest.

`model.transforms` lists the applied transforms in order. One transform object is applied to
one model (it remembers what it replaced); apply a new one to another model.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT

TRANSFORMS: dict[str, type["Transform"]] = {}


@dataclass
class Transform(ABC):
    name: ClassVar[str]
    persistent: ClassVar[bool] = False
    reversible: ClassVar[bool] = True
    mergeable: ClassVar[bool] = False

    # What apply() replaced and what it installed, by qualified name; None until applied.
    _originals: dict[str, nn.Module] | None = field(default=None, init=False, repr=False, compare=False)
    _installed: dict[str, nn.Module] | None = field(default=None, init=False, repr=False, compare=False)

    @abstractmethod
    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        """The modules to install, by the qualified name of the module each replaces."""

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        """Plain modules computing what this transform's modules compute, by qualified name."""
        raise TinyLMError(f"model transform {self.name} cannot be merged into plain weights")

    def apply(self, model: GPT) -> GPT:
        if self.applied:
            raise ValueError(f"this {self.name} transform is already applied to a model; apply a new one")
        self._installed = self.replacements(model)
        self._originals = replace_modules(model, self._installed)
        model.transforms.append(self)
        return model

    @property
    def applied(self) -> bool:
        return self._installed is not None

    def undo(self, model: GPT) -> GPT:
        if not self.reversible:
            raise TinyLMError(f"model transform {self.name} cannot be undone")
        return self._take_back(model, self._originals or {})

    def merge(self, model: GPT) -> GPT:
        if not self.mergeable:
            raise TinyLMError(f"model transform {self.name} cannot be merged into plain weights")
        return self._take_back(model, self.merged(model))

    def _take_back(self, model: GPT, modules: dict[str, nn.Module]) -> GPT:
        index = next((i for i, t in enumerate(model.transforms) if t is self), None)
        if index is None or self._installed is None:
            raise ValueError(f"this {self.name} transform is not applied to this model")
        # Later transforms may have replaced our modules or what is inside them: last in, first out.
        later = model.transforms[index + 1:]
        if later:
            names = ", ".join(t.name for t in later)
            raise TinyLMError(f"model transform {self.name}: undo the transforms applied after it first ({names})")
        replace_modules(model, modules)
        del model.transforms[index]
        self._originals, self._installed = None, None
        return model

    def to_config(self) -> dict[str, Any]:
        """What a checkpoint's config.json records: the name and the settings."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}}


def replace_modules(model: nn.Module, modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Install each module under its qualified name; returns the modules that were there."""
    old: dict[str, nn.Module] = {}
    for name, module in modules.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old[name] = parent.get_submodule(child)  # raises AttributeError for a name that is not there
        module.train(parent.training)  # a new module follows its model's mode (dropout, prepared layers)
        setattr(parent, child, module)
    return old


def register_transform(cls: type[Transform]) -> type[Transform]:
    """Class decorator: make a transform known by name, so checkpoints can re-apply it."""
    TRANSFORMS[cls.name] = cls
    return cls


def transform_from_config(entry: Any) -> Transform:
    """The transform a config.json entry ({"name": ..., **settings}) describes."""
    name = entry.get("name") if isinstance(entry, dict) else None
    cls = TRANSFORMS.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(TRANSFORMS)) or "none"
        raise TinyLMError(f"unknown model transform {name if name is not None else entry!r} (known: {known})")
    settings = {k: v for k, v in entry.items() if k != "name"}
    try:
        return cls(**settings)
    except TypeError as e:
        raise TinyLMError(f"model transform {name}: {e}") from None


def persistent_transforms(model: GPT) -> list[dict[str, Any]]:
    """The config.json entries of the transforms a checkpoint of `model` records."""
    return [t.to_config() for t in model.transforms if t.persistent]


def apply_recorded(model: GPT, entries: list[Any]) -> GPT:
    """Apply, in order, the transforms a checkpoint recorded."""
    for entry in entries:
        transform = transform_from_config(entry)
        if not transform.persistent:
            raise TinyLMError(f"model transform {transform.name} is not saved with checkpoints; remove it from config.json")
        transform.apply(model)
    return model


def merge_all(model: GPT) -> GPT:
    """Fold every applied transform into plain modules, last first; refuses, in one line, a
    transform that cannot be merged (before changing anything)."""
    stuck = [t.name for t in model.transforms if not t.mergeable]
    if stuck:
        raise TinyLMError(f"model transform(s) {', '.join(stuck)} cannot be merged into plain weights")
    for transform in reversed(list(model.transforms)):
        transform.merge(model)
    return model
