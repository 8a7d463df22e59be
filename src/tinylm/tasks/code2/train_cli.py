"""`tinylm code2 train` and `tinylm code2 translate`: the model side of the code2 command.

    tinylm code2 train --preset thesis                       # recipe code2-thesis -> runs/code2-thesis/model
    tinylm code2 train --preset full --budget-minutes 15 --out runs/full
    tinylm code2 translate runs/code2-thesis/model "Suma r1 y r2 y guarda el resultado en r3" --run
    echo "Lee DAC1 y almacénalo en el registro 0" | tinylm code2 translate runs/code2-thesis/model - --run
    tinylm code2 translate runs/code2-thesis/model -i --precision int8     # interactive, with latencies
    tinylm code2 translate runs/code2-thesis/model -i < blocks.txt         # blocks ended by empty lines

translate prints the assembly (one line per description line); --run assembles it, runs it
on the emulator from registers r<i> = i and zeroed memory, and prints the final state.
-i translates description after description (each ended by an empty line) and prints the
latency of each answer (interactive.py); --precision int8|int4 quantizes a float model as it
loads (a folder `tinylm quantize` wrote is used as it is).
Without MODEL it uses the model `tinylm code2 train --preset thesis` or `tinylm demo`
wrote under runs/ (the first of DEFAULT_MODELS that exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinylm.errors import TinyLMError

# Where `tinylm code2 train --preset thesis` and `tinylm demo` put their models by default.
DEFAULT_MODELS = ("runs/code2-thesis/model", "runs/demo/train/model")


def register_train_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a Spanish -> CODE-2 model from scratch (a CODE-2 recipe)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("thesis", "full"), help="dataset preset: recipe code2-<preset> (default thesis)")
    p.add_argument("--recipe", metavar="NAME|FILE", help="a CODE-2 recipe by name (code2-thesis, code2-full) or a "
                   "FILE.json / FILE.toml (default code2-<preset>)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/code2-<preset>); the model lands in DIR/model")
    p.add_argument("--data", metavar="DIR", help="read train/valid.jsonl from DIR instead of generating the dataset")
    p.add_argument("--budget-minutes", type=float, metavar="M", help="training time budget (default: the recipe's)")
    p.add_argument("--max-steps", type=int, metavar="N", help="train N steps, no time budget")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("translate", help="translate Spanish descriptions into CODE-2 with a trained model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", metavar="[MODEL] TEXT",
                   help="a checkpoint folder, then the description's lines (each argument is a line; - reads stdin)")
    p.add_argument("--model", metavar="DIR", help="the checkpoint, given as an option (the older form)")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="translate descriptions read from stdin, each ended by an empty line, with the latency of each")
    p.add_argument("--precision", metavar="fp32|int8|int4",
                   help="quantize a float model on load (default: the checkpoint as saved)")
    p.add_argument("--run", action="store_true", help="run the result on the emulator and print the final state")
    p.add_argument("--num-beams", type=int, default=1, help="beam search with N beams (default: greedy)")
    p.set_defaults(func=_cmd_translate)


def resolve_recipe(preset: str | None, spec: str | None, budget_minutes: float | None, max_steps: int | None):
    """The recipe `tinylm code2 train` runs: --recipe (or code2-<preset>), with the budget flags applied."""
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe(spec or f"code2-{preset or 'thesis'}")
    if recipe.task != "code2":
        raise TinyLMError(f"recipe {recipe.name} is not a CODE-2 recipe (its task is {recipe.task or 'none'})")
    if preset is not None and recipe.settings.data_preset != preset:
        raise TinyLMError(f"recipe {recipe.name} trains on the {recipe.settings.data_preset} preset, not {preset}")
    if budget_minutes is not None and max_steps is not None:
        raise TinyLMError("give --budget-minutes or --max-steps, not both")
    if budget_minutes is not None:
        if budget_minutes <= 0:
            raise TinyLMError(f"--budget-minutes must be positive, got {budget_minutes}")
        recipe = recipe.replace(train={"time_budget_s": 60.0 * budget_minutes})
    if max_steps is not None:
        if max_steps < 1:
            raise TinyLMError(f"--max-steps must be at least 1, got {max_steps}")
        recipe = recipe.replace(train={"max_steps": max_steps, "time_budget_s": 0.0})
    return recipe


def _cmd_train(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.train import train

    recipe = resolve_recipe(args.preset, args.recipe, args.budget_minutes, args.max_steps)
    out = args.out or f"runs/code2-{recipe.settings.data_preset}"
    summary = train(recipe, out, data=args.data, threads=args.threads, quiet=args.quiet)
    print(f"model: {summary.model_dir} ({summary.parameters:,} parameters, {summary.tokenizer} tokenizer); "
          f"trained {summary.train_s / 60:.1f} min, {summary.steps} steps")
    print(f"evaluate it: tinylm eval-task {summary.model_dir} --split test")
    print(f'translate:   tinylm code2 translate {summary.model_dir} "Suma r1 y r2 y guarda el resultado en r3" --run')
    return 0


def model_and_text(words: list[str], model: str | None, interactive: bool = False) -> tuple[Path, list[str]]:
    """(checkpoint, description lines) from `[MODEL] TEXT...` or the older `TEXT... --model MODEL`;
    interactive, only `[MODEL]` (the descriptions come from stdin)."""
    if interactive:
        if model is None and words:
            model, words = words[0], words[1:]
        if words:
            raise TinyLMError("-i reads the descriptions from stdin; give only the model")
    elif not words:
        raise TinyLMError('nothing to translate: give a description, e.g. tinylm code2 translate MODEL '
                          '"Suma r1 y r2 y guarda el resultado en r3", or -i')
    elif model is None and (Path(words[0]).is_dir() or "/" in words[0]):
        if len(words) < 2:
            raise TinyLMError(f'nothing to translate: give the description after the model, '
                              f'e.g. tinylm code2 translate {words[0]} "Suma r1 y r2 y guarda el resultado en r3"')
        model, words = words[0], words[1:]
    if model is None:
        found = [m for m in DEFAULT_MODELS if Path(m).is_dir()]
        if not found:
            raise TinyLMError(f"no model given and none in {' or '.join(DEFAULT_MODELS)}; train one with "
                              '`tinylm code2 train` (or `tinylm demo`), then `tinylm code2 translate MODEL "text"`')
        model = found[0]
    if not Path(model).is_dir():
        raise TinyLMError(f"no model at {model}; train one with `tinylm code2 train --preset thesis` "
                          '(it lands in runs/code2-thesis/model), then `tinylm code2 translate MODEL "text"`')
    return Path(model), words


def _cmd_translate(args: argparse.Namespace) -> int:
    model, lines = model_and_text(args.words, args.model, args.interactive)
    from tinylm.generation import GenerationConfig
    from tinylm.tasks.code2.interactive import interactive, run_report
    from tinylm.tasks.code2.translate import load_translator, model_task, run_translation, translate

    lm = load_translator(model, args.precision)
    config = GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size, num_beams=args.num_beams)
    if args.interactive:
        return interactive(lm, config, run=args.run)
    text = sys.stdin.read() if lines == ["-"] else "\n".join(lines)
    assembly = translate(lm, text, config)
    print(assembly)
    if args.run:
        print(run_report(run_translation(assembly, model_task(lm).preset)))
    return 0
