"""One run set-up: a recipe and its data -> tokenizer, model, datasets and Trainer.

    recipe = load_recipe("shakespeare-char")
    cfg = train_config(recipe, "runs/shk", max_steps=500)   # validated before anything slow
    run = prepare_run(recipe, cfg, TextFiles([path], "runs/shk/data"))
    result = run.trainer().fit()

Every trainer starts here: `tinylm train`, the task trainers (tasks/*/train.py, which add
their own data, batches and callbacks) and the training benchmarks. So a recipe means the
same everywhere, in this order:

1. the TrainConfig: the task's defaults, then the recipe's `train`, then what the caller
   gives (command-line flags);
2. the tokenizer, trained on the run's text (a corpus's files, or the pairs' inputs and
   outputs and any text the task wants covered), unless the caller brings one;
3. the data: a text corpus is tokenized into a folder (train/val/test.bin) and read as
   random windows; paired examples become `[bos] input [sep] output [eos]` sequences with
   the loss on the output (data/paired.py);
4. the model config: the recipe's preset and overrides, the tokenizer's vocabulary, and
   `extra`: the preset, how the model's prompts are framed (`prompt_format`: "plain" for
   a corpus, "paired" for pairs; data/prompt_format.py), and the task's own notes;
5. the seed (cfg.seed) right before the model is built, so the initial weights depend on
   the recipe alone;
6. the Trainer, with whatever batches and callbacks the caller adds.

`resume_run` rebuilds a run from its folder instead (the model and tokenizer of last/,
the data of data/, train_config.json), so `Trainer.fit(resume=True)` continues exactly.
The run folder: data/, recipe.json, train_config.json, last/ and best/ (the Trainer's),
metrics.jsonl, loss.png, summary.json.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.atomic_files import read_json, write_json
from tinylm.training.config import TrainConfig
from tinylm.training.recipe import Recipe

DATA_FOLDER = "data"
RECIPE_FILE = "recipe.json"
SUMMARY_FILE = "summary.json"


@dataclass
class TextFiles:
    """Language modelling on text files, tokenized into `folder` (split 90/5/5 by default)."""

    paths: list[Path]
    folder: Path
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)


@dataclass
class Corpus:
    """A corpus already tokenized into a folder (train.bin, val.bin, meta.json: data/text.py)."""

    folder: Path


@dataclass
class Pairs:
    """Paired examples ({"input", "output"}): the model learns to answer the input."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]] | None = None
    tokenizer_texts: Sequence[str] = ()  # more text the tokenizer must cover (e.g. test prompts)


RunData = TextFiles | Corpus | Pairs


@dataclass
class RunSummary:
    """What every run reports (summary.json); `figures` holds a task's own, written beside them."""

    recipe: str
    out_dir: str
    model_dir: str  # the checkpoint the run chose
    stop_reason: str
    steps: int
    tokens: int
    train_s: float  # the Trainer's wall time (steps, validation, checkpoints)
    total_s: float  # everything: data, tokenizer, training, final checks
    parameters: int
    tokenizer: str
    vocab_size: int
    best_step: int | None
    best_val_loss: float | None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        figures = d.pop("figures")
        return {**d, **figures}


def ensure_new_run(out_dir: str | Path, hint: str = "choose another --out", *markers: str) -> None:
    """Refuse a folder that already holds a run (its last/ checkpoint, or a task's `markers`)."""
    out = Path(out_dir)
    if any((out / name).exists() for name in ("last", *markers)):
        raise TinyLMError(f"{out} already holds a run; {hint}")


def train_config(recipe: Recipe, out_dir: str | Path, *, defaults: dict[str, Any] | None = None,
                 **given: Any) -> TrainConfig:
    """The run's TrainConfig: `defaults` (a task's), then the recipe's `train`, then `given`."""
    return TrainConfig(**{**(defaults or {}), **recipe.train, **given, "out_dir": str(out_dir)})


def model_extra(recipe: Recipe, prompt_format: str, task_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.extra of the run's model: its preset, how its prompts are framed, the task's notes."""
    from tinylm.presets import preset_dict

    return {**preset_dict(recipe.preset).get("extra", {}), "prompt_format": prompt_format, **(task_extra or {})}


class Run:
    """A prepared run: everything a Trainer needs, built from a recipe in one order."""

    def __init__(self, recipe: Recipe, cfg: TrainConfig, tokenizer, model, train_data, val_data,
                 started: float) -> None:
        self.recipe, self.cfg, self.tokenizer, self.model = recipe, cfg, tokenizer, model
        self.train_data, self.val_data, self.started = train_data, val_data, started

    def trainer(self, *, batches: Any = None, callbacks: Sequence[Any] = (), quiet: bool = False,
                objective: Any = None):
        """The Trainer on the run's data (or on `batches`, anything with get_batch, e.g. length buckets),
        with the model's own loss or an `objective` (trainer.Objective)."""
        from tinylm.training.trainer import Trainer

        return Trainer(self.model, batches if batches is not None else self.train_data, self.val_data, self.cfg,
                       self.tokenizer, callbacks=callbacks, quiet=quiet, objective=objective)

    def describe(self) -> str:
        c = self.model.config
        return (f"model: {self.model.num_params():,} parameters, {c.n_layer} layers, context {c.block_size}, "
                f"vocabulary {c.vocab_size} ({self.tokenizer.kind})")

    def summary(self, result, model_dir: str | Path, best_step: int | None = None, **figures: Any) -> RunSummary:
        """The run's summary after `result = trainer.fit()`, written to out_dir/summary.json;
        `best_step` is the step of the checkpoint the run chose (default: lowest validation loss)."""
        summary = RunSummary(
            recipe=self.recipe.name, out_dir=result.out_dir, model_dir=str(model_dir), stop_reason=result.stop_reason,
            steps=result.steps, tokens=result.tokens, train_s=result.elapsed_s,
            total_s=time.perf_counter() - self.started, parameters=self.model.num_params(),
            tokenizer=self.tokenizer.kind, vocab_size=self.tokenizer.vocab_size,
            best_step=result.best_step if best_step is None else best_step,
            best_val_loss=result.best_val_loss, figures=figures,
        )
        write_json(Path(result.out_dir) / SUMMARY_FILE, summary.to_dict())
        return summary


def _tokenizer_texts(data: RunData) -> list:
    if isinstance(data, TextFiles):
        return list(data.paths)
    if isinstance(data, Pairs):
        return [f"{p['input']}\n{p['output']}" for p in data.train] + list(data.tokenizer_texts)
    raise TinyLMError("a tokenized corpus needs the tokenizer that made it")


def _text_datasets(folder: Path, block_size: int):
    from tinylm.data import TextDataset

    counts = read_json(folder / "meta.json")["counts"]
    for split in ("train", "val"):
        if counts[split] < block_size + 1:
            raise TinyLMError(
                f"corpus too small: the {split} split has {counts[split]} tokens, a window needs block_size + 1 = "
                f"{block_size + 1}; use more text or a smaller --set block_size=N"
            )
    return TextDataset(folder / "train.bin", block_size), TextDataset(folder / "val.bin", block_size)


def datasets(data: Corpus | Pairs, tokenizer, block_size: int, prefix: Sequence[int] = ()):
    """(train, val) datasets: windows of a tokenized corpus, or encoded pairs (val None without
    pairs); `prefix`: a prompt-tuned model's virtual tokens, put before every prompt."""
    if isinstance(data, Corpus):
        if prefix:
            raise TinyLMError("prompt tuning trains on paired data (prompt -> completion), not on a text corpus")
        return _text_datasets(data.folder, block_size)
    from tinylm.data import PairedDataset

    val = PairedDataset(data.val, tokenizer, block_size, prefix) if data.val else None
    return PairedDataset(data.train, tokenizer, block_size, prefix), val


def prepare_run(recipe: Recipe, cfg: TrainConfig, data: RunData, *, tokenizer=None,
                task_extra: dict[str, Any] | None = None, started: float | None = None, model=None) -> Run:
    """Tokenizer, data, model and seed for a new run of `recipe` (see the module docstring);
    `started` is when the run began, if its data took time to make before this. `model` (with
    `tokenizer`): fine-tune this model instead of building one (its config and transforms stay)."""
    import torch

    from tinylm.model import build_model
    from tinylm.presets import model_config
    from tinylm.tokenizers import train_tokenizer

    from tinylm.training import distributed

    if model is not None and tokenizer is None:
        raise TinyLMError("a model to fine-tune comes with its tokenizer")
    started = time.perf_counter() if started is None else started
    out = Path(cfg.out_dir)
    if distributed.is_main():  # under torchrun, rank 0 alone writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RECIPE_FILE, recipe.to_dict())
    if tokenizer is None:
        tokenizer = train_tokenizer(recipe.tokenizer, _tokenizer_texts(data), recipe.vocab_size)
    if isinstance(data, TextFiles):
        from tinylm.data import prepare_corpus

        prepare_corpus(data.paths, tokenizer, data.folder, data.split)
        data = Corpus(data.folder)
    if model is not None:
        from tinylm.transforms import virtual_prefix

        # The fine-tuned model is prompted the way its new data frames prompts, with the task's notes.
        fmt = "paired" if isinstance(data, Pairs) else "plain"
        model.config = dataclasses.replace(
            model.config, extra={**model.config.extra, "prompt_format": fmt, **(task_extra or {})})
        train_data, val_data = datasets(data, tokenizer, model.config.block_size, virtual_prefix(model))
        return Run(recipe, cfg, tokenizer, model, train_data, val_data, started)
    prompt_format = "paired" if isinstance(data, Pairs) else "plain"
    model_cfg = model_config(recipe.preset, **{**recipe.model, "vocab_size": tokenizer.vocab_size,
                                               "extra": model_extra(recipe, prompt_format, task_extra)})
    train_data, val_data = datasets(data, tokenizer, model_cfg.block_size)
    torch.manual_seed(cfg.seed)  # the initial weights: the recipe's seed alone decides them
    return Run(recipe, cfg, tokenizer, build_model(model_cfg), train_data, val_data, started)


def resume_run(out_dir: str | Path, **given: Any) -> Run:
    """A run rebuilt from its folder (last/, data/, train_config.json, recipe.json), with the
    training settings in `given` applied on top; `run.trainer().fit(resume=True)` continues it."""
    from tinylm.checkpoint import load_model, recover_interrupted_save
    from tinylm.data import read_pairs
    from tinylm.tokenizers import load_tokenizer
    from tinylm.transforms import virtual_prefix
    from tinylm.training.recipe import read_recipe_file

    started = time.perf_counter()
    out = Path(out_dir)
    last = out / "last"
    recover_interrupted_save(last)
    if not last.is_dir():
        raise TinyLMError(f"nothing to resume: {last} does not exist")
    recipe_file = out / RECIPE_FILE
    recipe = read_recipe_file(recipe_file) if recipe_file.is_file() else Recipe(name=out.name)
    if recipe.task is not None:
        raise TinyLMError(f"{out} is a {recipe.task} run; a task run cannot be resumed, start a new one")
    # The model with its recorded transforms applied again (a fine-tuning run's LoRA layers,
    # adapters, frozen parameters), so the weights and optimizer state of last/ fit it.
    model = load_model(last).train()
    tokenizer = load_tokenizer(last)
    cfg = TrainConfig.from_dict({**read_json(out / "train_config.json"), **given, "out_dir": str(out)})
    folder = out / DATA_FOLDER
    if (folder / "train.bin").is_file():
        data: Corpus | Pairs = Corpus(folder)
    else:
        val_file = folder / "val.jsonl"
        data = Pairs(read_pairs(folder / "train.jsonl"), read_pairs(val_file) if val_file.is_file() else None)
    train_data, val_data = datasets(data, tokenizer, model.config.block_size, virtual_prefix(model))
    # The Trainer restores last/ again when it resumes (weights, optimizer, RNGs, progress).
    return Run(recipe, cfg, tokenizer, model, train_data, val_data, started)
