"""The arithmetic task plug-in: what the registry (tinylm.tasks) finds for "arithmetic".

Light on purpose (`tinylm --help` reads it): everything heavy is imported by the functions
below when they are called.
"""

from __future__ import annotations

from typing import Any

from tinylm.tasks.arithmetic.cli import register
from tinylm.tasks.arithmetic.recipes import RECIPES, ArithmeticSettings
from tinylm.tasks.registry import NamedGrammar, TaskPlugin


def _train(recipe: Any, out_dir: Any, *, data: str | None = None, **options: Any) -> Any:
    from tinylm.errors import TinyLMError
    from tinylm.tasks.arithmetic.train import train

    if data is not None:
        raise TinyLMError("the arithmetic task makes its own data; it reads no data folder")
    return train(recipe, out_dir, **options)


def _evaluation(model_extra: dict[str, Any], data: str | None, preset: str | None) -> Any:
    from tinylm.tasks.arithmetic.evaluation import create

    return create(model_extra, data, preset)


def _grammar() -> str:
    from tinylm.tasks.arithmetic.grammar import ARITHMETIC_EBNF

    return ARITHMETIC_EBNF


PLUGIN = TaskPlugin(
    name="arithmetic",
    description="rewrite 'A op B' as a chain of equal expressions (the grammar-decoding study)",
    prompt_format="paired",
    settings=ArithmeticSettings,
    recipes=RECIPES,
    train=_train,
    evaluation=_evaluation,
    grammars={"arithmetic": NamedGrammar("the grammar-decoding study's arithmetic expressions with chained ==",
                                         _grammar)},
    cli=register,
)
