"""`tinylm prune CKPT --method magnitude|structured --out DIR`: a pruned checkpoint.

magnitude  --amount F: the fraction F of the smallest weights of every attention and FFN
           matrix set to zero (per matrix, or --scope global over all of them). The result
           keeps dense storage: the same size and speed as the original (docs/compression.md).
structured --heads F and/or --ffn F: remove that fraction of the attention heads (key/value
           head groups under GQA) and of the FFN hidden channels in every layer, the least
           important first; the result is a smaller model, in parameters, bytes and time.

The output is a plain checkpoint (tinylm.load, generate, eval, quantize, export open it). The
command prints parameters and weight-file size before and after and a quick check: the
perplexity of both models on a short text (`--text FILE`, else the validation split of the run
CKPT belongs to, RUN/data/, else a text the original model samples itself) and how often they
predict the same next token. `--finetune-steps N` trains the pruned model N steps first, on
`--data FILE` or the run's own training data (magnitude pruning keeps its zeros).
"""

from __future__ import annotations

import argparse

# tinylm.transforms.prune's METHODS, SCOPES and IMPORTANCE, written out: `tinylm --help` must
# not import torch (tests/transforms/test_prune.py keeps them equal).
METHODS = ("magnitude", "structured")
SCOPES = ("layer", "global")
IMPORTANCE = ("weight", "activation")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prune", help="write a magnitude-pruned or structurally pruned copy of a checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="float checkpoint folder")
    p.add_argument("--method", required=True, metavar="METHOD", help=" | ".join(METHODS))
    p.add_argument("--amount", type=float, default=None, metavar="F",
                   help="magnitude: fraction of weights to zero, in (0, 1) (default 0.3)")
    p.add_argument("--scope", default="layer", metavar="SCOPE",
                   help=f"magnitude: {' | '.join(SCOPES)} threshold (default layer, as torch's l1_unstructured)")
    p.add_argument("--head", action="store_true", help="magnitude, untied model: prune the output head too")
    p.add_argument("--heads", type=float, default=None, metavar="F",
                   help="structured: fraction of attention heads (KV groups under GQA) to remove per layer")
    p.add_argument("--ffn", type=float, default=None, metavar="F",
                   help="structured: fraction of FFN hidden channels to remove per layer")
    p.add_argument("--importance", default="weight", metavar="KIND",
                   help=f"structured: {' | '.join(IMPORTANCE)} (activation: measured on the check text; default weight)")
    p.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                   help="train the pruned model N steps on --data, or on the training data of CKPT's run (RUN/data)")
    p.add_argument("--data", metavar="FILE", help="text file to fine-tune on")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    p.add_argument("--text", metavar="FILE",
                   help="text for the perplexity check (default: the validation split of CKPT's run, else sampled by the model)")
    p.add_argument("--force", action="store_true", help="replace DIR if it is an existing model folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_prune)


def _prune(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from tinylm.errors import TinyLMError
    from tinylm.tokenizers import read_text
    from tinylm.transforms.prune import prune_checkpoint

    if args.data and not args.finetune_steps:
        raise TinyLMError("--data is the fine-tuning text: give --finetune-steps N too")
    text = read_text(args.text) if args.text else None
    data = read_text(args.data) if args.data else None
    report = prune_checkpoint(args.checkpoint, args.out, args.method, amount=args.amount, scope=args.scope,
                              head=args.head, heads=args.heads, ffn=args.ffn, importance=args.importance,
                              text=text, finetune_text=data, finetune_steps=args.finetune_steps,
                              overwrite=args.force)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
        return 0
    mb = 1024 * 1024
    print(f"wrote {report.out} ({json.dumps(report.method)})")
    if report.parameters_after < report.parameters_before:
        print(f"parameters: {report.parameters_before:,} -> {report.parameters_after:,} "
              f"({report.parameters_before / report.parameters_after:.2f}x fewer)")
    else:
        print(f"parameters: {report.parameters_after:,}; zeros in the attention and FFN matrices: {100 * report.sparsity:.1f} %")
    note = " (dense storage: zeros weigh as much as other weights)" if report.bytes_after >= report.bytes_before else ""
    print(f"weights: {report.bytes_before / mb:.2f} MiB -> {report.bytes_after / mb:.2f} MiB "
          f"({report.bytes_before / report.bytes_after:.2f}x smaller){note}")
    if report.finetune_steps:
        print(f"fine-tuned {report.finetune_steps} steps after pruning")
    print(f"check on {report.check_tokens} tokens ({report.check_text}): perplexity {report.perplexity_before:.3f} -> "
          f"{report.perplexity_after:.3f} ({100 * (report.perplexity_after / report.perplexity_before - 1):+.2f} %), "
          f"same next token {100 * report.top1_agreement:.1f} %")
    return 0
