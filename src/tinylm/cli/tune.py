"""`tinylm tune RECIPE --trials N --out DIR`: hyperparameter search with Optuna.

    tinylm tune code2-thesis --space scratch --trials 20 --budget-s 45 --eval-every 100 --metric exact_match \
        --set task.final_blocks=50 --out runs/tune-code2
    tinylm tune shakespeare-char --data input.txt --space my_space.toml --trials 10 --out runs/tune-shk
    # several machines, one study (each machine runs the same command with its own --out):
    tinylm tune code2-thesis --trials 40 --budget-s 45 --storage postgresql://user:pw@db-host/optuna \\
        --study code2-search --out runs/tune-code2

RECIPE is what `tinylm train --recipe` takes (a named recipe or FILE.json / FILE.toml).
Each trial trains the recipe with the sampled settings into OUT/trials/NNNN/; the study is
kept in OUT/study.db (SQLite) unless --storage names another database. Rerunning the
command continues the study to N trials. At the end: OUT/optimization_history.png,
OUT/param_importances.png, OUT/best_recipe.json (for `tinylm train --recipe`) and
OUT/tune_summary.json; the table of trials is printed. See docs/tuning.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


SPACE_NAMES = ("full", "scratch", "lora")  # tinylm.training.tune.SPACES (kept light: no optuna import for --help)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tune", help="search a recipe's hyperparameters with Optuna (SQLite or PostgreSQL)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", metavar="RECIPE", help="a named recipe (tinylm train --recipe) or a FILE.json / FILE.toml")
    p.add_argument("--trials", type=int, required=True, metavar="N",
                   help="trials (complete or pruned) the study ends with, counting every worker's")
    p.add_argument("--out", required=True, metavar="DIR", help="this worker's folder: trials, plots, best recipe")
    p.add_argument("--storage", metavar="URL", help="Optuna storage, e.g. postgresql://user:pw@host/db to share a "
                   "study between machines (default: sqlite:///DIR/study.db)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the recipe's name)")
    p.add_argument("--space", default="full", metavar="|".join(SPACE_NAMES) + "|FILE",
                   help="search space: a built-in (full: the UGR thesis's table 3.4, fine-tuning learning rates; "
                        "scratch: learning rates etc. for training from scratch; lora: the thesis's LoRA rows, "
                        "for tinylm finetune) or a FILE.toml / FILE.json (default full)")
    p.add_argument("--metric", default="val_loss", choices=("val_loss", "exact_match"),
                   help="objective: best validation loss (minimised) or the task's exact match on its "
                        "validation split (maximised; task recipes); default val_loss")
    p.add_argument("--budget-s", type=float, default=0.0, metavar="S",
                   help="training time per trial in seconds (train.time_budget_s; default the recipe's)")
    p.add_argument("--eval-every", type=int, metavar="N",
                   help="steps between validation losses, which the pruner compares (default the recipe's "
                        "train.eval_every; a short --budget-s needs a small N for any pruning)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fixed",
                   help="a setting every trial gets, keys as in a space file: eval_batches=5, model.dropout=0.1, "
                        "task.final_blocks=100 (repeatable)")
    p.add_argument("--eval-limit", type=int, default=200, metavar="N",
                   help="validation examples decoded for --metric exact_match (default 200)")
    p.add_argument("--seed", type=int, metavar="N", help="the sampler's seed (default: a fresh one per worker)")
    p.add_argument("--pruner-startup", type=int, default=5, metavar="N",
                   help="trials that finish before any trial is pruned (default 5)")
    p.add_argument("--pruner-warmup-steps", type=int, default=0, metavar="N",
                   help="training steps before a trial can be pruned (default 0)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch CPU threads, 0 = torch's choice")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    data = p.add_argument_group("data of a text or pairs recipe (a task recipe makes its own)")
    data.add_argument("--data", nargs="+", default=[], metavar="FILE", help="UTF-8 text files (split 90/5/5)")
    data.add_argument("--pairs", metavar="TRAIN.jsonl", help='prompt/completion pairs, {"input", "output"} a line')
    data.add_argument("--val-pairs", metavar="VAL.jsonl", help="validation pairs (with --pairs)")
    p.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    from tinylm.cli.train import parse_overrides
    from tinylm.training.recipe import load_recipe
    from tinylm.training.tune import TrialData, TuneSettings, Tuner, load_space, table

    settings = TuneSettings(
        out_dir=args.out, trials=args.trials, storage=args.storage, study=args.study, metric=args.metric,
        budget_s=args.budget_s, eval_every=args.eval_every, eval_limit=args.eval_limit, seed=args.seed,
        pruner_startup=args.pruner_startup, pruner_warmup_steps=args.pruner_warmup_steps, threads=args.threads, quiet=args.quiet,
        fixed=parse_overrides(args.fixed),
    )
    recipe = load_recipe(args.recipe)
    data = TrialData([Path(p) for p in args.data], Path(args.pairs) if args.pairs else None,
                     Path(args.val_pairs) if args.val_pairs else None)
    tuner = Tuner(recipe, load_space(args.space), settings, data)  # everything checked before the study opens
    summary = tuner.run()
    if args.quiet:
        print(table(summary))
    return 0
