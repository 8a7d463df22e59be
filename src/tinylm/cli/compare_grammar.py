"""`tinylm compare-grammar CKPT --grammar NAME|FILE`: a task's split decoded free and under a grammar.

    tinylm compare-grammar runs/code2-thesis/model --grammar code2-thesis --limit 500
    tinylm compare-grammar runs/code2-thesis/model --grammar code2-thesis --temperature 1 --seed 0 --json

Both modes answer the same prompts with the same decoding; each prediction gets the task's
own scores and each answer is checked against the grammar (tinylm.evaluation.grammar_comparison).
Prints a Markdown table, or one JSON object with --json.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare-grammar", help="score a task's split with and without a grammar",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--grammar", required=True, metavar="NAME|FILE", help="a built-in grammar or an EBNF file")
    p.add_argument("--task", help="the task (default: the one the model was trained for)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import tinylm
    from tinylm.api import generation_config
    from tinylm.constrain import Grammar
    from tinylm.evaluation import get_task
    from tinylm.evaluation.grammar_comparison import compare, markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    config = generation_config(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                               seed=args.seed)
    grammar = Grammar.resolve(args.grammar)
    lm = tinylm.load(args.checkpoint)
    task = get_task(args.task, model_extra=lm.model.config.extra)
    result = compare(lm, task, grammar, config, split=args.split, limit=args.limit, batch_size=args.batch_size)
    print(json.dumps(result) if args.json else markdown(result, task.score_labels))
    return 0
