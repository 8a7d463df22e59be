"""finetune: the UGR thesis's comparison of fine-tuning methods, on a CPU.

1. Pretrain one base model on the full-ISA CODE-2 data (recipe code2-full: every
   instruction, so the thesis's subset is a narrower domain the base already half knows).
2. Adapt it to the thesis preset (recipe code2-thesis's data and training, the exact-match
   checkpoint choice included) with each method under the same time budget:
   full fine-tuning, LoRA (rank 8 on attention, the thesis's targets), bottleneck adapters
   (Houlsby), prompt tuning (20 virtual tokens).
3. Train the thesis recipe from scratch under the same budget.
Each row: trainable parameters (and their share), the size of what is saved (the adapter
folder's tensors; the whole checkpoint for scratch), training time and steps, and exact
match and execution accuracy on the thesis test split (greedy decoding).

Goals (the project's): LoRA with at most 5 % trainable parameters within 2 points of full
fine-tuning's exact match; every method measured. Beside it, the thesis's rows (T5-Small on a
GPU): Full FT final EM 0.83; LoRA close; prompt tuning failed (train loss 5.41).

`--budget-s` is each run's training budget (the base's too); `--eval-limit N` evaluates the first
N test blocks instead of all 3 600 (on one thread the whole split takes minutes per row, which can
outweigh the training budget); `--out DIR` keeps the runs (base, adapters, models) for further
experiments. --quick shrinks the model and data and evaluates 8 blocks with at most 48 new tokens a
line: it proves the pipeline, not the goals.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

# Learning rates per method: the frozen-base methods move few parameters and take larger steps
# (prompt tuning needs the largest: its vectors start as ordinary token embeddings).
METHODS: dict[str, dict[str, Any]] = {
    "full": {"flags": ["--method", "full"], "lr": 1e-3},
    "lora": {"flags": ["--method", "lora", "--rank", "8", "--alpha", "16"], "lr": 3e-3},
    "adapter": {"flags": ["--method", "adapter", "--reduction", "8", "--placement", "houlsby"], "lr": 3e-3},
    "prompt": {"flags": ["--method", "prompt", "--virtual-tokens", "20"], "lr": 3e-2},
}
THESIS = {"full_ft_exact_match": 0.83, "lora": "close to full fine-tuning (more incomplete outputs)",
          "prompt_tuning": "failed (train loss 5.4074, val 0.8597)", "adapters": "dropped (incompatible with HF)",
          "source": "the UGR thesis, T5-Small on an RTX 2060"}
GOAL = {"lora_max_trainable_share": 0.05, "lora_max_em_gap_to_full": 0.02}
QUICK = {"settings": {"n": 1000, "em_blocks": 2, "final_blocks": 2, "em_every": 0},
         "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 128}}
QUICK_EVAL = {"limit": 8, "max_new_tokens": 48}  # an untrained model writes to the end of its context: cap it


def _recipe_file(name: str, quick: bool, budget_s: float, folder: Path) -> Path:
    """The hub's recipe `name` with the bench's budget (and --quick's sizes), as a recipe file."""
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe(name)
    changes: dict[str, Any] = {"train": {**recipe.train, "time_budget_s": budget_s, "eval_every": 0}}
    if quick:
        changes.update(settings=QUICK["settings"], model={**recipe.model, **QUICK["model"]})
    path = folder / f"{name}.json"
    path.write_text(json.dumps(recipe.replace(**changes).to_dict()))
    return path


def _evaluate(model_dir: Path, quick: bool, eval_limit: int | None) -> dict[str, Any]:
    import tinylm
    from tinylm.evaluation import evaluate, get_task
    from tinylm.generation import GenerationConfig

    lm = tinylm.load(model_dir)
    task = get_task(model_extra=lm.model.config.extra)
    tokens = QUICK_EVAL["max_new_tokens"] if quick else lm.model.config.block_size
    config = GenerationConfig(temperature=0.0, max_new_tokens=tokens)
    limit = QUICK_EVAL["limit"] if quick else eval_limit
    summary = evaluate(lm, task, "test", config, limit=limit, latency_examples=0).summary
    return {"examples": summary["examples"], "exact_match": round(summary["metrics"]["exact_match"], 4),
            "exec_equal": round(summary["scores"]["exec_equal"], 4)}


def _row(out: Path, model_dir: Path, saved: Path, trainable: int, total: int, quick: bool,
         eval_limit: int | None) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    return {"trainable_parameters": trainable, "trainable_share": round(trainable / total, 4),
            "saved_bytes": saved.stat().st_size, "train_s": round(summary["train_s"], 1), "steps": summary["steps"],
            "stop_reason": summary["stop_reason"], **_evaluate(model_dir, quick, eval_limit)}


def run(quick: bool = False, budget_s: float | None = None, eval_limit: int | None = None,
        out: str | None = None) -> dict[str, Any]:
    from tinylm.atomic_files import write_json
    from tinylm.cli.main import main
    from tinylm.errors import TinyLMError
    from tinylm.tasks import get_plugin
    from tinylm.training.recipe import read_recipe_file

    budget = float(budget_s if budget_s is not None else (15.0 if quick else 300.0))
    rows: dict[str, Any] = {}
    if eval_limit is not None and eval_limit < 1:
        raise TinyLMError("--eval-limit must be at least 1")
    with contextlib.ExitStack() as stack:
        if out is None:
            tmp_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tinylm-bench-finetune-")))
        else:
            tmp_path = Path(out)
            if tmp_path.exists() and any(tmp_path.iterdir()):
                raise TinyLMError(f"--out {out} is not empty")
            tmp_path.mkdir(parents=True, exist_ok=True)
        code2 = get_plugin("code2")
        base_run = code2.train(read_recipe_file(_recipe_file("code2-full", quick, budget, tmp_path)),
                               tmp_path / "base", quiet=True)
        base = Path(base_run.model_dir)
        thesis = _recipe_file("code2-thesis", quick, budget, tmp_path)
        scratch = code2.train(read_recipe_file(thesis), tmp_path / "scratch", quiet=True)
        rows["scratch"] = _row(tmp_path / "scratch", Path(scratch.model_dir), Path(scratch.model_dir) / "model.safetensors",
                               scratch.parameters, scratch.parameters, quick, eval_limit)
        for method, spec in METHODS.items():
            run_dir = tmp_path / method
            with contextlib.redirect_stdout(io.StringIO()):  # --json prints one object: keep the run's lines out
                code = main(["finetune", str(base), *spec["flags"], "--recipe", str(thesis), "--out", str(run_dir),
                             "--lr", str(spec["lr"]), "--min-lr", str(spec["lr"] / 10), "--quiet"])
            if code != 0:
                raise TinyLMError(f"bench finetune: the {method} run failed")
            config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
            rows[method] = _row(run_dir, run_dir / "model", run_dir / "adapter" / "adapter_model.safetensors",
                                config["trainable_parameters"], base_run.parameters, quick, eval_limit)
            if out is not None:  # a kept run shows its rows as they come (the whole bench takes long)
                write_json(tmp_path / "rows.json", rows)
        rows["base_without_finetuning"] = {"parameters": base_run.parameters, "train_s": round(base_run.train_s, 1),
                                           **_evaluate(base, quick, eval_limit)}
    lora, full = rows["lora"], rows["full"]
    met = {"lora_max_trainable_share": lora["trainable_share"] <= GOAL["lora_max_trainable_share"],
           "lora_max_em_gap_to_full": full["exact_match"] - lora["exact_match"] <= GOAL["lora_max_em_gap_to_full"]}
    return {"budget_s": budget, "test_blocks": rows["full"]["examples"], "methods": rows, "goals": GOAL, "met": met, "thesis": THESIS}
