"""The main job, end to end: `tinylm demo`.

1. train the code2-thesis recipe on the thesis dataset (generated in memory: 36 000
   examples, seed 42) within a time budget (default 10 minutes);
2. evaluate the model on the test split (3 600 blocks) with greedy decoding and print the
   Markdown table beside the thesis's figures (the report lands in <out>/eval-test/);
3. translate a few Spanish descriptions and run each result on the emulator.

A folder that already holds a trained model (<out>/train/model) is reused, so running the
demo again only evaluates and translates.
"""

from __future__ import annotations

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
    from tinylm.tasks.code2.recipes import recipe_for
    from tinylm.tasks.code2.train import MODEL_DIR, train
    from tinylm.tasks.code2.translate import run_translation, translate

    out = Path(out)
    model_dir = out / "train" / MODEL_DIR
    if threads:
        torch.set_num_threads(threads)
    if model_dir.is_dir():
        say(f"== 1. reusing the model in {model_dir} (delete {out} to train again)")
    else:
        say(f"== 1. training code2-thesis for up to {budget_minutes:g} minutes")
        recipe = recipe_for("thesis").replace(time_budget_s=60.0 * budget_minutes)
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
    say("== 3. translations, run on the emulator from registers r<i> = i")
    for text in SENTENCES:
        assembly = translate(lm, text, greedy)
        run = run_translation(assembly, task.preset)
        say("\n".join(f"  {line}" for line in text.split("\n")))
        say("\n".join(f"    -> {line}" for line in assembly.split("\n")))
        say(f"    emulator: {run.message}")
        if run.state_text:
            say("    " + run.state_text.split("\n")[1])
    return result.summary
