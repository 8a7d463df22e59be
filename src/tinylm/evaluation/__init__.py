"""The shared evaluation harness: any task, any checkpoint, one report.

    from tinylm.evaluation import evaluate, get_task, write_report
    lm = tinylm.load("runs/code2-thesis/model")
    task = get_task("code2", model_extra=lm.model.config.extra)
    result = evaluate(lm, task, "test", GenerationConfig(temperature=0))
    write_report(result, "runs/code2-thesis/eval-test")

Files: metrics (exact match, BLEU, ROUGE-L), task (the Task protocol; the tasks themselves
come from the task plug-ins, tinylm.tasks), harness (batched generation over a split,
scoring, speed), report (JSON, Markdown, PNG), grammar_comparison (a split decoded free and
under a grammar). Names are imported on first use so `tinylm --help` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Example": "tinylm.evaluation.task",
    "Anchor": "tinylm.evaluation.task",
    "Task": "tinylm.evaluation.task",
    "get_task": "tinylm.evaluation.task",
    "EvalResult": "tinylm.evaluation.harness",
    "evaluate": "tinylm.evaluation.harness",
    "predict": "tinylm.evaluation.harness",
    "write_report": "tinylm.evaluation.report",
    "markdown": "tinylm.evaluation.report",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tinylm.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
