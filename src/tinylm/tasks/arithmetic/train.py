"""Train the arithmetic rewriter: a small character-level llama-style model, a few minutes on a CPU.

    summary = train("runs/arithmetic")        # -> runs/arithmetic/model (a checkpoint folder)
    lm = tinylm.load(summary["model_dir"])

The run: problems split into train/test (data.py; 9*15 is a test problem), n_train
examples drawn from the training problems (data/train.jsonl), a char tokenizer, the
recipe's model, and the shared Trainer on `[bos] prompt [sep] chain [eos]` sequences with
the loss on the chain (PairedDataset). The checkpoint with the lowest validation loss
(validation: examples of other training problems, not the test problems) is copied to
model/; config.extra["arithmetic"] records the data settings so the protocol can find the
test problems again.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.io import atomic_write, write_json

MODEL_DIR = "model"


@dataclass
class ArithmeticRecipe:
    preset: str = "llama-style-nano"
    # Context 256: a prompt of about 16 tokens plus the protocol's longest answer (200 tokens).
    model: dict[str, Any] = field(default_factory=lambda: {"n_kv_head": None, "block_size": 256})
    train: dict[str, Any] = field(default_factory=lambda: dict(
        max_steps=1500, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=100, weight_decay=0.0, grad_clip=1.0,
        eval_every=200, eval_batches=10, log_every=50, save_every=0, tensorboard=False,
    ))
    n_train: int = 20000
    n_val: int = 640
    max_operand: int = 20
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def train(out_dir: str | Path, recipe: ArithmeticRecipe | None = None, *, threads: int = 0,
          time_budget_s: float = 0.0, quiet: bool = False) -> dict[str, Any]:
    import torch

    from tinylm.checkpoint import load_model, save_checkpoint
    from tinylm.data import PairedDataset
    from tinylm.model import GPT
    from tinylm.presets import model_config
    from tinylm.tasks.arithmetic.data import make_pairs, split_problems
    from tinylm.tokenizers import load_tokenizer, train_tokenizer
    from tinylm.training import TrainConfig, Trainer

    recipe = recipe or ArithmeticRecipe()
    out = Path(out_dir)
    if (out / MODEL_DIR).exists() or (out / "last").exists():
        raise TinyLMError(f"{out} already holds a run; choose another folder")
    started = time.perf_counter()
    settings = {**recipe.train, "num_threads": threads} if threads else dict(recipe.train)
    if time_budget_s:
        settings["time_budget_s"] = time_budget_s
    cfg = TrainConfig(out_dir=str(out), seed=recipe.seed, **settings)

    splits = split_problems(recipe.max_operand, recipe.seed)
    pairs = make_pairs(splits["train"], recipe.n_train + recipe.n_val, recipe.seed)
    train_pairs, val_pairs = pairs[: recipe.n_train], pairs[recipe.n_train :]
    _write_jsonl(out / "data" / "train.jsonl", train_pairs)
    _write_jsonl(out / "data" / "val.jsonl", val_pairs)
    _write_jsonl(out / "data" / "test.jsonl", make_pairs(splits["test"], len(splits["test"]), recipe.seed + 1))
    # Every character the task can use, so test prompts never fall back to byte tokens.
    tokenizer = train_tokenizer("char", [p.prompt for p in splits["test"]] + [f"{p['input']}\n{p['output']}" for p in pairs])
    extra = {"task": "arithmetic", "arithmetic": {"max_operand": recipe.max_operand, "seed": recipe.seed}}
    model_cfg = model_config(recipe.preset, **{**recipe.model, "vocab_size": tokenizer.vocab_size, "extra": extra})
    train_data = PairedDataset(train_pairs, tokenizer, model_cfg.block_size)
    val_data = PairedDataset(val_pairs, tokenizer, model_cfg.block_size)
    torch.manual_seed(recipe.seed)
    model = GPT(model_cfg)
    if not quiet:
        print(f"arithmetic: {len(splits['train'])} training problems, {len(train_pairs)} examples; "
              f"char tokenizer ({tokenizer.vocab_size} tokens); {recipe.preset}, {model.num_params():,} parameters")
    result = Trainer(model, train_data, val_data, cfg, tokenizer, quiet=quiet).fit()

    # The lowest validation loss, as a plain checkpoint folder (no optimizer state).
    best = out / ("best" if (out / "best").is_dir() else "last")
    save_checkpoint(out / MODEL_DIR, load_model(best), load_tokenizer(best))
    summary = {
        "model_dir": str(out / MODEL_DIR), "recipe": recipe.to_dict(), "stop_reason": result.stop_reason,
        "steps": result.steps, "tokens": result.tokens, "train_s": round(result.elapsed_s, 1),
        "total_s": round(time.perf_counter() - started, 1), "best_val_loss": result.best_val_loss,
        "best_step": result.best_step, "parameters": model.num_params(), "vocab_size": tokenizer.vocab_size,
    }
    write_json(out / "summary.json", summary)
    return summary
