"""`tinylm generate CKPT [PROMPT]`: complete a prompt once, or `-i` for a prompt loop.

With --grammar NAME|FILE, --regex PATTERN or --json-schema FILE the output is constrained
to that language (tinylm.constrain); a completion that did not end as a sentence of it (cut
by --max-new-tokens, or no token allowed) says so on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from tinylm.cli.common import add_grammar_args, add_sampling_args, grammar_processor, sampling_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="generate text from a checkpoint", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("prompt", nargs="?", default="", help="the text to continue (default: empty)")
    p.add_argument("-i", "--interactive", action="store_true", help="read prompts in a loop (Ctrl-D to quit)")
    p.add_argument("--no-stream", action="store_true", help="print the completion when it is finished")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="onnx: run a folder written by `tinylm export-onnx` in ONNX Runtime")
    add_sampling_args(p)
    add_grammar_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tinylm

    if args.runtime == "onnx":
        from tinylm.interop.onnx import load_onnx

        lm = load_onnx(args.checkpoint)
    else:
        lm = tinylm.load(args.checkpoint)
    settings = sampling_settings(args)
    processor = grammar_processor(args, lm)
    if not args.interactive:
        complete(lm, args.prompt, settings, stream=not args.no_stream, processor=processor)
        return 0
    while True:
        try:
            prompt = input("> ")
        except EOFError:
            print()
            return 0
        complete(lm, prompt, settings, stream=True, processor=processor)


def complete(lm, prompt: str, settings: dict, stream: bool, processor=None) -> None:
    """Print prompt + completion (streamed piece by piece), then tokens and speed on stderr."""
    from tinylm.api import generation_config

    started = time.perf_counter()
    if stream and settings["num_beams"] == 1:
        # The engine checks the prompt and settings when the stream is created: errors come
        # before anything is printed.
        events = lm.engine.stream(lm.encode_prompts([prompt])[0], generation_config(**settings), processor)
        sys.stdout.write(prompt)
        tokens, reason = 0, None
        for event in events:
            sys.stdout.write(event.text)
            sys.stdout.flush()
            tokens += event.token_id is not None
            reason = event.finish_reason or reason
    else:
        [result] = lm.complete([prompt], processor, **settings)
        sys.stdout.write(prompt + (result.text or ""))
        tokens, reason = result.completion_tokens, result.finish_reason
    sys.stdout.write("\n")
    elapsed = time.perf_counter() - started
    # Under a grammar, anything but "stop" means the text is not a whole sentence: say so.
    why = f", finish_reason {reason}" if processor is not None and reason != "stop" else ""
    print(f"[{tokens} tokens in {elapsed:.2f}s, {tokens / max(elapsed, 1e-9):.1f} tokens/s{why}]", file=sys.stderr)
