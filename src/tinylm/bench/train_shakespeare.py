"""train-shakespeare-char: nanoGPT's CPU recipe against tinylm's fastest preset, in one run.

(a) The reference: recipe `nanogpt-shakespeare-char` (gpt2-style, 4 layers, 4 heads, 128 dims,
    context 64, batch 12, 2000 iterations, lr 1e-3, dropout 0, AdamW). We record its training
    wall time and final validation loss.
(b) Recipe `shakespeare-char`: we record when it first reaches the reference's final validation
    loss, and its validation loss once it has trained as long as the reference did.

Validation is the last 10 % of the text (nanoGPT's split: our val and test splits together),
scored in full, window by window, so the loss has no sampling noise. Only optimizer steps are
timed; evaluations pause the clock. Close to the target the candidates evaluate five times as
often (`eval_due`), so the time to reach it is read to within a few steps. Anchor: nanoGPT reaches 1.886 in about 85 s on 2 cores.
Goals: (a) 1.89 or better; (b) the reference's loss in at most half its time, and 1.70 or
below in the reference's time. The CPU speedrun (the efficient-architecture issue) asks more
of the best combination: at most 1/3 of the reference's time, and 1.60 or below in its time;
`--recipes A B ...` runs candidates (e.g. shakespeare-char-speedrun) against one reference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tinylm.data import TextDataset, prepare_corpus, tinyshakespeare_path
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.tokenizers import read_text, train_tokenizer
from tinylm.training import FitScheduleToBudget
from tinylm.training.recipe import load_recipe
from tinylm.training.run import Corpus, prepare_run, train_config

EVAL_BATCH = 256
STEPS_HEADROOM = 10
# Near the target, evaluate DENSE times as often: the time to the target is read at an
# evaluation, and every 50 steps is 5 % of the reference's time at the fast recipes' pace.
NEAR_TARGET = 0.05
DENSE = 5


def eval_due(step: int, eval_every: int, last_loss: float | None, target: float | None, reached: bool) -> bool:
    """Whether to evaluate after optimizer step `step`: every `eval_every` steps, and every
    `eval_every // DENSE` steps while the last loss is within NEAR_TARGET above a target
    not yet reached, so the first loss at or below it is seen within a few steps."""
    if step % eval_every == 0:
        return True
    near = target is not None and not reached and last_loss is not None and last_loss <= target + NEAR_TARGET
    return near and step % max(1, eval_every // DENSE) == 0


@torch.no_grad()
def full_val_loss(model: GPT, val_sets: list[TextDataset]) -> float:
    model.eval()
    total, count = 0.0, 0
    for data in val_sets:
        for x, y in data.iter_eval_batches(EVAL_BATCH):
            _, loss = model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
    model.train()
    return total / count


def train_timed(
    name: str, data_dir: Path, tokenizer, *, eval_every: int, max_steps: int | None = None,
    stop_at_s: float | None = None, target: float | None = None,
) -> dict[str, Any]:
    """Train one recipe (the shared run set-up), timing only the optimizer steps; evaluate
    every `eval_every` steps.

    With `stop_at_s`, the run may take up to `STEPS_HEADROOM` times the recipe's steps and
    the lr schedule is fitted to that time (FitScheduleToBudget brings max_steps down to what
    fits): the cosine decay ends when the time does, instead of being cut off half-way down
    or ending early and idling at the minimum learning rate."""
    recipe = load_recipe(name)
    steps = max_steps or recipe.train["max_steps"] * (STEPS_HEADROOM if stop_at_s else 1)
    train_cfg = train_config(recipe, data_dir / recipe.name, max_steps=steps, eval_every=0, save_every=0, tensorboard=False)
    run = prepare_run(recipe, train_cfg, Corpus(data_dir), tokenizer=tokenizer)
    model, block_size = run.model, run.model.config.block_size
    val = [TextDataset(data_dir / f"{split}.bin", block_size) for split in ("val", "test")]
    trainer = run.trainer(quiet=True)
    fit = FitScheduleToBudget(stop_at_s, 0.0, train_cfg.max_steps) if stop_at_s else None
    curve, train_s, reached_at = [], 0.0, None
    while trainer.progress.step < train_cfg.max_steps:
        t0 = time.perf_counter()
        trainer.train_step()
        train_s += time.perf_counter() - t0
        trainer.progress.step += 1
        trainer.progress.elapsed_s = train_s
        if fit is not None:
            fit(trainer, {})
        step = trainer.progress.step
        last = curve[-1]["val_loss"] if curve else None
        due = eval_due(step, eval_every, last, target, reached_at is not None)
        if due or step == train_cfg.max_steps or (stop_at_s and train_s >= stop_at_s):
            loss = full_val_loss(model, val)
            curve.append({"step": step, "train_s": round(train_s, 2), "val_loss": round(loss, 4)})
            if target is not None and reached_at is None and loss <= target:
                reached_at = train_s
            if stop_at_s and train_s >= stop_at_s:
                break
    return {"recipe": name, "parameters": model.num_params(), "steps": trainer.progress.step,
            "tokens": trainer.progress.step * train_cfg.batch_size * block_size,
            "train_s": round(train_s, 2), "final_val_loss": curve[-1]["val_loss"], "curve": curve,
            "reached_target_s": None if reached_at is None else round(reached_at, 2)}


def _candidate(name: str, ref: dict[str, Any], fast: dict[str, Any]) -> dict[str, Any]:
    reached = fast["reached_target_s"]
    return {
        **{k: fast[k] for k in ("recipe", "parameters", "steps", "tokens", "train_s")},
        "seconds_to_reference_loss": reached,
        "val_loss_at_reference_time": fast["final_val_loss"],
        "time_ratio": None if reached is None else round(reached / ref["train_s"], 3),
    }


def _char_recipes(names: list[str]) -> list[str]:
    """The candidates, checked before anything trains: text recipes with a character tokenizer."""
    for name in names:
        recipe = load_recipe(name)
        if recipe.task is not None or recipe.tokenizer != "char":
            raise TinyLMError(f"recipe {name} is not a character-level text recipe; train-shakespeare-char "
                              "compares char recipes (e.g. shakespeare-char, shakespeare-char-speedrun)")
    return names


def run(quick: bool = False, recipes: list[str] | None = None) -> dict[str, Any]:
    """The reference, then each candidate recipe (default: shakespeare-char) against it:
    one reference run serves them all, so trying three candidates costs four trainings."""
    names = _char_recipes(recipes or ["shakespeare-char"])
    source = tinyshakespeare_path()
    text = read_text(source)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        tokenizer = train_tokenizer("char", [text])
        prepare_corpus([source], tokenizer, data_dir, split=(0.9, 0.05, 0.05))
        ref_steps = 100 if quick else None
        ref = train_timed("nanogpt-shakespeare-char", data_dir, tokenizer, eval_every=ref_steps or 500,
                          max_steps=ref_steps)
        runs = {name: train_timed(name, data_dir, tokenizer, eval_every=20 if quick else 50, stop_at_s=ref["train_s"],
                                  target=ref["final_val_loss"], max_steps=100 if quick else None)
                for name in names}
    first = runs[names[0]]
    out = {
        "reference": {k: ref[k] for k in ("recipe", "parameters", "steps", "tokens", "train_s", "final_val_loss")},
        "fast": _candidate(names[0], ref, first),
        "fast_curve": first["curve"],
    }
    if len(names) > 1:
        out["candidates"] = {name: {**_candidate(name, ref, r), "curve": r["curve"]} for name, r in runs.items()}
    return {
        **out,
        "anchor": {"nanogpt_val_loss": 1.886, "nanogpt_seconds_2_cores": 85},
        "goal": {"reference_val_loss": "<= 1.89", "time_ratio": "<= 0.5 (speedrun: <= 0.333)",
                 "val_loss_at_reference_time": "<= 1.70 (speedrun: <= 1.60)"},
    }
