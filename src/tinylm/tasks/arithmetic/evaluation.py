"""The arithmetic task in the shared evaluation harness: `tinylm eval-task runs/arithmetic/model`.

The test split is the one the trainer set aside: the test problems (never trained on,
9 * 15 among them), one example each, rebuilt from the checkpoint's recorded settings
(config.extra["arithmetic"]: max_operand and seed), so no data folder is needed. `--data
DIR` reads DIR/<split>.jsonl instead (the trainer writes data/test.jsonl).

Exact match says little here: many chains are right, and the reference is one of them.
The task's own measures are the grammar-decoding study's two and the true one
(checks.py): the annex grammar accepts the text, SymPy reads it, and every side of the
chain equals the problem's value. With the task's constraint (the default), decoding
follows the arithmetic grammar, as the study's GBD mode did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.evaluation.task import Example
from tinylm.generation import LogitsProcessor

SPLITS = ("test",)
MAX_ANSWER_BYTES = 200  # the protocol's longest answer (max_tokens 200, one byte per token)


class ArithmeticTask:
    name = "arithmetic"
    splits = SPLITS
    score_labels = {
        "syntactic": "syntactic (the study's Lark grammar)",
        "sympy": "SymPy parses (the study's 'semantic')",
        "correct": "correct (every side equals the value)",
    }
    error_labels = {
        "syntactic": "not in the grammar",
        "wrong_value": "in the grammar, a side is not the value",
        "too_short": "fewer than two sides",
    }
    anchor = None
    max_answer_bytes = MAX_ANSWER_BYTES

    def __init__(self, max_operand: int, seed: int, data: str | None = None) -> None:
        self.max_operand, self.seed, self.data = max_operand, seed, data

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        if split not in SPLITS:
            raise TinyLMError(f"unknown arithmetic split {split!r}; choose one of: {', '.join(SPLITS)}")
        rows = self._read(split) if self.data else self._rebuild()
        rows = rows if limit is None else rows[:limit]
        return [Example(r["input"], r["output"], r.get("meta") or {}) for r in rows]

    def _rebuild(self) -> list[dict[str, Any]]:
        from tinylm.tasks.arithmetic.data import make_pairs, split_problems

        test = split_problems(self.max_operand, self.seed)["test"]
        return make_pairs(test, len(test), self.seed + 1)  # as the trainer writes data/test.jsonl

    def _read(self, split: str) -> list[dict[str, Any]]:
        path = Path(self.data or "") / f"{split}.jsonl"
        if not path.is_file():
            raise TinyLMError(f"no {split} split: {path} not found")
        try:
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise TinyLMError(f"{path} is not JSON lines: {e}") from None

    def prompts(self, text: str) -> list[str]:
        return [text]

    def join(self, answers: list[str]) -> str:
        return answers[0]

    def length(self, example: Example) -> int:
        return example.reference.count("==") + 1  # sides in the reference chain

    def score(self, example: Example, prediction: str) -> dict[str, float]:
        from tinylm.tasks.arithmetic.checks import score

        value = example.meta.get("value")
        if value is None:
            raise TinyLMError(f"example {example.input!r} has no meta.value to check against")
        s = score(prediction, int(value))
        return {"syntactic": float(s.syntactic), "sympy": float(s.sympy), "correct": float(s.correct)}

    def taxonomy(self, example: Example, prediction: str, scores: dict[str, float]) -> list[str]:
        if scores["correct"]:
            return []
        if not scores["syntactic"]:
            return ["syntactic"]
        return ["too_short"] if "==" not in prediction else ["wrong_value"]

    def logits_processor(self, tokenizer: Any, prompts: list[str], num_beams: int) -> LogitsProcessor | None:
        from tinylm.constrain import GrammarProcessor, compile_grammar
        from tinylm.constrain.grammar import builtin

        # One grammar for every row; trained models' vocabularies are the tokenizer's (training/run.py).
        return GrammarProcessor([compile_grammar(builtin("arithmetic"), tokenizer)], num_beams=num_beams)


def create(model_extra: dict[str, Any], data: str | None, preset: str | None) -> ArithmeticTask:
    """The task for a model: its problem split comes from config.extra["arithmetic"]."""
    if preset is not None:
        raise TinyLMError("the arithmetic task has no data presets")
    info = model_extra.get("arithmetic") or {}
    from tinylm.tasks.arithmetic.data import DEFAULT_MAX_OPERAND

    return ArithmeticTask(max_operand=int(info.get("max_operand", DEFAULT_MAX_OPERAND)), seed=int(info.get("seed", 0)),
                          data=data)
