"""code2: train the CODE-2 recipes within their time budgets on this CPU, then evaluate them.

For each preset (thesis, then full): train the hub's recipe (code2-thesis, code2-full)
from scratch in a temporary folder, then evaluate the chosen checkpoint on the whole test
split (3 600 blocks) with greedy decoding; for thesis, also on the first 500 test blocks
with the thesis's own decoding (sampling, temperature 0.2, top-p 0.6, seed 42).

Goals, anchor the UGR thesis (T5-Small fine-tuned 25 min on a GPU, 0.83):
  thesis preset: exact match >= 0.99 and execution accuracy >= 0.99, training <= 15 min on 2 cores;
  full preset:   execution accuracy >= 0.97.
Training wall time is measured, so it depends on how busy the machine is; steps and
tokens are reported beside it. --quick trains a tiny model on 2 000 examples for 20 s and
evaluates 50 blocks: it checks that the pipeline works, not the goals.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

GOALS = {
    "thesis": {"exact_match": 0.99, "exec_equal": 0.99, "train_minutes": 15.0},
    "full": {"exec_equal": 0.97},
}
ANCHOR = {"exact_match": 0.83, "bleu": 0.97, "rouge_l": 0.9922, "success_rate_3600": 0.8333,
          "source": "the UGR thesis: T5-Small (60M parameters), full fine-tuning, 25 min on an RTX 2060"}
THESIS_DECODING_EXAMPLES = 500


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    m, s, sp = summary["metrics"], summary["scores"], summary["speed"]
    return {
        "examples": summary["examples"],
        "exact_match": round(m["exact_match"], 4),
        "exact_match_normalized": round(m["exact_match_normalized"], 4),
        "bleu": round(m["bleu"], 4),
        "rouge_l": round(m["rouge_l"], 4),
        "syntax_valid": round(s["syntax_valid"], 4),
        "exec_equal": round(s["exec_equal"], 4),
        "errors": summary["errors"]["counts"],
        "tokens_per_s": round(sp["tokens_per_s"], 1),
        "latency_ms": None if sp["latency_s"]["mean"] is None else round(1000 * sp["latency_s"]["mean"], 1),
        "eval_s": round(sp["generation_s"], 1),
    }


def _one(preset: str, quick: bool, folder: Path) -> dict[str, Any]:
    import tinylm
    from tinylm.evaluation import evaluate, get_task
    from tinylm.generation import GenerationConfig
    from tinylm.tasks import get_plugin
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe(f"code2-{preset}")
    limit = None
    if quick:
        recipe = recipe.replace(settings={"n": 2000, "em_blocks": 20, "final_blocks": 20},
                                model={"n_layer": 2, "n_embd": 64, "n_head": 2},
                                train={"eval_every": 0, "time_budget_s": 20.0})
        limit = 50
    summary = get_plugin("code2").train(recipe, folder / preset, quiet=True)
    lm = tinylm.load(summary.model_dir)
    task = get_task(model_extra=lm.model.config.extra)
    greedy = GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size)
    out: dict[str, Any] = {
        "recipe": recipe.name,
        "train_wall_s": round(summary.train_s, 1),
        "total_wall_s": round(summary.total_s, 1),
        "steps": summary.steps,
        "train_tokens": summary.tokens,
        "stop_reason": summary.stop_reason,
        "parameters": summary.parameters,
        "size_mb": round((Path(summary.model_dir) / "model.safetensors").stat().st_size / 1e6, 2),
        "tokenizer": f"{summary.tokenizer} ({summary.vocab_size} tokens)",
        "greedy": _figures(evaluate(lm, task, "test", greedy, limit=limit, latency_examples=5 if quick else 20).summary),
    }
    if preset == "thesis":
        sampled = GenerationConfig(temperature=0.2, top_p=0.6, seed=42, max_new_tokens=lm.model.config.block_size)
        n = limit or THESIS_DECODING_EXAMPLES
        out["thesis_decoding"] = _figures(evaluate(lm, task, "test", sampled, limit=n, latency_examples=0).summary)
    g = out["greedy"]
    goals = GOALS[preset]
    out["goals"] = goals
    out["met"] = {key: (out["train_wall_s"] / 60 <= want if key == "train_minutes" else g[key] >= want)
                  for key, want in goals.items()}
    return out


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tinylm-bench-code2-") as tmp:
        results = {preset: _one(preset, quick, Path(tmp)) for preset in ("thesis", "full")}
    return {**results, "anchor": ANCHOR, "all_goals_met": all(all(r["met"].values()) for r in results.values())}
