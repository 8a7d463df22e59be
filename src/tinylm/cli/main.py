"""The `tinylm` command: one verb per workflow, each a thin layer over the Python API.

Every command module exposes `register(subparsers)`, which adds its parser and sets
`func` to a handler taking the parsed arguments and returning an exit code. Handlers
import heavy modules (torch, transformers) lazily so `tinylm --help` stays instant.
The generic verbs are listed here; each task plug-in adds its own (tinylm.tasks: `tinylm
code2 ...` and `tinylm demo`, `tinylm arithmetic ...`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinylm.errors import TinyLMError

# Order here is the order in `tinylm --help`.
COMMAND_MODULES = [
    "tinylm.cli.train",
    "tinylm.cli.tune",
    "tinylm.cli.finetune",
    "tinylm.cli.generate",
    "tinylm.cli.chat",
    "tinylm.cli.serve",
    "tinylm.cli.info",
    "tinylm.cli.perplexity",
    "tinylm.cli.export_hf",
    "tinylm.cli.export_onnx",
    "tinylm.cli.export_gguf",
    "tinylm.cli.quantize",
    "tinylm.cli.prune",
    "tinylm.cli.distill",
    "tinylm.cli.bench",
    "tinylm.cli.eval_task",
    "tinylm.cli.compare_grammar",
    "tinylm.cli.pipeline",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinylm",
        description="Build, train, constrain, evaluate and serve small language models on a CPU.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    from tinylm.tasks import plugins

    for plugin in plugins():
        if plugin.cli is not None:
            plugin.cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for verbs that relaunch themselves
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TinyLMError as e:
        print(f"tinylm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinylm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
