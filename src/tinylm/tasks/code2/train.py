"""Train a CODE-2 translator from scratch: `tinylm code2 train --preset thesis|full`.

    summary = train(load_recipe("code2-thesis"), "runs/code2-thesis")
    lm = tinylm.load(summary.model_dir)

The run set-up is the shared one (tinylm.training.run); what CODE-2 adds, in order:
1. the dataset: generated in memory from the recipe's preset, style (templates, or broad:
   templates and paraphrases), size and seed (the UGR thesis's 36 000 examples split
   70/20/10), or read from `data/{train,valid}.jsonl`;
2. the pairs: with unit "line", every block is cut into its lines (input line i -> output
   line(s) i, see task.line_pairs), each a `[bos] line [sep] output [eos]` sequence with the
   loss on the output only; with unit "block", whole blocks. config.extra["code2"] records
   the data preset, style and unit, so the evaluator and `translate` know how to prompt the model;
3. length-bucketed batches (bucketing.py), hard lines drawn more often (error_weight), and
   two callbacks: one shortens the lr schedule if the steps would not fit in the time
   budget (train.time_budget_s), one decodes validation blocks every `em_every` steps and
   keeps the checkpoint with the best line exact match in `model/` (ties go to the later
   step, which has seen more data);
4. a final choice between that checkpoint and the final weights on `final_blocks`
   validation blocks (more than a mid-run check can afford), then summary.json.

The run folder: model/ (the chosen checkpoint), last/ and best/ (the Trainer's: latest,
lowest validation loss), recipe.json, summary.json, exact_match.jsonl, metrics.jsonl,
loss.png.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.tasks.code2.recipes import BROAD_TEMPLATE_SHARE, Code2Settings
from tinylm.tasks.code2.task import Code2Task, line_pairs, load_examples
from tinylm.training.recipe import Recipe
from tinylm.training.run import Pairs, RunSummary, ensure_new_run, prepare_run, train_config
from tinylm.training.schedule import FitScheduleToBudget

if TYPE_CHECKING:
    from tinylm.training.trainer import Callback

MODEL_DIR = "model"
EM_LOG = "exact_match.jsonl"
# What a CODE-2 run does unless its recipe says otherwise: no mid-run checkpoints of the
# Trainer's own (the exact-match checks keep model/), no TensorBoard events.
TRAIN_DEFAULTS = {"eval_every": 0, "save_every": 0, "tensorboard": False}


class BestByExactMatch:
    """Greedy-decode validation blocks; keep the checkpoint with the best line exact match.

    A check on 100 blocks decides by a handful of lines, so at the end `final` measures the
    chosen checkpoint and the final weights again on more blocks and keeps the better one
    (on the thesis run, the step-5000 checkpoint won the 100-block checks 0.9905 to 0.9826
    of lines, yet the final weights were better on the test split: 0.9506 vs 0.9439 EM)."""

    def __init__(self, task: Code2Task, blocks: list[dict[str, Any]], tokenizer, every: int, out_dir: Path,
                 say: Callable[[str], None] | None = None) -> None:
        self.task, self.blocks, self.tokenizer, self.every = task, blocks, tokenizer, every
        self.out_dir, self.say = out_dir, say
        self.best: dict[str, Any] | None = None
        self.best_state: dict[str, Any] | None = None  # a copy of the chosen weights, for `final`

    def __call__(self, trainer, row: dict[str, Any]) -> None:
        if self.every and row["step"] % self.every == 0:
            self.check(trainer.model, row["step"])

    def measure(self, model, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        from tinylm.api import LanguageModel
        from tinylm.evaluation.harness import predict
        from tinylm.generation import GenerationConfig
        from tinylm.transforms import prepared_for_inference

        t0 = time.perf_counter()
        lm = LanguageModel(model, self.tokenizer)
        config = GenerationConfig(temperature=0.0, max_new_tokens=model.config.block_size)
        with prepared_for_inference(model):  # decoding layouts for the check, the plain model after
            preds, _ = predict(lm, self.task, [b["input"] for b in blocks], config)
        lines = right = exact = 0
        for b, pred in zip(blocks, preds):
            ref_lines, pred_lines = b["output"].split("\n"), pred.split("\n")
            right += sum(p == r for p, r in zip(pred_lines, ref_lines))
            lines += max(len(ref_lines), len(pred_lines))
            exact += pred == b["output"]
        return {"line_exact_match": right / lines, "block_exact_match": exact / len(blocks), "blocks": len(blocks),
                "seconds": time.perf_counter() - t0}

    def check(self, model, step: int) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, **self.measure(model, self.blocks)}
        improved = self.best is None or row["line_exact_match"] >= self.best["line_exact_match"]
        if improved:
            self._keep(model, row)
        self._log(row, improved)
        return row

    def final(self, model, step: int, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        """Keep the better of the chosen checkpoint and the final weights on `blocks`; ties go
        to the final weights, which have seen more data."""
        final_row = {"step": step, **self.measure(model, blocks)}
        if self.best_state is None or self.best["step"] == step:
            self._keep(model, final_row)
            self._log(final_row, True)
            return final_row
        final_state = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.best_state)
        best_row = {"step": self.best["step"], **self.measure(model, blocks)}
        model.load_state_dict(final_state)
        winner = best_row if best_row["line_exact_match"] > final_row["line_exact_match"] else final_row
        self._log(best_row, winner is best_row)
        self._log(final_row, winner is final_row)
        if winner is final_row:
            self._keep(model, final_row)
        else:
            self.best = best_row
        return winner

    def _keep(self, model, row: dict[str, Any]) -> None:
        from tinylm.checkpoint import save_checkpoint

        self.best = row
        self.best_state = {k: v.clone() for k, v in model.state_dict().items()}
        save_checkpoint(self.out_dir / MODEL_DIR, model, self.tokenizer,
                        extra=lambda folder: write_json(folder / "metrics.json", row))

    def _log(self, row: dict[str, Any], chosen: bool) -> None:
        with open(self.out_dir / EM_LOG, "a", encoding="utf-8") as f:  # a log: appended, like metrics.jsonl
            f.write(json.dumps(row) + "\n")
        if self.say:
            self.say(f"step {row['step']}: validation line exact match {row['line_exact_match']:.4f}, "
                     f"block {row['block_exact_match']:.4f} on {row['blocks']} blocks "
                     f"({row['seconds']:.1f}s){' *' if chosen else ''}")


def problems_reported(output: str) -> int:
    """How many problems an output line's error message lists (0 for a valid line)."""
    return output.count(" y ") + 1 if output.startswith("Error:") else 0


def training_pairs(blocks: list[dict[str, Any]], task: Code2Task) -> list[dict[str, str]]:
    """Training pairs, their inputs written the way the task prompts the model."""
    pairs = line_pairs(blocks) if task.unit == "line" else [{"input": b["input"], "output": b["output"]} for b in blocks]
    return [{"input": task.model_input(p["input"]), "output": p["output"]} for p in pairs]


def with_template_share(broad_train: list[dict[str, Any]], templates_train: list[dict[str, Any]], share: float,
                        held_out: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The broad training blocks with a fraction (share - 0.3) / 0.7 of them replaced by blocks of
    the templates style's training split, so that `share` of the lines are the templates' (the
    broad style's blocks hold 0.3 of template lines, the templates style's all of them; block
    lengths are drawn alike). Templates blocks equal to a `held_out` block (the broad validation
    and test blocks) are skipped, so the validation figures stay unseen data."""
    held = {b["input"] + "|" + b["output"] for b in held_out}
    fresh = [b for b in templates_train if b["input"] + "|" + b["output"] not in held]
    k = min(round(len(broad_train) * (share - BROAD_TEMPLATE_SHARE) / (1 - BROAD_TEMPLATE_SHARE)), len(fresh))
    return broad_train[: len(broad_train) - k] + fresh[:k]


def dataset(s: Code2Settings, data: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training blocks, validation blocks) of settings `s`: generated, or read from `data`."""
    train_blocks = load_examples("train", s.data_preset, data, s.n, s.seed, s.data_style)
    val_blocks = load_examples("valid", s.data_preset, data, s.n, s.seed, s.data_style)
    if s.template_share is not None:
        if data is not None:
            raise TinyLMError("template_share mixes generated splits; drop it with --data")
        train_blocks = with_template_share(
            train_blocks, load_examples("train", s.data_preset, None, s.n, s.seed, "templates"), s.template_share,
            val_blocks + load_examples("test-broad", s.data_preset, None, s.n, s.seed, "broad"))
    return train_blocks, val_blocks


def bucketed_batches(train_data, train_pairs: list[dict[str, str]], batch_size: int, s: Code2Settings):
    """Length-bucketed batches of a run's PairedDataset, hard lines drawn more often (s.error_weight)."""
    from tinylm.tasks.code2.bucketing import LengthBucketed

    dropped = set(train_data.dropped)  # too long for the context: not in train_data
    weights = [s.error_weight ** problems_reported(p["output"]) for i, p in enumerate(train_pairs) if i not in dropped]
    return LengthBucketed(train_data, batch_size, s.bucket_batches, weights)


def train(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data: str | None = None,
    threads: int = 0,
    quiet: bool = False,
    say: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
    model=None,
    tokenizer=None,
) -> RunSummary:
    """Train `recipe` into out_dir (which must not hold a run yet); see the module docstring.
    `callbacks` run after the task's own (e.g. a tuner's pruning check); `model` and `tokenizer`:
    fine-tune this model (tinylm finetune) instead of building one."""
    import torch

    if recipe.task != "code2":
        raise TinyLMError(f"recipe {recipe.name} is not a code2 recipe")
    start = time.perf_counter()
    s = recipe.settings
    out = Path(out_dir)
    ensure_new_run(out, "choose another --out", MODEL_DIR)
    cfg = train_config(recipe, out, defaults=TRAIN_DEFAULTS, **({"num_threads": threads} if threads else {}))
    out.mkdir(parents=True, exist_ok=True)
    (out / EM_LOG).unlink(missing_ok=True)

    train_blocks, val_blocks = dataset(s, data)
    task = Code2Task(s.data_preset, s.unit, data, s.n, s.seed, s.hex_hints, s.data_style)
    train_pairs, val_pairs = training_pairs(train_blocks, task), training_pairs(val_blocks, task)
    n_val = cfg.eval_batches * cfg.batch_size  # the Trainer's val loss reads only these
    extra = {"task": "code2", "code2": {"data_preset": s.data_preset, "data_style": s.data_style, "unit": s.unit,
                                        "n": s.n, "seed": s.seed, "hex_hints": s.hex_hints, "recipe": recipe.name,
                                        **({"template_share": s.template_share} if s.template_share is not None else {})}}
    run = prepare_run(recipe, cfg, Pairs(train_pairs, val_pairs[:n_val]), task_extra=extra, started=start,
                      model=model, tokenizer=tokenizer)
    budget = cfg.time_budget_s
    if not quiet:
        say(f"code2 {s.data_preset} ({s.data_style}): {len(train_blocks)} training blocks -> {len(run.train_data)} {s.unit} pairs; "
            f"{run.tokenizer.kind} tokenizer ({run.tokenizer.vocab_size} tokens); model {recipe.preset if model is None else 'given'}, "
            f"{run.model.num_params():,} parameters; " + (f"budget {budget:.0f}s" if budget else f"{cfg.max_steps} steps"))

    best = BestByExactMatch(task, val_blocks[: s.em_blocks], run.tokenizer, s.em_every, out, say=None if quiet else say)
    own: list = [best]
    if budget:
        # Keep back what the final check, evaluation and save take (a few percent of the budget).
        own.insert(0, FitScheduleToBudget(budget, 0.03 * budget, cfg.max_steps))
    batches = bucketed_batches(run.train_data, train_pairs, cfg.batch_size, s)
    result = run.trainer(batches=batches, callbacks=[*own, *callbacks], quiet=quiet).fit()
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        best.final(run.model, result.steps, val_blocks[: max(s.final_blocks, s.em_blocks)])
    finally:
        torch.set_num_threads(threads_before)
    chosen = best.best
    summary = run.summary(result, out / MODEL_DIR, best_step=chosen["step"],
                          val_line_exact_match=chosen["line_exact_match"],
                          val_block_exact_match=chosen["block_exact_match"])
    if not quiet:
        say(f"stopped ({result.stop_reason}) at step {result.steps} after {result.elapsed_s:.0f}s of training; "
            f"model {out / MODEL_DIR} (step {chosen['step']}, validation line exact match "
            f"{chosen['line_exact_match']:.4f}, block {chosen['block_exact_match']:.4f})")
    return summary
