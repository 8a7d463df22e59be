"""The CODE-2 task plug-in: what the registry (tinylm.tasks) finds for "code2".

Light on purpose (`tinylm --help` reads it): everything heavy is imported by the functions
below when they are called.
"""

from __future__ import annotations

from typing import Any

from tinylm.tasks.code2 import cli, demo
from tinylm.tasks.code2.recipes import RECIPES, Code2Settings
from tinylm.tasks.registry import NamedGrammar, TaskPlugin


def _train(recipe: Any, out_dir: Any, *, model: Any = None, tokenizer: Any = None, **options: Any) -> Any:
    """`model` and `tokenizer`: fine-tune this model (tinylm finetune) instead of building one."""
    from tinylm.tasks.code2.train import train

    return train(recipe, out_dir, model=model, tokenizer=tokenizer, **options)


def _evaluation(model_extra: dict[str, Any], data: str | None, preset: str | None) -> Any:
    from tinylm.tasks.code2.task import create

    return create(model_extra, data, preset)


def _routes(app: Any, server: Any) -> None:
    from tinylm.tasks.code2.serve import add_routes

    add_routes(app, server)


def _cli(subparsers: Any) -> None:
    cli.register(subparsers)  # tinylm code2 ...
    demo.register(subparsers)  # tinylm demo


def _grammar(variant: str) -> str:
    from tinylm.tasks.code2.grammar import grammar_ebnf

    return grammar_ebnf(variant)


PLUGIN = TaskPlugin(
    name="code2",
    description="Spanish descriptions -> CODE-2 assembly, checked on the emulator (the UGR thesis)",
    prompt_format="paired",
    settings=Code2Settings,
    recipes=RECIPES,
    train=_train,
    evaluation=_evaluation,
    grammars={
        "code2-thesis": NamedGrammar("CODE-2 assembly output, thesis variant (LD/ST/ADDS/SUBS, error lines)",
                                     lambda: _grammar("thesis")),
        "code2-full": NamedGrammar("CODE-2 assembly output, every instruction, labels, comments, ORG, DW",
                                   lambda: _grammar("full")),
    },
    cli=_cli,
    routes=_routes,
)
