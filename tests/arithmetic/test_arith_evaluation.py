"""The arithmetic task in the shared evaluation harness (`tinylm eval-task --task arithmetic`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tinylm.cli.main import main
from tinylm.evaluation.task import Example
from tinylm.tasks.arithmetic.data import Problem, all_problems, make_pairs, split_problems
from tinylm.tasks.arithmetic.evaluation import ArithmeticTask, create

pytest.importorskip("lark")
pytest.importorskip("sympy")
pytest.importorskip("xgrammar")


def test_test_split_is_the_unseen_problems_with_the_study_problem():
    task = create({"arithmetic": {"max_operand": 12, "seed": 3}}, None, None)
    examples = task.load_split("test")
    splits = split_problems(12, 3)
    train_prompts = {p.prompt for p in splits["train"]}
    assert len(examples) == len(splits["test"]) and not {e.input for e in examples} & train_prompts
    assert Problem(9, "*", 15).prompt not in train_prompts  # (12 < 15: the study problem is out of range here)
    assert len(task.load_split("test", limit=5)) == 5


def test_references_score_correct_and_corruptions_are_classified():
    task = ArithmeticTask(max_operand=20, seed=0)
    for e in task.load_split("test"):
        scores = task.score(e, e.reference)
        assert scores == {"syntactic": 1.0, "sympy": 1.0, "correct": 1.0}
        assert task.taxonomy(e, e.reference, scores) == []
    e = Example("Rewrite 9 * 15", "(9*15)==(135)", {"value": 135})
    wrong = task.score(e, "(9*15)==(136)")
    assert wrong["syntactic"] == 1.0 and wrong["correct"] == 0.0
    assert task.taxonomy(e, "(9*15)==(136)", wrong) == ["wrong_value"]
    broken = task.score(e, "(9*15)==(13")
    assert task.taxonomy(e, "(9*15)==(13", broken) == ["syntactic"]


def test_unknown_split_and_missing_data_are_one_line_errors(tmp_path: Path):
    from tinylm.errors import TinyLMError

    with pytest.raises(TinyLMError, match="unknown arithmetic split 'valid'"):
        ArithmeticTask(20, 0).load_split("valid")
    with pytest.raises(TinyLMError, match="no test split"):
        ArithmeticTask(20, 0, data=str(tmp_path)).load_split("test")
    with pytest.raises(TinyLMError, match="no data presets"):
        create({}, None, "thesis")


def test_eval_task_on_an_arithmetic_checkpoint_decodes_in_the_grammar(tmp_path: Path, capsys: pytest.CaptureFixture):
    """An untrained model writes noise; held by the arithmetic grammar, every answer it
    finishes is in the grammar. The report carries the task's three measures."""
    from tinylm.checkpoint import save_checkpoint
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tokenizers import train_tokenizer

    pairs = make_pairs(all_problems(20), 300, seed=0)
    tok = train_tokenizer("char", [f"{p['input']}\n{p['output']}" for p in pairs])
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=32))
    model.config.extra.update({"task": "arithmetic", "arithmetic": {"max_operand": 20, "seed": 0}})
    path = save_checkpoint(tmp_path / "model", model, tok)
    out = tmp_path / "eval"
    assert main(["eval-task", str(path), "--limit", "4", "--latency-examples", "0", "--max-new-tokens", "60",
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["examples"] == 4 and {"syntactic", "sympy", "correct"} <= set(report["scores"])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    allowed = set("0123456789+-*/()= ")
    assert all(set(r["prediction"]) <= allowed for r in rows), [r["prediction"] for r in rows]
