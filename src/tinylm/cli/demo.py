"""`tinylm demo`: train a Spanish -> CODE-2 model on this CPU, evaluate it like the thesis, translate.

    tinylm demo                                  # about 10 minutes of training, then the test split
    tinylm demo --budget-minutes 3 --limit 500   # a shorter tour
    tinylm demo --out runs/demo                  # run again: reuses runs/demo/train/model

Needs no network: the dataset is generated, the tokenizer and model are trained here.
See tinylm/tasks/code2/demo.py for the steps.
"""

from __future__ import annotations

import argparse

from tinylm.errors import TinyLMError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="the main job: train a Spanish->CODE-2 model, evaluate it, translate",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, default=10.0, help="training time budget (default 10)")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder (default runs/demo)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate on the first N test blocks only")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.budget_minutes <= 0:
        raise TinyLMError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.limit is not None and args.limit < 1:
        raise TinyLMError(f"--limit must be at least 1, got {args.limit}")
    from tinylm.tasks.code2.demo import run_demo

    run_demo(args.out, args.budget_minutes, args.limit, args.threads)
    return 0
