"""Recipes: everything that reproduces a training run, as one validated value, read by one loader.

A recipe is a model preset with overrides, a tokenizer, training settings and, for a task,
the task's own settings:

    {"preset": "llama-style-nano", "model": {"n_kv_head": null, "block_size": 256},
     "tokenizer": "bpe", "vocab_size": 512,
     "train": {"max_steps": 8000, "batch_size": 64, "lr": 3e-3},        # TrainConfig fields
     "task": {"name": "code2", "data_preset": "thesis", "unit": "line"}} # the task plug-in's settings

Named recipes live in one place each: the generic ones (language modelling on a text
corpus, no `task`) in the config hub, `tinylm.presets.RECIPES`; a task's in its package
(`plugin.recipes`, e.g. tasks/code2/recipes.py). A recipe can also be a file, FILE.json
or FILE.toml, of the same shape (every run folder's recipe.json is one). `load_recipe`
reads all of them, and every key is checked when a Recipe is made: an unknown key or a
bad value is one line that names the recipe and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylm.atomic_files import read_settings_file
from tinylm.errors import TinyLMError

TOKENIZERS = ("char", "bpe", "sentencepiece")
VOCAB_SIZED = ("bpe", "sentencepiece")  # the tokenizers whose vocabulary size is chosen
FILE_SUFFIXES = (".json", ".toml")
# ModelConfig fields a recipe may not set: the tokenizer decides the vocabulary, the run writes extra.
MODEL_FIELDS_SET_BY_THE_RUN = ("vocab_size", "extra")


@dataclass
class Recipe:
    name: str
    preset: str = "gpt2-style-nano"  # a model preset of the config hub (tinylm.presets)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides
    tokenizer: str = "char"  # trained on the run's data: "char", "bpe" or "sentencepiece" (BPE)
    vocab_size: int | None = None  # bpe and sentencepiece only
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields (not out_dir)
    task: str | None = None  # the task plug-in that trains it; None = language modelling on a text corpus
    settings: Any = None  # the task's settings (an instance of its plugin.settings), None without a task
    description: str = ""

    def __post_init__(self) -> None:
        try:
            self._validate()
        except TinyLMError as e:
            raise TinyLMError(f"recipe {self.name}: {e}") from None

    def _validate(self) -> None:
        from tinylm.config import ModelConfig
        from tinylm.presets import model_config
        from tinylm.training.config import TrainConfig

        if self.tokenizer not in TOKENIZERS:
            raise TinyLMError(f"tokenizer {self.tokenizer!r} is not one of {', '.join(TOKENIZERS)}")
        if self.vocab_size is not None and (self.tokenizer not in VOCAB_SIZED or not _positive_int(self.vocab_size)):
            raise TinyLMError("vocab_size is for a bpe or sentencepiece tokenizer, a positive integer")
        if not isinstance(self.model, dict) or not isinstance(self.train, dict):
            raise TinyLMError("model and train must be tables of settings")
        known = {f.name for f in dataclasses.fields(ModelConfig)} - set(MODEL_FIELDS_SET_BY_THE_RUN)
        _no_unknown("model", self.model, known, extra_note="(vocab_size comes from the tokenizer)"
                    if "vocab_size" in self.model else "")
        # The model the recipe describes must be buildable (any vocabulary size will do here).
        model_config(self.preset, **{**self.model, "vocab_size": self.vocab_size or 256})
        _no_unknown("train", self.train, {f.name for f in dataclasses.fields(TrainConfig)} - {"out_dir"})
        TrainConfig(**self.train)
        # JSON has no tuples: keep what a round trip through a recipe file gives back.
        self.train = json.loads(json.dumps(self.train))
        self.model = json.loads(json.dumps(self.model))
        if self.task is None:
            if self.settings is not None:
                raise TinyLMError("task settings without a task")
            return
        from tinylm.tasks import get_plugin

        plugin = get_plugin(self.task)
        if self.settings is None:
            self.settings = plugin.settings()
        if not isinstance(self.settings, plugin.settings):
            raise TinyLMError(f"task settings must be a {plugin.settings.__name__}")

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> "Recipe":
        """A recipe from its table form (the hub's entries, recipe files), every key checked."""
        if not isinstance(d, dict):
            raise TinyLMError(f"recipe {name}: expected a table of settings, got {type(d).__name__}")
        keys = {f.name for f in dataclasses.fields(cls)} - {"settings"}
        try:
            _no_unknown("recipe", d, keys)
        except TinyLMError as e:
            raise TinyLMError(f"recipe {name}: {e}") from None
        d = copy.deepcopy(d)
        task = d.pop("task", None)
        d.pop("name", None)
        if task is None:
            return cls(name=name, **d)
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            raise TinyLMError(f"recipe {name}: task must be a table with the task's name, e.g. {{\"name\": \"code2\"}}")
        from tinylm.tasks import get_plugin

        task_name = task.pop("name")
        try:
            plugin = get_plugin(task_name)
            _no_unknown(f"task {task_name}", task, {f.name for f in dataclasses.fields(plugin.settings)})
            settings = plugin.settings(**task)
        except TinyLMError as e:
            raise TinyLMError(f"recipe {name}: {e}") from None
        return cls(name=name, task=task_name, settings=settings, **d)

    def to_dict(self) -> dict[str, Any]:
        """The table form: what recipe.json holds and `load_recipe(FILE.json)` reads back."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d.update(preset=self.preset, model=copy.deepcopy(self.model), tokenizer=self.tokenizer,
                 vocab_size=self.vocab_size, train=copy.deepcopy(self.train))
        if self.task is not None:
            d["task"] = {"name": self.task, **dataclasses.asdict(self.settings)}
        return d

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with fields changed (validated again); `train={...}` and `model={...}` are
        merged into the recipe's own, `settings={...}` into its task settings."""
        for key in ("train", "model"):
            if key in changes:
                changes[key] = {**getattr(self, key), **changes[key]}
        if isinstance(changes.get("settings"), dict):
            try:
                changes["settings"] = dataclasses.replace(self.settings, **changes["settings"])
            except TypeError as e:
                raise TinyLMError(f"recipe {self.name}: task settings: {e}") from None
        return dataclasses.replace(self, **changes)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _no_unknown(what: str, d: dict[str, Any], known: set[str], extra_note: str = "") -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        note = f" {extra_note}" if extra_note else ""
        raise TinyLMError(f"unknown {what} key(s) {', '.join(unknown)}{note}; known: {', '.join(sorted(known))}")


def named_recipes() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every named recipe: name -> (where it lives, its table): the hub's, then each task's."""
    from tinylm.presets import RECIPES
    from tinylm.tasks import plugins

    out = {name: ("tinylm.presets.RECIPES", entry) for name, entry in RECIPES.items()}
    for plugin in plugins():
        for name, entry in plugin.recipes.items():
            if name in out:
                raise TinyLMError(f"recipe {name} is defined twice: in {out[name][0]} and in task {plugin.name}")
            out[name] = (f"task {plugin.name}", {**entry, "task": {"name": plugin.name, **entry.get("task", {})}})
    return out


def recipe_names() -> list[str]:
    return list(named_recipes())


def load_recipe(spec: str) -> Recipe:
    """A named recipe (the hub's or a task's), or a recipe file: FILE.json or FILE.toml."""
    if Path(spec).suffix in FILE_SUFFIXES:
        return read_recipe_file(spec)
    recipes = named_recipes()
    if spec not in recipes:
        raise TinyLMError(f"unknown recipe {spec!r}; choose one of: {', '.join(recipes)} (or a FILE.json / FILE.toml)")
    return Recipe.from_dict(spec, recipes[spec][1])


def read_recipe_file(path: str | Path) -> Recipe:
    path = Path(path)
    d = read_settings_file(path, "recipe")
    name = d.get("name") if isinstance(d, dict) and isinstance(d.get("name"), str) else path.stem
    return Recipe.from_dict(name, d)
