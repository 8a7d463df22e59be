"""`tinylm eval CKPT FILE`: the perplexity of a checkpoint on a text file."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="perplexity of a checkpoint on a text file",
                              description="Mean next-token loss and perplexity on a UTF-8 text file.")
    p.add_argument("checkpoint")
    p.add_argument("file")
    p.add_argument("--stride", type=int, default=None,
                   help="tokens scored per window (default: the context, disjoint windows)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    import tinylm
    from tinylm.tokenizers import read_text

    lm = tinylm.load(args.checkpoint)
    figures = lm.perplexity(read_text(args.file), stride=args.stride)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"loss {figures['loss']:.4f}  perplexity {figures['perplexity']:.2f}  over {figures['tokens']} tokens")
    return 0
