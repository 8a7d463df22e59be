"""`tinylm export-hf CKPT OUT` and `tinylm import-hf HF_FOLDER OUT`: Hugging Face format both ways.

export-hf writes a normal HF model folder (GPT2LMHeadModel or LlamaForCausalLM, plus the
tokenizer), loadable by `AutoModelForCausalLM.from_pretrained(OUT)` and servable by vLLM.
import-hf reads a local HF folder of either architecture into a tinylm checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-hf", help="export a checkpoint as a Hugging Face model folder",
        description="Write CKPT as a Hugging Face model folder (GPT2LMHeadModel for gpt2-style models, "
                    "LlamaForCausalLM for llama-style ones) with its tokenizer.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="tinylm checkpoint folder")
    p.add_argument("out", metavar="OUT", help="folder to write (must not exist or be empty, unless --force)")
    p.add_argument("--no-tokenizer", action="store_true", help="export the model only")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing model folder")
    p.set_defaults(func=_export)

    p = subparsers.add_parser(
        "import-hf", help="import a local Hugging Face GPT-2 or Llama folder as a checkpoint",
        description="Read a local Hugging Face model folder (GPT2LMHeadModel or LlamaForCausalLM) and save it "
                    "as a tinylm checkpoint, with its tokenizer when it is a byte-level BPE or char tokenizer.",
    )
    p.add_argument("hf_folder", metavar="HF_FOLDER", help="folder with config.json and model.safetensors")
    p.add_argument("out", metavar="OUT", help="checkpoint folder to write (must not exist or be empty, unless --force)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing model folder")
    p.set_defaults(func=_import)


def _quiet_transformers() -> None:
    """No progress bars or load reports on the terminal: the command prints its own one line."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _export(args: argparse.Namespace) -> int:
    from tinylm.interop.hf import export_hf, require_transformers
    from tinylm.atomic_files import read_json

    require_transformers()  # a clear error when transformers is missing, before anything else
    _quiet_transformers()
    out = export_hf(args.checkpoint, args.out, tokenizer=not args.no_tokenizer, overwrite=args.force)
    arch = read_json(out / "config.json")["architectures"][0]
    files = ", ".join(sorted(f.name for f in out.iterdir()))
    print(f"exported {args.checkpoint} as {arch} to {out} ({files})")
    return 0


def _import(args: argparse.Namespace) -> int:
    from tinylm.checkpoint import save_checkpoint
    from tinylm.interop.hf import check_out_dir, import_hf, require_transformers

    require_transformers()
    _quiet_transformers()
    out = check_out_dir(args.out, args.force, args.hf_folder)
    model, tokenizer = import_hf(args.hf_folder)
    save_checkpoint(out, model, tokenizer)
    print(f"imported {args.hf_folder} to {out} ({model.num_params():,} parameters)")
    if tokenizer is None:
        print("tinylm: note: no tokenizer saved: the folder has no byte-level BPE or char tokenizer.json "
              "with <pad>/<bos>/<eos>/<sep>", file=sys.stderr)
    return 0
