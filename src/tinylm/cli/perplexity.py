"""`tinylm eval CKPT FILE`: the perplexity of a checkpoint on a text file, or on a prepared
split (a run's data/test.bin: token ids, so every model of the same tokenizer is scored on
exactly the same tokens, e.g. the educational-GPT recipe and the LSTM beside it)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="perplexity of a checkpoint on a text file",
                              description="Mean next-token loss and perplexity on a UTF-8 text file.")
    p.add_argument("checkpoint")
    p.add_argument("file", help="a UTF-8 text file, or a prepared split's .bin (e.g. RUN/data/test.bin)")
    p.add_argument("--stride", type=int, default=None,
                   help="tokens scored per window (default: the context, disjoint windows)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    import tinylm
    from tinylm.tokenizers import read_text

    lm = tinylm.load(args.checkpoint)
    if args.file.endswith(".bin"):
        from tinylm.data import TextDataset

        from tinylm.errors import TinyLMError

        split = TextDataset(args.file, lm.model.config.block_size)
        if split.vocab_size != lm.tokenizer.vocab_size:
            raise TinyLMError(f"{args.file} was tokenized with {split.vocab_size} tokens, this model's tokenizer has "
                              f"{lm.tokenizer.vocab_size}: not the same tokenizer")
        ids = split.data.tolist()
        figures = lm.perplexity_of_ids(ids, stride=args.stride)
    else:
        figures = lm.perplexity(read_text(args.file), stride=args.stride)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"loss {figures['loss']:.4f}  perplexity {figures['perplexity']:.2f}  over {figures['tokens']} tokens")
    return 0
