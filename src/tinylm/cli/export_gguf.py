"""`tinylm export-gguf CKPT OUT.gguf [--type f32|f16|q8_0]`: a llama-style checkpoint for llama.cpp.

Architecture `llama` with the tokenizer's metadata; models that are not llama-style (RoPE,
RMSNorm, SwiGLU, pre-norm, no biases) are refused (docs/export.md).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export-gguf", help="export a llama-style checkpoint as a GGUF file (llama.cpp)",
                              description=__doc__)
    p.add_argument("checkpoint", metavar="CKPT", help="tinylm checkpoint folder")
    p.add_argument("out", metavar="OUT.gguf", help="file to write (replaced atomically if it exists)")
    # Checked by export_gguf (not argparse's choices) so an unknown type is the one-line error of every other mistake.
    p.add_argument("--type", default="f32", metavar="f32|f16|q8_0", help="tensor type of the matrices (default f32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinylm.interop.gguf import export_gguf

    out = export_gguf(args.checkpoint, args.out, args.type)
    print(f"exported {args.checkpoint} to {out} ({args.type}, {out.stat().st_size / 2**20:.2f} MiB)")
    return 0
