"""code2-compress: the UGR thesis's compression table, redone on a tinylm CODE-2 model.

Take a trained CODE-2 thesis model (`--model CKPT`; without one, the code2-thesis recipe is
trained first, as `tinylm bench code2` does) and build every compressed form of it: dynamic
int8, weight-only int8, int4 (group 32), ONNX fp32 and ONNX int8, magnitude pruning at
10/30/50 % (dense storage, as the thesis did) and structured pruning (a smaller model; no
fine-tune after). Each is evaluated like `tinylm eval-task --split test` (greedy,
grammar-constrained, batched): exact match, execution accuracy, file size, mean latency of one
example alone and per example when batched, and the speedup of both against fp32, all in the same run. Beside it, the thesis's own rows
(T5-Small, the same 3 600 test blocks, its Table 4.10/4.11).

Goals: int8 and ONNX int8 within 0.5 points of fp32 exact match (the thesis lost 3-4) and
>= 2x faster than fp32. --quick trains a tiny model for 20 s and evaluates 50 blocks: it
checks the benchmark works, not the goals.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError

LATENCY_EXAMPLES = 20
QUICK_EXAMPLES = 50  # --quick: test blocks evaluated, and 5 timed alone
GOALS = {"exact_match_drop_points": 0.5, "speedup_alone": 2.0}
GOAL_VARIANTS = ("int8", "onnx int8")
THESIS_ROWS = [  # variant, device, exact match, size MB, latency s, speedup vs fp32 on the same device
    {"variant": "fp32", "device": "cpu", "exact_match": 0.82, "size_mb": 230.78, "latency_s": 34.22, "speedup": 1.0},
    {"variant": "dynamic int8 (PyTorch PTQ)", "device": "cpu", "exact_match": 0.28, "size_mb": 120.57, "latency_s": 29.59, "speedup": 1.16},
    {"variant": "onnx int8", "device": "cpu", "exact_match": 0.79, "size_mb": 142.26, "latency_s": 22.89, "speedup": 1.5},
    {"variant": "onnx fp32", "device": "cpu", "exact_match": 0.82, "size_mb": 566.02, "latency_s": 26.60, "speedup": 1.29},
    {"variant": "distilled (same size)", "device": "cuda", "exact_match": 0.79, "size_mb": 230.78, "latency_s": 11.56, "speedup": 0.98},
    {"variant": "pruned 10 %", "device": "cuda", "exact_match": 0.83, "size_mb": 230.78, "latency_s": 11.41, "speedup": 1.0},
    {"variant": "pruned 30 %", "device": "cuda", "exact_match": 0.00, "size_mb": 230.78, "latency_s": 13.59, "speedup": 0.84},
    {"variant": "pruned 50 %", "device": "cuda", "exact_match": 0.00, "size_mb": 230.78, "latency_s": 11.95, "speedup": 0.95},
]
THESIS_SOURCE = "the UGR thesis, Tables 4.10-4.11: T5-Small (60M parameters), 3 600 test examples, default decoding"


def _quantized(method: str, **settings: Any) -> Callable[[Path, Path], Path]:
    def build(ckpt: Path, out: Path) -> Path:
        from tinylm.transforms.quantize import quantize_checkpoint

        quantize_checkpoint(ckpt, out, method, **settings)
        return out
    return build


def _onnx(int8: bool) -> Callable[[Path, Path], Path]:
    def build(ckpt: Path, out: Path) -> Path:
        from tinylm.interop.onnx import export_onnx

        return export_onnx(ckpt, out, int8=int8)
    return build


def _pruned(method: str, **settings: Any) -> Callable[[Path, Path], Path]:
    def build(ckpt: Path, out: Path) -> Path:
        from tinylm.transforms.prune import prune_checkpoint

        prune_checkpoint(ckpt, out, method, **settings)
        return out
    return build


# name -> how to build the variant's folder from the fp32 checkpoint (None: the checkpoint itself)
VARIANTS: dict[str, Callable[[Path, Path], Path] | None] = {
    "fp32": None,
    "dynamic int8": _quantized("dynamic-int8"),
    "int8": _quantized("int8"),
    "int4": _quantized("int4", group_size=32),
    "onnx fp32": _onnx(False),
    "onnx int8": _onnx(True),
    "pruned 10 %": _pruned("magnitude", amount=0.1),
    "pruned 30 %": _pruned("magnitude", amount=0.3),
    "pruned 50 %": _pruned("magnitude", amount=0.5),
    "structured: 1/4 of FFN channels": _pruned("structured", ffn=0.25),
    "structured: 1/4 of heads and FFN channels": _pruned("structured", heads=0.25, ffn=0.25),
}


def _weights_bytes(folder: Path) -> int:
    files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".onnx", ".data")]
    return sum(p.stat().st_size for p in files)


def _load(folder: Path):
    import torch

    import tinylm
    from tinylm.interop.onnx import is_onnx_folder, load_onnx

    # ONNX Runtime gets as many threads as torch (`tinylm bench --threads N`), so both runtimes share the CPU alike.
    return load_onnx(folder, threads=torch.get_num_threads()) if is_onnx_folder(folder) else tinylm.load(folder)


def _row(name: str, folder: Path, limit: int | None, latency_examples: int) -> dict[str, Any]:
    from tinylm.evaluation import evaluate, get_task
    from tinylm.generation import GenerationConfig

    lm = _load(folder)
    task = get_task(model_extra=lm.model.config.extra)
    greedy = GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size)
    s = evaluate(lm, task, "test", greedy, limit=limit, latency_examples=latency_examples).summary
    return {
        "variant": name,
        "examples": s["examples"],
        "exact_match": round(s["metrics"]["exact_match"], 4),
        "exec_equal": round(s["scores"]["exec_equal"], 4),
        "size_mb": round(_weights_bytes(folder) / 1e6, 3),
        "latency_alone_ms": round(1000 * s["speed"]["latency_s"]["mean"], 2),
        "latency_batched_ms": round(1000 * s["speed"]["latency_batched_s"], 3),
    }


def _train(folder: Path, quick: bool) -> Path:
    from tinylm.tasks import get_plugin
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe("code2-thesis")
    if quick:
        recipe = recipe.replace(settings={"n": 2000, "em_blocks": 20, "final_blocks": 20},
                                model={"n_layer": 2, "n_embd": 64, "n_head": 2},
                                train={"eval_every": 0, "time_budget_s": 20.0})
    return Path(get_plugin("code2").train(recipe, folder / "train", quiet=True).model_dir)


def run(quick: bool = False, model: str | None = None) -> dict[str, Any]:
    from tinylm.checkpoint import load_model

    limit = QUICK_EXAMPLES if quick else None
    latency_examples = min(5, QUICK_EXAMPLES) if quick else LATENCY_EXAMPLES
    with tempfile.TemporaryDirectory(prefix="tinylm-bench-code2-compress-") as tmp:
        root = Path(tmp)
        ckpt = Path(model) if model is not None else _train(root, quick)
        fp32_model = load_model(ckpt)
        task = fp32_model.config.extra.get("task")
        if task != "code2":
            raise TinyLMError(f"{ckpt} is not a CODE-2 model (its task is {task!r})")
        rows = []
        for name, build in VARIANTS.items():
            folder = ckpt if build is None else build(ckpt, root / name.replace(" ", "-"))
            rows.append(_row(name, folder, limit, latency_examples))
    fp32 = rows[0]
    for row in rows:
        row["exact_match_drop_points"] = round(100 * (fp32["exact_match"] - row["exact_match"]), 2)
        row["speedup_alone"] = round(fp32["latency_alone_ms"] / row["latency_alone_ms"], 2)
        row["speedup_batched"] = round(fp32["latency_batched_ms"] / row["latency_batched_ms"], 2)
        row["smaller"] = round(fp32["size_mb"] / row["size_mb"], 2)
    met = {name: {"exact_match": r["exact_match_drop_points"] <= GOALS["exact_match_drop_points"],
                  "speed": r["speedup_alone"] >= GOALS["speedup_alone"]}
           for r in rows if (name := r["variant"]) in GOAL_VARIANTS}
    return {
        "model": {"checkpoint": str(model) if model else "code2-thesis recipe, trained in this run",
                  "parameters": fp32_model.num_params(), "data_style": fp32_model.config.extra.get("code2", {}).get("data_style")},
        "split": "test", "rows": rows, "goals": GOALS, "met": met,
        "thesis": {"source": THESIS_SOURCE, "rows": THESIS_ROWS},
    }
