"""code2-compress: the UGR thesis's compression table, redone on a tinylm CODE-2 model.

Take a trained CODE-2 thesis model (`--model CKPT`; without one, the code2-thesis recipe is
trained first, as `tinylm bench code2` does) and build every compressed form of it: dynamic
int8, weight-only int8, int4 (group 32), ONNX fp32 and ONNX int8, magnitude pruning at
10/30/50 % (dense storage, as the thesis did), structured pruning (a smaller model; no
fine-tune after) and a distilled student with at most half the parameters (`student_config`:
the teacher's layers halved, then its width narrowed until the student has at most half
the teacher's parameters), trained from the model for --budget-s seconds (default 600) with
`tinylm distill`'s loss, beside the same student trained on the labels only for the same
time (alpha = 1: what distillation adds). Each is evaluated like `tinylm eval-task --split test` (greedy,
grammar-constrained, batched): exact match, execution accuracy, file size, mean latency of one
example alone and per example when batched, and the speedup of both against fp32, all in the same run. Beside it, the thesis's own rows
(T5-Small, the same 3 600 test blocks, its Table 4.10/4.11).

Goals: int8 and ONNX int8 within 0.5 points of fp32 exact match (the thesis lost 3-4) and
>= 2x faster than fp32; the distilled student at half the parameters or fewer within 2 points.
--variants NAME,... builds only those (fp32, the anchor, always runs). --quick trains a tiny
model for 20 s, distils for 5 s and evaluates 50 blocks: it checks the benchmark works, not
the goals.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError

LATENCY_EXAMPLES = 20
QUICK_EXAMPLES = 50  # --quick: test blocks evaluated, and 5 timed alone
GOALS = {"exact_match_drop_points": 0.5, "speedup_alone": 2.0}
GOAL_VARIANTS = ("int8", "onnx int8")
STUDENT_GOALS = {"exact_match_drop_points": 2.0, "parameters_ratio": 0.5}
STUDENT_GOAL_VARIANT = "distilled"
DISTILL_BUDGET_S = 600.0  # the code2-thesis recipe's own time budget
QUICK_DISTILL_BUDGET_S = 5.0
STUDENT_RULE = "the teacher's layers halved, then its width narrowed until at most half its parameters"
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


def student_config(teacher: ModelConfig) -> ModelConfig:
    """The distilled student's ModelConfig: the teacher's, with half its layers (at least one),
    then its width narrowed in steps of 2 * n_head (whole, even head dimensions, as RoPE needs)
    until it has at most half the teacher's parameters. Fewer layers first: on a CPU a small
    model's decoding time grows with its depth more than with its width."""
    from tinylm.model import GPT

    target = GPT(teacher).num_params() / 2
    step = 2 * teacher.n_head
    config = dataclasses.replace(teacher, n_layer=max(1, teacher.n_layer // 2))
    while GPT(config).num_params() > target:
        if config.n_embd - step < step:
            raise TinyLMError(f"no student of at most half the teacher's {2 * target:,.0f} parameters keeps "
                              f"{teacher.n_head} heads; the teacher is too small to distil")
        config = dataclasses.replace(config, n_embd=config.n_embd - step)
    return config


def _student(alpha: float) -> Callable[..., Path]:
    def build(ckpt: Path, out: Path, budget_s: float) -> Path:
        from tinylm.checkpoint import load_model
        from tinylm.training.distill_run import distill_checkpoint

        teacher = load_model(ckpt).config
        preset = teacher.extra.get("preset")
        if not isinstance(preset, str):
            raise TinyLMError(f"{ckpt} records no model preset; its student cannot be built")
        config = student_config(teacher)
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                  if f.name not in ("vocab_size", "extra")}
        # Trained on the threads the benchmark runs on (`tinylm bench --threads N`).
        summary = distill_checkpoint(ckpt, preset, out, overrides=fields, alpha=alpha, budget_s=budget_s, quiet=True)
        return Path(summary.model_dir)
    return build


# name -> how to build the variant's folder from the fp32 checkpoint (None: the checkpoint itself);
# a student's builder also takes its training budget
VARIANTS: dict[str, Callable[..., Path] | None] = {
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
    "distilled": _student(alpha=0.5),
    "student on labels only": _student(alpha=1.0),
}
STUDENTS = ("distilled", "student on labels only")


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


def _selected(variants: list[str] | None) -> list[str]:
    """The variants to build, in the table's order; fp32 (every speedup's anchor) always. Names
    may come one per argument or comma-separated: --variants fp32,distilled."""
    if variants is None:
        return list(VARIANTS)
    names = {n.strip() for v in variants for n in v.split(",") if n.strip()}
    unknown = sorted(names - set(VARIANTS))
    if unknown:
        raise TinyLMError(f"unknown code2-compress variant {unknown[0]!r}; choose from: {', '.join(VARIANTS)}")
    return [n for n in VARIANTS if n in names or n == "fp32"]


def _student_row(row: dict[str, Any], folder: Path, teacher_parameters: int) -> dict[str, Any]:
    import json

    figures = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    # The student's run: its validation loss (cross-entropy on the labels) tells a short budget from a small model.
    val_loss = json.loads((folder.parent / "summary.json").read_text(encoding="utf-8"))["best_val_loss"]
    row.update(parameters=figures["student_parameters"], teacher_parameters=teacher_parameters,
               best_val_loss=None if val_loss is None else round(val_loss, 4),
               parameters_ratio=round(figures["student_parameters"] / teacher_parameters, 3),
               train_steps=figures["step"], alpha=figures["alpha"], temperature=figures["temperature"],
               held_out_kl_before=round(figures["held_out_kl_before"], 4),
               held_out_kl_after=round(figures["held_out_kl_after"], 4))
    return row


def run(quick: bool = False, model: str | None = None, variants: list[str] | None = None,
        budget_s: float | None = None) -> dict[str, Any]:
    """The table; `variants` picks some rows (fp32 always), `budget_s` is the students' training time."""
    from tinylm.checkpoint import load_model

    names = _selected(variants)
    if budget_s is not None and budget_s <= 0:
        raise TinyLMError(f"the students' time budget must be positive, got {budget_s}")
    distill_budget_s = budget_s if budget_s is not None else QUICK_DISTILL_BUDGET_S if quick else DISTILL_BUDGET_S
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
        for name in names:
            build = VARIANTS[name]
            if name in STUDENTS:
                build = functools.partial(build, budget_s=distill_budget_s)
            folder = ckpt if build is None else build(ckpt, root / name.replace(" ", "-"))
            row = _row(name, folder, limit, latency_examples)
            rows.append(_student_row(row, folder, fp32_model.num_params()) if name in STUDENTS else row)
    fp32 = rows[0]
    for row in rows:
        row["exact_match_drop_points"] = round(100 * (fp32["exact_match"] - row["exact_match"]), 2)
        row["speedup_alone"] = round(fp32["latency_alone_ms"] / row["latency_alone_ms"], 2)
        row["speedup_batched"] = round(fp32["latency_batched_ms"] / row["latency_batched_ms"], 2)
        row["smaller"] = round(fp32["size_mb"] / row["size_mb"], 2)
    met = {name: {"exact_match": r["exact_match_drop_points"] <= GOALS["exact_match_drop_points"],
                  "speed": r["speedup_alone"] >= GOALS["speedup_alone"]}
           for r in rows if (name := r["variant"]) in GOAL_VARIANTS}
    met.update({name: {"exact_match": r["exact_match_drop_points"] <= STUDENT_GOALS["exact_match_drop_points"],
                       "parameters": r["parameters_ratio"] <= STUDENT_GOALS["parameters_ratio"]}
                for r in rows if (name := r["variant"]) == STUDENT_GOAL_VARIANT})
    students = None
    if any(name in STUDENTS for name in names):
        config = student_config(fp32_model.config)
        students = {"budget_s": distill_budget_s, "n_layer": config.n_layer, "n_embd": config.n_embd,
                    "n_head": config.n_head, "rule": STUDENT_RULE}
    return {
        "model": {"checkpoint": str(model) if model else "code2-thesis recipe, trained in this run",
                  "parameters": fp32_model.num_params(), "data_style": fp32_model.config.extra.get("code2", {}).get("data_style")},
        "split": "test", "rows": rows, "goals": {**GOALS, "distilled": STUDENT_GOALS}, "met": met,
        "students": students,
        "thesis": {"source": THESIS_SOURCE, "rows": THESIS_ROWS},
    }
