"""Choosing modules and parameters by name, freezing them, and the base of the fine-tuning transforms.

tinylm's module names (what LoRA's `targets` and `--freeze` match), for block i:

    tok_emb                      token embedding (nn.Embedding; a tied lm_head shares its matrix)
    pos_emb                      learned positions (position = "learned" only)
    blocks.i.norm1, .norm2       the norms before (pre-norm) or after (post-norm) each sublayer
    blocks.i.attn.qkv            fused query/key/value projection (nn.Linear, n_embd -> (H + 2 H_kv) D)
    blocks.i.attn.proj           attention output projection (nn.Linear, n_embd -> n_embd)
    blocks.i.ffn.up, .ffn.down   the FFN's first and last linear (relu, gelu, swiglu, mlp3)
    blocks.i.ffn.gate            SwiGLU's gate;  blocks.i.ffn.mid  the middle linear of mlp3
    norm_f                       the final norm (pre-norm models)
    lm_head                      the output head

A pattern is a comma-separated list of items; a name matches when any item does:
    "attn.qkv"           a name equal to the item or ending in "." + item (every block's qkv)
    "blocks.0.*", "*ffn*" a glob (fnmatch) over the whole name
    "re:blocks\\.[01]\\.attn\\..*"  a regular expression over the whole name

Parameters are matched by their own names (blocks.0.attn.qkv.weight): an item matches a
parameter when it matches the parameter's name or the name of a module holding it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import Transform, register_transform


def _items(pattern: str) -> list[str]:
    items = [item.strip() for item in pattern.split(",") if item.strip()]
    if not items:
        raise TinyLMError("an empty name pattern; give names such as attn.qkv,attn.proj (see docs/finetune.md)")
    for item in items:
        if item.startswith("re:"):
            try:
                re.compile(item[3:])
            except re.error as e:
                raise TinyLMError(f"bad regular expression {item[3:]!r} in name pattern: {e}") from None
    return items


def name_matches(name: str, pattern: str) -> bool:
    """Whether the qualified name `name` matches `pattern` (see the module docstring)."""
    for item in _items(pattern):
        if item.startswith("re:"):
            if re.fullmatch(item[3:], name):
                return True
        elif any(c in item for c in "*?["):
            if fnmatch.fnmatchcase(name, item):
                return True
        elif name == item or name.endswith("." + item):
            return True
    return False


def parameter_matches(name: str, pattern: str) -> bool:
    """Whether the parameter `name` or a module holding it matches `pattern`."""
    parts = name.split(".")
    return any(name_matches(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def matching_parameters(model: nn.Module, pattern: str) -> list[str]:
    return [name for name, _ in model.named_parameters() if parameter_matches(name, pattern)]


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) is nn.Linear]


def trainable_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


@dataclass
class _FreezesParameters(Transform):
    """A transform that freezes parameters (self._frozen) and gives them back on undo and merge."""

    def _take_back(self, model: GPT, modules: dict[str, nn.Module]) -> GPT:
        super()._take_back(model, modules)
        for p in getattr(self, "_frozen", []):
            p.requires_grad_(True)
        self._frozen = []
        return model


@dataclass
class TrainingTransform(_FreezesParameters):
    """A transform whose new parameters are trained while the rest of the model stays frozen
    (LoRA, adapters, prompt tuning). Freezing is part of applying it, so a run resumed from a
    checkpoint (which applies the recorded transforms again) trains exactly the same tensors
    and its saved optimizer state lines up; undo and merge give the frozen ones back."""

    persistent: ClassVar[bool] = True
    # Fragments of the parameter names this transform's modules add; everything else freezes.
    trained: ClassVar[tuple[str, ...]] = ()

    def apply(self, model: GPT) -> GPT:
        if any(t.name in ("int8", "int4", "dynamic-int8") for t in model.transforms):
            raise TinyLMError(f"{self.name}: fine-tune the float checkpoint, not a quantized one")
        super().apply(model)
        self._frozen = [p for name, p in model.named_parameters()
                        if p.requires_grad and not any(part in name for part in self.trained)]
        for p in self._frozen:
            p.requires_grad_(False)
        return model


@register_transform
@dataclass
class Freeze(_FreezesParameters):
    """Freeze the parameters whose names match `pattern` (full fine-tuning of the rest).

    It replaces no module; it is persistent so that a resumed run freezes the same tensors."""

    name: ClassVar[str] = "freeze"
    persistent: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    # Freezing changes no computation: merged, it simply goes away.
    mergeable: ClassVar[bool] = True
    pattern: str = ""

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        names = matching_parameters(model, self.pattern)
        if not names:
            raise TinyLMError(f"--freeze {self.pattern!r} matches no parameter (parameters are named like "
                              f"{next(iter(dict(model.named_parameters())))}; see docs/finetune.md)")
        params = dict(model.named_parameters())
        self._frozen = [params[n] for n in names if params[n].requires_grad]
        for p in self._frozen:
            p.requires_grad_(False)
        return {}

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        return {}
