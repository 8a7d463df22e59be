"""`tinylm quantize CKPT --method int8|int4|dynamic-int8 --out DIR`: a quantized checkpoint.

The output is a checkpoint like any other (tinylm.load, generate, eval, serve open it); its
config.json records the quantization and its model.safetensors holds integer weights and
scales. The command prints the weight file's size before and after and a quick check: the
perplexity of the float and the quantized model on a short text (`--text FILE`, or a text the
float model samples itself) and how often they predict the same next token.
"""

from __future__ import annotations

import argparse

# tinylm.transforms.quantize's METHODS and GROUP_SIZES, written out: `tinylm --help` must not
# import torch (tests/transforms/test_quantize.py keeps the two equal).
METHODS = ("int8", "int4", "dynamic-int8")
GROUP_SIZES = (32, 64, 128)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="write an int8 / int4 / dynamic-int8 copy of a checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="float checkpoint folder")
    p.add_argument("--method", required=True, metavar="METHOD", help=" | ".join(METHODS))
    p.add_argument("--group-size", type=int, default=None, metavar="N",
                   help=f"int4: inputs sharing one scale ({', '.join(map(str, GROUP_SIZES))}; default 32)")
    p.add_argument("--asymmetric", action="store_true", help="int8/int4: a zero point per scale (default symmetric)")
    p.add_argument("--float-embedding", action="store_true",
                   help="keep the token embedding (and a tied head) float (default: quantized too)")
    p.add_argument("--head", action="store_true", help="an untied model: quantize its output head too")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    p.add_argument("--text", metavar="FILE", help="text for the perplexity check (default: sampled by the float model)")
    p.add_argument("--force", action="store_true", help="replace DIR if it is an existing model folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from tinylm.tokenizers import read_text
    from tinylm.transforms.quantize import quantize_checkpoint

    text = read_text(args.text) if args.text else None
    report = quantize_checkpoint(args.checkpoint, args.out, args.method, group_size=args.group_size,
                                 asymmetric=args.asymmetric, head=args.head,
                                 embedding=not args.float_embedding, text=text, overwrite=args.force)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
        return 0
    mb = 1024 * 1024
    print(f"wrote {report.out} ({json.dumps(report.method)})")
    print(f"weights: {report.bytes_before / mb:.2f} MiB -> {report.bytes_after / mb:.2f} MiB "
          f"({report.bytes_before / report.bytes_after:.2f}x smaller)")
    print(f"check on {report.check_tokens} tokens ({report.check_text}): perplexity {report.perplexity_before:.3f} -> "
          f"{report.perplexity_after:.3f} ({100 * (report.perplexity_after / report.perplexity_before - 1):+.2f} %), "
          f"same next token {100 * report.top1_agreement:.1f} %")
    return 0
