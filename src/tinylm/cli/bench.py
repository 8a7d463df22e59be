"""`tinylm bench NAME [--json] [--quick]`: run a benchmark and print its figures."""

from __future__ import annotations

import argparse
import inspect
import json
import time

from tinylm.errors import TinyLMError


def register(subparsers: argparse._SubParsersAction) -> None:
    from tinylm.bench import BENCHMARKS

    p = subparsers.add_parser("bench", help="run a benchmark", description=__doc__)
    p.add_argument("name", choices=sorted(BENCHMARKS), metavar="NAME", help=", ".join(BENCHMARKS))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="a short run that checks the benchmark works")
    p.add_argument("--model", metavar="CKPT", default=None,
                   help="a trained checkpoint (benchmarks that take one: quant, prune, code2-compress)")
    p.add_argument("--budget-s", type=float, default=None, metavar="S",
                   help="each training run's time budget (benchmarks that take one: finetune, ablation; "
                        "code2-compress: the students')")
    p.add_argument("--base-budget-s", type=float, default=None, metavar="S",
                   help="the base model's pretraining budget (finetune; default 900)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--variants", nargs="+", default=None, metavar="NAME", help="variants to run (ablation, code2-compress; finetune: its rows)")
    p.add_argument("--recipes", nargs="+", default=None, metavar="NAME",
                   help="candidate recipes against the reference (train-shakespeare-char; default shakespeare-char)")
    p.add_argument("--eval-limit", type=int, default=None, metavar="N",
                   help="evaluate the first N test examples only (finetune)")
    p.add_argument("--out", default=None, metavar="DIR", help="keep the benchmark's runs in DIR (finetune)")
    p.add_argument("--png", default=None, metavar="FILE", help="write the loss-vs-time curves here (ablation)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from tinylm import bench

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    benchmark = bench.get(args.name)
    # Options only some benchmarks take: passed when given, refused where not taken.
    given = {k: getattr(args, k) for k in ("model", "budget_s", "base_budget_s", "variants", "recipes", "png", "eval_limit", "out")
             if getattr(args, k) is not None}
    for key in given:
        if key not in inspect.signature(benchmark).parameters:
            raise TinyLMError(f"benchmark {args.name} does not take --{key.replace('_', '-')}")
    figures = benchmark(quick=args.quick, **given)
    result = {"benchmark": args.name, "quick": args.quick, **figures, "machine": bench.machine(),
              "wall_s": round(time.time() - started, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {json.dumps(value)}")
    return 0
