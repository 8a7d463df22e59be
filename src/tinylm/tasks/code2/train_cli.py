"""`tinylm code2 train` and `tinylm code2 translate`: the model side of the code2 command.

    tinylm code2 train --preset thesis                       # recipe code2-thesis -> runs/code2-thesis
    tinylm code2 train --preset full --budget-minutes 15 --out runs/full
    tinylm code2 translate "Suma r1 y r2 y guarda el resultado en r3" --model runs/code2-thesis/model --run
    echo "Lee DAC1 y almacénalo en el registro 0" | tinylm code2 translate - --run

translate prints the assembly (one line per description line); --run assembles it, runs it
on the emulator from registers r<i> = i and zeroed memory, and prints the final state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinylm.errors import TinyLMError

DEFAULT_MODEL = "runs/code2-thesis/model"


def register_train_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a Spanish -> CODE-2 model from scratch (a recipe of the config hub)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("thesis", "full"), default="thesis", help="dataset preset (default thesis)")
    p.add_argument("--recipe", help="recipe name (default code2-<preset>); see tinylm.presets.RECIPES")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/code2-<preset>)")
    p.add_argument("--data", metavar="DIR", help="read train/valid.jsonl from DIR instead of generating the dataset")
    p.add_argument("--budget-minutes", type=float, metavar="M", help="training time budget (default: the recipe's)")
    p.add_argument("--max-steps", type=int, metavar="N", help="train N steps, no time budget")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("translate", help="translate Spanish descriptions into CODE-2 with a trained model")
    p.add_argument("text", nargs="+", help="description lines (each argument is a line); - reads stdin")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="DIR", help=f"checkpoint (default {DEFAULT_MODEL})")
    p.add_argument("--run", action="store_true", help="run the result on the emulator and print the final state")
    p.add_argument("--num-beams", type=int, default=1, help="beam search with N beams (default: greedy)")
    p.set_defaults(func=_cmd_translate)


def resolve_recipe(preset: str, name: str | None, budget_minutes: float | None, max_steps: int | None):
    from tinylm.tasks.code2.recipes import get_recipe

    recipe = get_recipe(name or f"code2-{preset}")
    if recipe.data_preset != preset:
        raise TinyLMError(f"recipe {recipe.name} trains on the {recipe.data_preset} preset, not {preset}")
    if budget_minutes is not None and max_steps is not None:
        raise TinyLMError("give --budget-minutes or --max-steps, not both")
    if budget_minutes is not None:
        if budget_minutes <= 0:
            raise TinyLMError(f"--budget-minutes must be positive, got {budget_minutes}")
        recipe = recipe.replace(time_budget_s=60.0 * budget_minutes)
    if max_steps is not None:
        if max_steps < 1:
            raise TinyLMError(f"--max-steps must be at least 1, got {max_steps}")
        recipe = recipe.replace(time_budget_s=0.0, train={**recipe.train, "max_steps": max_steps})
    return recipe


def _cmd_train(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.train import train

    recipe = resolve_recipe(args.preset, args.recipe, args.budget_minutes, args.max_steps)
    out = args.out or f"runs/code2-{args.preset}"
    summary = train(recipe, out, data=args.data, threads=args.threads, quiet=args.quiet)
    print(f"model: {summary.model_dir} ({summary.parameters:,} parameters, {summary.tokenizer} tokenizer); "
          f"trained {summary.train_s / 60:.1f} min, {summary.steps} steps")
    print(f"evaluate it: tinylm eval-task {summary.model_dir} --task code2 --split test")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    if not Path(args.model).is_dir():
        raise TinyLMError(f"no model at {args.model}; train one with `tinylm code2 train --preset thesis` "
                          "or pass --model DIR")
    lines = sys.stdin.read().split("\n") if args.text == ["-"] else args.text
    text = "\n".join(lines)
    import tinylm
    from tinylm.generation import GenerationConfig
    from tinylm.tasks.code2.translate import model_task, run_translation, translate

    lm = tinylm.load(args.model)
    config = GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size, num_beams=args.num_beams)
    assembly = translate(lm, text, config)
    print(assembly)
    if args.run:
        run = run_translation(assembly, model_task(lm).preset)
        print(f"; emulator ({'registers r<i> = i' if run.state_text else 'not run'}): {run.message}")
        if run.state_text:
            print("\n".join(f"; {line}" for line in run.state_text.split("\n")))
    return 0
