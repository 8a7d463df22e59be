"""`tinylm info CKPT`: a checkpoint's config, size, tokenizer and prompt format."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="show a checkpoint's config and size",
                              description="Show a checkpoint's config, parameter count, tokenizer and prompt format.")
    p.add_argument("checkpoint")
    p.set_defaults(func=info)


def info(args: argparse.Namespace) -> int:
    import tinylm

    print(json.dumps(tinylm.load(args.checkpoint).info(), indent=2))
    return 0
