"""A distillation run from a teacher checkpoint: `tinylm distill` and the compression table.

    summary = distill_checkpoint("runs/code2-thesis/model", "llama-style-nano", "runs/code2-student",
                                 overrides={"n_layer": 2}, task="code2", budget_s=600)
    lm = tinylm.load(summary.model_dir)          # a normal checkpoint: eval-task, code2 translate...

The run is an ordinary run of the shared set-up (training/run.py) with the Trainer's
objective set to the distillation loss (training/distill.py). What comes from the teacher:

- the tokenizer (the student reads the same tokens; a CONFIG.json with another vocabulary
  size is refused) and, unless the student's config sets it, the context length;
- config.extra: the task and prompt format (and, for CODE-2, the dataset record), so every
  tool prompts the student exactly as it prompts the teacher;
- the data. --task code2: the teacher's dataset, regenerated from what its checkpoint records
  (config.extra["code2"]: preset, style, size, seed, unit, hex hints), or `data` (a folder
  with train/valid.jsonl), cut into the same pairs and drawn in the same length buckets as
  `tinylm code2 train` (tasks/code2/distill.py: a task's own module, looked up by its name,
  since this layer names no task). --task text: `data` (text files, tokenized with the teacher's
  tokenizer) or, without it, the teacher's run's own tokenized corpus (RUN/data beside the
  checkpoint folder RUN/best or RUN/last);
- the training settings of the teacher's recipe (RUN/recipe.json, or the named recipe its
  checkpoint records), then the caller's (budget, steps, batch size, lr, seed).

The student is given as a preset with overrides, or a CONFIG.json: {"preset": NAME, field:
value, ...}, or a checkpoint's config.json. It must have fewer parameters than the teacher
(`force=True` allows another size, with a warning). Everything a user can get wrong is
checked before the output folder is made; if the run fails later, a folder it created is
removed again.

The run folder: model/ (the student, final weights), last/ and best/ (the Trainer's),
data/ (text), recipe.json, train_config.json, metrics.jsonl, loss.png, summary.json (with
the teacher's and student's parameters and the held-out KL(teacher || student) per token
before and after).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.training.run import RECIPE_FILE, Corpus, Pairs, RunSummary, TextFiles, prepare_run, train_config

MODEL_DIR = "model"
HELD_OUT_BATCHES = 4  # batches of the validation data the KL before/after is measured on


@dataclasses.dataclass
class StudentSpec:
    """The student's model: a preset and ModelConfig overrides (vocab_size comes from the teacher)."""

    preset: str
    overrides: dict[str, Any]


def read_student_spec(spec: str, overrides: dict[str, Any], teacher_config) -> StudentSpec:
    """A preset name or CONFIG.json, with `overrides` on top; the context length defaults to the teacher's."""
    overrides = dict(overrides)
    if "vocab_size" in overrides:
        raise TinyLMError("vocab_size comes from the teacher's tokenizer; the student cannot set it")
    if spec.endswith(".json"):
        path = Path(spec)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TinyLMError(f"student config not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TinyLMError(f"student config {path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise TinyLMError(f"student config {path}: expected a JSON object of model config fields")
        d.pop("transforms", None)  # a checkpoint's config.json: its transforms are not the student's
        extra = d.pop("extra", None) or {}
        preset = d.pop("preset", None) or extra.get("preset")
        if not isinstance(preset, str):
            raise TinyLMError(f'student config {path} names no preset; add "preset": NAME (e.g. "llama-style-nano")')
        vocab = d.pop("vocab_size", None)
        if vocab is not None and vocab != teacher_config.vocab_size:
            raise TinyLMError(f"the student's vocabulary ({vocab} tokens, {path}) differs from the teacher's "
                              f"({teacher_config.vocab_size}); a student uses its teacher's tokenizer")
        overrides = {**d, **overrides}
    else:
        preset = spec
    overrides.setdefault("block_size", teacher_config.block_size)
    return StudentSpec(preset, overrides)


def count_parameters(config) -> int:
    """Parameters of a model of `config`. Built on the CPU: a meta-device build would import
    torch's compiler stack (seconds), and the run seeds the RNG again before its own build."""
    from tinylm.model import GPT

    return GPT(config).num_params()


def teacher_recipe(teacher_dir: Path, extra: dict[str, Any]):
    """The teacher's recipe: its run's recipe.json (RUN/recipe.json beside RUN/model), else the
    named recipe its checkpoint records, else None."""
    from tinylm.training.recipe import load_recipe, named_recipes, read_recipe_file

    run_recipe = teacher_dir.parent / RECIPE_FILE
    if run_recipe.is_file():
        return read_recipe_file(run_recipe)
    name = (extra.get(extra.get("task") or "") or {}).get("recipe")  # e.g. config.extra["code2"]["recipe"]
    return load_recipe(name) if isinstance(name, str) and name in named_recipes() else None


def task_distillation(task: str) -> Any:
    """A task's distillation support, tasks/<task>/distill.py (settings, pairs, batches,
    TRAIN_DEFAULTS), looked up by name: this layer names no task."""
    import importlib

    try:
        return importlib.import_module(f"tinylm.tasks.{task}.distill")
    except ModuleNotFoundError:
        raise TinyLMError(f"task {task!r} has no distillation support; distill a text model or a code2 model") from None


def _text_data(teacher_dir: Path, data: list[str] | None, out: Path) -> TextFiles | Corpus:
    if data:
        missing = [p for p in data if not Path(p).is_file()]
        if missing:
            raise TinyLMError(f"--data: no such file: {missing[0]}")
        return TextFiles([Path(p) for p in data], out / "data")
    corpus = teacher_dir.parent / "data"
    if (corpus / "meta.json").is_file() and (corpus / "train.bin").is_file():
        return Corpus(corpus)
    raise TinyLMError(f"--task text needs --data FILE...: no tokenized corpus of the teacher's run at {corpus}")


def _held_out(val_data, batch_size: int) -> list:
    import itertools

    if hasattr(val_data, "iter_eval_batches"):
        return list(val_data.iter_eval_batches(batch_size, max_batches=HELD_OUT_BATCHES))
    return list(itertools.islice(val_data.iter_batches(batch_size, shuffle=False), HELD_OUT_BATCHES))


def distill_checkpoint(
    teacher: str | Path,
    student: str,
    out: str | Path,
    *,
    task: str | None = None,
    overrides: dict[str, Any] | None = None,
    data: list[str] | None = None,
    alpha: float = 0.5,
    temperature: float = 2.0,
    budget_s: float | None = None,
    max_steps: int | None = None,
    train: dict[str, Any] | None = None,
    force: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] = print,
) -> RunSummary:
    """Distill the checkpoint `teacher` into a new `student` (preset or CONFIG.json) in `out`;
    `task` defaults to the teacher's ("code2" for a CODE-2 model, else "text"); `train` holds
    more TrainConfig fields (batch_size, lr, seed, num_threads). See the module docstring."""
    from tinylm.checkpoint import load_model, save_checkpoint
    from tinylm.presets import model_config
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer
    from tinylm.training.distill import DistillationObjective, check_settings, mean_kl
    from tinylm.training.recipe import TOKENIZERS, Recipe
    from tinylm.training.schedule import FitScheduleToBudget

    start = time.perf_counter()
    teacher_dir, out = Path(teacher), Path(out)
    check_settings(alpha, temperature)
    if budget_s is not None and max_steps is not None:
        raise TinyLMError("give a time budget or a number of steps, not both")
    if budget_s is not None and budget_s <= 0:
        raise TinyLMError(f"the time budget must be positive, got {budget_s}")
    if max_steps is not None and max_steps < 1:
        raise TinyLMError(f"the number of steps must be at least 1, got {max_steps}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TinyLMError(f"{out} already exists and is not empty; choose another --out")
    if not teacher_dir.is_dir():
        raise TinyLMError(f"no teacher checkpoint at {teacher_dir}")
    if not (teacher_dir / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"teacher checkpoint {teacher_dir} has no {TOKENIZER_FILENAME}")
    teacher_model = load_model(teacher_dir)
    tokenizer = load_tokenizer(teacher_dir / TOKENIZER_FILENAME)
    extra = dict(teacher_model.config.extra or {})
    teacher_task = extra.get("task") or "text"
    task = task or teacher_task
    if task != "text" and task != teacher_task:
        raise TinyLMError(f"{teacher_dir} is not a {task} model (its task: {teacher_task}); distill it with "
                          f"--task {teacher_task}")
    if task == "text" and (teacher_task != "text" or extra.get("prompt_format", "plain") != "plain"):
        raise TinyLMError(f"{teacher_dir} answers prompts ({extra.get('task') or 'paired'} model), not plain text; "
                          f"--task text needs a language model" + (f"; use --task {teacher_task}"
                                                                    if teacher_task != "text" else ""))

    spec = read_student_spec(student, overrides or {}, teacher_model.config)
    student_config = model_config(spec.preset, **{**spec.overrides, "vocab_size": tokenizer.vocab_size})
    n_teacher, n_student = teacher_model.num_params(), count_parameters(student_config)
    if n_student >= n_teacher:
        message = (f"the student ({n_student:,} parameters) is not smaller than the teacher ({n_teacher:,}); "
                   "choose a smaller student (e.g. --set n_layer=2)")
        if not force:
            raise TinyLMError(message + " or give --force")
        print(f"tinylm: warning: {message}", file=sys.stderr)

    recipe = teacher_recipe(teacher_dir, extra)
    given: dict[str, Any] = dict(train or {})
    if "lr" in given and "min_lr" not in given:
        given["min_lr"] = given["lr"] / 10  # the recipe's floor could lie above a lower lr
    if budget_s is not None:
        given["time_budget_s"] = float(budget_s)
    if max_steps is not None:
        given.update(max_steps=max_steps, time_budget_s=0.0)
    plugin = task_distillation(task) if task != "text" else None
    defaults = dict(plugin.TRAIN_DEFAULTS) if plugin is not None else {"tensorboard": False}
    settings = plugin.settings(extra, recipe) if plugin is not None else None
    student_recipe = Recipe(
        name=f"distill-{recipe.name if recipe is not None else teacher_dir.name}", preset=spec.preset,
        model=spec.overrides,
        # The recipe records the tokenizer's kind; one it cannot name (sentencepiece) is still the teacher's.
        tokenizer=tokenizer.kind if tokenizer.kind in TOKENIZERS else "bpe",
        train=recipe.train if recipe is not None else {}, task=None if plugin is None else task,
        settings=settings, description=f"distilled from {teacher_dir} (alpha {alpha}, temperature {temperature})",
    )
    cfg = train_config(student_recipe, out, defaults=defaults, **given)
    task_extra: dict[str, Any] = {"distilled_from": {"teacher": str(teacher_dir), "teacher_parameters": n_teacher,
                                                     "alpha": alpha, "temperature": temperature}}
    if plugin is not None:
        # The Trainer's val loss reads only its first eval_batches batches.
        train_pairs, val_pairs = plugin.pairs(settings, data, cfg.batch_size * cfg.eval_batches)
        run_data: Pairs | TextFiles | Corpus = Pairs(train_pairs, val_pairs)
        task_extra.update(task=task, **{task: extra[task]})
    else:
        run_data = _text_data(teacher_dir, data, out)

    created = not out.exists()
    try:
        run = prepare_run(student_recipe, cfg, run_data, tokenizer=tokenizer, task_extra=task_extra, started=start)
        if plugin is not None:
            batches = plugin.batches(run.train_data, train_pairs, cfg.batch_size, settings)
        else:
            batches = run.train_data
        held_out = _held_out(run.val_data if run.val_data is not None else run.train_data, cfg.batch_size)
        objective = DistillationObjective(teacher_model, alpha, temperature)
        kl_before = mean_kl(teacher_model, run.model, held_out)
        if not quiet:
            say(f"distill {task}: teacher {teacher_dir} {n_teacher:,} parameters -> student {spec.preset} "
                f"{n_student:,} parameters ({n_student / n_teacher:.2f}x); alpha {alpha}, temperature {temperature}; "
                + (f"budget {cfg.time_budget_s:.0f}s" if cfg.time_budget_s else f"{cfg.max_steps} steps"))
        callbacks = [FitScheduleToBudget(cfg.time_budget_s, 0.03 * cfg.time_budget_s, cfg.max_steps)] \
            if cfg.time_budget_s else []
        result = run.trainer(batches=batches, callbacks=callbacks, quiet=quiet, objective=objective).fit()
        kl_after = mean_kl(teacher_model, run.model, held_out)
        figures = {"teacher": str(teacher_dir), "teacher_parameters": n_teacher, "student_parameters": n_student,
                   "alpha": alpha, "temperature": temperature, "held_out_kl_before": kl_before,
                   "held_out_kl_after": kl_after}
        save_checkpoint(out / MODEL_DIR, run.model, tokenizer,
                        extra=lambda folder: write_json(folder / "metrics.json", {"step": result.steps, **figures}))
        summary = run.summary(result, out / MODEL_DIR, best_step=result.steps, **figures)
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if not quiet:
        say(f"stopped ({result.stop_reason}) at step {result.steps} after {result.elapsed_s:.0f}s; held-out "
            f"KL(teacher || student) per token {kl_before:.4f} -> {kl_after:.4f}; student {out / MODEL_DIR}")
    return summary
