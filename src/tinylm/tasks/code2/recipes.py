"""Code2Recipe: a named recipe of the config hub (tinylm.presets.RECIPES), read for CODE-2.

A recipe entry is a plain dict, like every recipe of the hub:

    dict(preset="llama-style-nano", model={...overrides}, tokenizer="char", train={...TrainConfig},
         task=dict(name="code2", data_preset="thesis", unit="line", time_budget_s=600, ...))

`task` holds what only CODE-2 training needs: which dataset (preset, size, seed), the
unit the model translates (a line or a whole block), the wall-time budget the schedule is
fitted to, and how the best checkpoint is chosen (exact match on validation blocks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.tasks.code2.generator import DEFAULT_N, DEFAULT_SEED, PRESETS
from tinylm.tasks.code2.task import UNITS

TOKENIZERS = ("char", "bpe")


@dataclass
class Code2Recipe:
    name: str
    preset: str  # model preset (tinylm.presets)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides
    tokenizer: str = "char"
    vocab_size: int | None = None  # bpe only
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    data_preset: str = "thesis"
    n: int = DEFAULT_N
    seed: int = DEFAULT_SEED
    unit: str = "line"
    time_budget_s: float = 0.0  # 0 = run train["max_steps"]; else fit the schedule to this wall time
    em_every: int = 0  # steps between validation exact-match checks; 0 = at the end only
    em_blocks: int = 100  # validation blocks decoded at each check
    final_blocks: int = 500  # blocks for the final choice: chosen checkpoint vs final weights
    bucket_batches: int = 8  # batches per length bucket (bucketing.py)
    # Oversampling of the hard lines: a line whose output is an error message reporting k
    # problems is drawn error_weight ** k times as often as a valid line (1 = uniform).
    error_weight: float = 1.0
    hex_hints: bool = False  # show every decimal numeral's hex value beside it (numerals.py)

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise TinyLMError(f"recipe {self.name}: tokenizer {self.tokenizer!r} is not one of {', '.join(TOKENIZERS)}")
        if self.data_preset not in PRESETS:
            raise TinyLMError(f"recipe {self.name}: data preset {self.data_preset!r} is not one of {', '.join(PRESETS)}")
        if self.unit not in UNITS:
            raise TinyLMError(f"recipe {self.name}: unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if (self.time_budget_s < 0 or self.em_every < 0 or min(self.em_blocks, self.final_blocks) < 1
                or self.n < 10 or self.error_weight < 1):
            raise TinyLMError(f"recipe {self.name}: time_budget_s and em_every must be >= 0, em_blocks >= 1, n >= 10, "
                              "final_blocks >= 1, error_weight >= 1")

    @classmethod
    def from_hub(cls, name: str, entry: dict[str, Any]) -> "Code2Recipe":
        task = dict(entry.get("task") or {})
        if task.pop("name", "code2") != "code2":
            raise TinyLMError(f"recipe {name} is not a code2 recipe")
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in entry.items() if k != "task"} | task
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TinyLMError(f"recipe {name}: unknown field(s) {', '.join(unknown)}")
        return cls(name=name, **{k: v for k, v in fields.items() if k != "name"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Code2Recipe":
        return dataclasses.replace(self, **changes)


def recipe_for(preset: str) -> Code2Recipe:
    """The hub's recipe for a data preset: "thesis" -> code2-thesis, "full" -> code2-full."""
    return get_recipe(f"code2-{preset}")


def get_recipe(name: str) -> Code2Recipe:
    from tinylm.presets import RECIPES

    if name not in RECIPES:
        code2 = [k for k, v in RECIPES.items() if (v.get("task") or {}).get("name") == "code2"]
        raise TinyLMError(f"unknown recipe {name!r}; code2 recipes: {', '.join(code2) or '(none)'}")
    return Code2Recipe.from_hub(name, RECIPES[name])
