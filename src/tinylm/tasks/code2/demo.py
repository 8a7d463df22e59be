"""The main job, end to end: `tinylm demo`.

    tinylm demo                                  # about 10 minutes of training, then the test split
    tinylm demo --budget-minutes 3 --limit 500   # a shorter tour
    tinylm demo --out runs/demo                  # run again: reuses runs/demo/train/model

1. train the code2-thesis recipe (the UGR thesis's four instructions, broad style: the
   thesis generator's templates and paraphrases, generated in memory: 36 000 examples, seed
   42) within a time budget (default 10 minutes);
2. evaluate the model on the thesis's own test split (3 600 blocks, templates style) with
   greedy decoding and print the Markdown table beside the thesis's figures (the report
   lands in <out>/eval-test/); then on the hand-written set (Spanish typed by hand, never
   trained or chosen on; <out>/eval-handwritten/), and print both side by side;
3. translate a few Spanish descriptions, run each result on the emulator, and print the
   command that translates one's own sentence with this model.

Needs no network: the dataset is generated, the tokenizer and model are trained here. A
folder that already holds a trained model (<out>/train/model) is reused, so running the
demo again only evaluates and translates.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

SENTENCES = (
    "Suma r1 y r2 y guarda el resultado en r3",
    "Calcula r7 menos r9 y guarda en el registro D",
    "Lee DAC1 y almacénalo en el registro 0",
    "ESCRIBE EL CONTENIDO DEL REGISTRO 0 EN MEMORIA\n"
    "sustrae r2 de r2 y pon el resultado en rd\n"
    "OBTÉN EL DATO DE 8 Y ALMACÉNALO EN RF",
    "COPIA LO QUE HAY EN DF216 A RD",
)


def run_demo(out: str | Path = "runs/demo", budget_minutes: float = 10.0, limit: int | None = None,
             threads: int = 0, say: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    import tinylm
    from tinylm.evaluation import evaluate, get_task, markdown, write_report
    from tinylm.generation import GenerationConfig
    from tinylm.tasks.code2.train import MODEL_DIR, train
    from tinylm.tasks.code2.translate import run_translation, translate
    from tinylm.training.recipe import load_recipe

    out = Path(out)
    model_dir = out / "train" / MODEL_DIR
    if threads:
        torch.set_num_threads(threads)
    if model_dir.is_dir():
        say(f"== 1. reusing the model in {model_dir} (delete {out} to train again)")
    else:
        say(f"== 1. training code2-thesis for up to {budget_minutes:g} minutes")
        recipe = load_recipe("code2-thesis").replace(train={"time_budget_s": 60.0 * budget_minutes})
        train(recipe, out / "train", threads=threads, say=say)
    lm = tinylm.load(model_dir)
    task = get_task("code2", model_extra=lm.model.config.extra)
    split_size = len(task.load_split("test", limit))
    say(f"== 2. evaluating on {split_size} test blocks (greedy)")
    greedy = GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size)
    result = evaluate(lm, task, "test", greedy, limit=limit)
    model_info = f"{model_dir} ({lm.model.num_params():,} parameters, {lm.tokenizer.kind} tokenizer)"
    paths = write_report(result, out / "eval-test", extra={"model": model_info})
    say(markdown(result, {"model": model_info}))
    say(f"(report: {paths['markdown']}, {paths['json']}, charts {paths['length_chart'].name}, "
        f"{paths['error_chart'].name})")
    n_hand = len(task.load_split("handwritten", limit))
    say(f"== 2b. evaluating on the {n_hand} hand-written descriptions (greedy)")
    hand = evaluate(lm, task, "handwritten", greedy, limit=limit, latency_examples=0)
    hand.summary["by_category"] = task.breakdown("handwritten", hand.records, limit)
    hand_paths = write_report(hand, out / "eval-handwritten", extra={"model": model_info})
    say(side_by_side({"test split (templates)": result.summary, "hand-written set": hand.summary}))
    say(f"(per category: {hand_paths['markdown']})")
    say("== 3. translations, run on the emulator from registers r<i> = i")
    for text in SENTENCES:
        assembly = translate(lm, text, greedy)
        run = run_translation(assembly, task.preset)
        say("\n".join(f"  {line}" for line in text.split("\n")))
        say("\n".join(f"    -> {line}" for line in assembly.split("\n")))
        say(f"    emulator: {run.message}")
        if run.assembles:
            say("    " + run.state_text.split("\n")[1])
    say("== translate your own sentence with this model:")
    say(f'  tinylm code2 translate {model_dir} "Resta r2 a r5 y guarda el resultado en r6" --run')
    return {**result.summary, "handwritten": hand.summary}


def side_by_side(summaries: dict[str, dict[str, Any]]) -> str:
    """Exact match and the task's scores of several evaluations, one column each."""
    names = list(summaries)
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
             "| examples | " + " | ".join(str(summaries[n]["examples"]) for n in names) + " |",
             "| exact match | " + " | ".join(f"{summaries[n]['metrics']['exact_match']:.4f}" for n in names) + " |"]
    for key in summaries[names[0]]["scores"]:
        lines.append(f"| {key} | " + " | ".join(f"{summaries[n]['scores'][key]:.4f}" for n in names) + " |")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="the main job: train a Spanish->CODE-2 model, evaluate it, translate",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, default=10.0, help="training time budget (default 10)")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder (default runs/demo)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate on the first N test blocks only")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tinylm.errors import TinyLMError

    if args.budget_minutes <= 0:
        raise TinyLMError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.limit is not None and args.limit < 1:
        raise TinyLMError(f"--limit must be at least 1, got {args.limit}")
    run_demo(args.out, args.budget_minutes, args.limit, args.threads)
    return 0
