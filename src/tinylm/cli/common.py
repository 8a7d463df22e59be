"""Argument groups shared by the commands that generate text (generate, chat, serve, eval-task)."""

from __future__ import annotations

import argparse
from typing import Any


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--max-new-tokens", type=int, default=200)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    g.add_argument("--min-p", type=float, default=0.0, help="0 = off")
    g.add_argument("--repetition-penalty", type=float, default=1.0)
    g.add_argument("--presence-penalty", type=float, default=0.0)
    g.add_argument("--frequency-penalty", type=float, default=0.0)
    g.add_argument("--num-beams", type=int, default=1)
    g.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    g.add_argument("--seed", type=int, default=None)


def add_grammar_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grammar (constrained decoding with XGrammar; at most one)").add_mutually_exclusive_group()
    from tinylm.tasks import plugins

    # The built-in names without importing tinylm.constrain (XGrammar, torch): each task's, and json.
    names = [name for plugin in plugins() for name in plugin.grammars] + ["json"]
    g.add_argument("--grammar", metavar="NAME|FILE", help=f"a GBNF/EBNF file, or a built-in: {', '.join(names)}")
    g.add_argument("--regex", metavar="PATTERN", help="the whole output must match this regular expression")
    g.add_argument("--json-schema", metavar="FILE", help="the output is compact JSON valid under this schema")


def grammar_processor(args: argparse.Namespace, lm: Any) -> Any:
    """The GrammarProcessor the grammar flags ask for, or None (compiled before any generation starts)."""
    if args.grammar is None and args.regex is None and args.json_schema is None:
        return None
    from pathlib import Path

    from tinylm.constrain import constrain

    schema = Path(args.json_schema) if args.json_schema is not None else None
    return constrain(lm, args.grammar, regex=args.regex, json_schema=schema, num_beams=args.num_beams)


def sampling_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword settings for LanguageModel.generate / GenerationConfig."""
    return dict(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty, presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty, num_beams=args.num_beams, stop_strings=tuple(args.stop),
        seed=args.seed,
    )
