"""`tinylm arithmetic gen-data | train | protocol | check`: the grammar-decoding study's task, end to end.

    tinylm arithmetic train --out runs/arithmetic                 # a few minutes on a CPU
    tinylm arithmetic protocol runs/arithmetic/model --out runs/arithmetic/protocol
    tinylm arithmetic check "(9*15)==(9*10+9*5)" --target 135

(`python -m tinylm.tasks.arithmetic ...` is the same command.)
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("arithmetic", help="the grammar-decoding study's arithmetic rewriting task", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    g = verbs.add_parser("gen-data", help="write train/test JSONL pairs")
    g.add_argument("--out", required=True, help="folder for train.jsonl and test.jsonl")
    g.add_argument("--n", type=int, default=20000, help="training examples")
    g.add_argument("--max-operand", type=int, default=20)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_gen_data)

    t = verbs.add_parser("train", help="train the small rewriting model")
    t.add_argument("--out", required=True, help="run folder (the model lands in OUT/model)")
    t.add_argument("--recipe", default="arithmetic", metavar="NAME|FILE",
                   help="an arithmetic recipe by name, or a FILE.json / FILE.toml (default arithmetic)")
    t.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's 1500)")
    t.add_argument("--time-budget", type=float, default=0.0, metavar="SECONDS", help="stop training after this long")
    t.add_argument("--threads", type=int, default=0)
    t.set_defaults(func=_train)

    r = verbs.add_parser("protocol", help="the grammar-decoding study's protocol with and without the grammar")
    r.add_argument("checkpoint")
    r.add_argument("--out", help="write protocol.json, samples.jsonl and table.md here")
    r.add_argument("--seeds", type=int, default=100)
    r.add_argument("--max-tokens", type=int, nargs="+", default=[50, 100, 200])
    r.add_argument("--heldout", type=int, default=100, help="test problems for the held-out table (0 = skip)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (batch-1 decoding of a tiny model: 1)")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(func=_protocol)

    c = verbs.add_parser("check", help="score one text: Lark syntax, SymPy parse, true correctness")
    c.add_argument("text")
    c.add_argument("--target", type=int, required=True)
    c.set_defaults(func=_check)


def _gen_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinylm.atomic_files import atomic_write
    from tinylm.tasks.arithmetic.data import make_pairs, split_problems

    splits = split_problems(args.max_operand, args.seed)
    out = Path(args.out)
    for name, rows in (("train", make_pairs(splits["train"], args.n, args.seed)),
                       ("test", make_pairs(splits["test"], len(splits["test"]), args.seed + 1))):
        with atomic_write(out / f"{name}.jsonl") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"{out / f'{name}.jsonl'}: {len(rows)} examples")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tinylm.tasks.arithmetic.train import train
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.steps is not None:
        recipe = recipe.replace(train={"max_steps": args.steps})
    if args.time_budget:
        recipe = recipe.replace(train={"time_budget_s": args.time_budget})
    summary = train(recipe, args.out, threads=args.threads)
    print(json.dumps(summary.to_dict()))
    return 0


def _protocol(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    import tinylm
    from tinylm.atomic_files import atomic_write, write_json
    from tinylm.tasks.arithmetic.data import split_problems
    from tinylm.tasks.arithmetic.protocol import fixed_seeds, markdown, run_heldout, run_protocol

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = tinylm.load(args.checkpoint)
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    protocol = run_protocol(lm, seeds=fixed_seeds(args.seeds), max_tokens=args.max_tokens, progress=say)
    heldout = None
    if args.heldout:
        info = lm.model.config.extra.get("arithmetic") or {}
        test = split_problems(info.get("max_operand", 20), info.get("seed", 0))["test"][: args.heldout]
        heldout = run_heldout(lm, test, progress=say)
    table = markdown(protocol, heldout)
    summary = {"checkpoint": args.checkpoint, "protocol": {k: v for k, v in protocol.items() if k != "samples"},
               "heldout": {k: v for k, v in heldout.items() if k != "samples"} if heldout else None}
    if args.out:
        out = Path(args.out)
        write_json(out / "protocol.json", summary)
        with atomic_write(out / "samples.jsonl") as f:
            for row in protocol["samples"] + (heldout["samples"] if heldout else []):
                f.write(json.dumps(row) + "\n")
        with atomic_write(out / "table.md") as f:
            f.write(table)
    print(json.dumps(summary) if args.json else table)
    return 0


def _check(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tinylm.tasks.arithmetic.checks import score

    print(json.dumps(asdict(score(args.text, args.target))))
    return 0
