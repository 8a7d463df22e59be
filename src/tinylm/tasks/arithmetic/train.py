"""Train the arithmetic rewriter: a small character-level llama-style model, a few minutes on a CPU.

    summary = train(load_recipe("arithmetic"), "runs/arithmetic")   # -> runs/arithmetic/model
    lm = tinylm.load(summary.model_dir)

The run set-up is the shared one (tinylm.training.run); what the task adds: problems
split into train/test (data.py; 9*15 is a test problem), n_train examples drawn from the
training problems (written to data/train.jsonl), a char tokenizer that also covers the
test prompts, and the shared Trainer on `[bos] prompt [sep] chain [eos]` sequences with
the loss on the chain. The checkpoint with the lowest validation loss (validation:
examples of other training problems, not the test problems) is copied to model/;
config.extra["arithmetic"] records the data settings so the protocol can find the test
problems again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_write
from tinylm.training.recipe import Recipe
from tinylm.training.run import DATA_FOLDER, Pairs, RunSummary, ensure_new_run, prepare_run, train_config

if TYPE_CHECKING:
    from tinylm.training.trainer import Callback

MODEL_DIR = "model"


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def train(recipe: Recipe, out_dir: str | Path, *, threads: int = 0, quiet: bool = False,
          callbacks: Sequence[Callback] = ()) -> RunSummary:
    from tinylm.checkpoint import load_model, save_checkpoint
    from tinylm.tasks.arithmetic.data import make_pairs, split_problems
    from tinylm.tokenizers import load_tokenizer

    if recipe.task != "arithmetic":
        raise TinyLMError(f"recipe {recipe.name} is not an arithmetic recipe")
    s = recipe.settings
    out = Path(out_dir)
    ensure_new_run(out, "choose another folder", MODEL_DIR)
    cfg = train_config(recipe, out, **({"num_threads": threads} if threads else {}))

    splits = split_problems(s.max_operand, s.seed)
    pairs = make_pairs(splits["train"], s.n_train + s.n_val, s.seed)
    train_pairs, val_pairs = pairs[: s.n_train], pairs[s.n_train :]
    data = out / DATA_FOLDER
    _write_jsonl(data / "train.jsonl", train_pairs)
    _write_jsonl(data / "val.jsonl", val_pairs)
    _write_jsonl(data / "test.jsonl", make_pairs(splits["test"], len(splits["test"]), s.seed + 1))
    # Every character the task can use, so test prompts never fall back to byte tokens.
    covered = [p.prompt for p in splits["test"]] + [f"{p['input']}\n{p['output']}" for p in val_pairs]
    extra = {"task": "arithmetic", "arithmetic": {"max_operand": s.max_operand, "seed": s.seed}}
    run = prepare_run(recipe, cfg, Pairs(train_pairs, val_pairs, covered), task_extra=extra)
    if not quiet:
        print(f"arithmetic: {len(splits['train'])} training problems, {len(train_pairs)} examples; "
              f"char tokenizer ({run.tokenizer.vocab_size} tokens); {recipe.preset}, {run.model.num_params():,} parameters")
    result = run.trainer(callbacks=callbacks, quiet=quiet).fit()

    # The lowest validation loss, as a plain checkpoint folder (no optimizer state).
    best = out / ("best" if (out / "best").is_dir() else "last")
    save_checkpoint(out / MODEL_DIR, load_model(best), load_tokenizer(best))
    return run.summary(result, out / MODEL_DIR)
