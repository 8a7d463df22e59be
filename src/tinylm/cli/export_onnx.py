"""`tinylm export-onnx CKPT OUT [--int8]`: a checkpoint as an ONNX decoder with a KV cache.

OUT holds model.onnx, config.json and tokenizer.json; `tinylm generate OUT --runtime onnx`
runs it in ONNX Runtime through tinylm's generation engine (docs/export.md).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-onnx", help="export a checkpoint as an ONNX decoder (KV cache in and out)", description=__doc__,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="tinylm checkpoint folder")
    p.add_argument("out", metavar="OUT", help="folder to write (replaced atomically if it exists)")
    p.add_argument("--int8", action="store_true",
                   help="int8 weights, activations quantized at run time (onnxruntime quantize_dynamic)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinylm.interop.onnx import ONNX_FILE, export_onnx

    out = export_onnx(args.checkpoint, args.out, int8=args.int8)
    size = (out / ONNX_FILE).stat().st_size / 2**20
    print(f"exported {args.checkpoint} to {out / ONNX_FILE} ({'int8' if args.int8 else 'fp32'}, {size:.2f} MiB)")
    return 0
