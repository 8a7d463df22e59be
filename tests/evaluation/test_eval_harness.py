"""The harness: order and joining (with an oracle in place of the model), aggregation, reports."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import tinylm
from tinylm.data.prompt_format import PromptFormat
from tinylm.errors import TinyLMError
from tinylm.evaluation import evaluate, get_task, markdown, write_report
from tinylm.evaluation.task import Example
from tinylm.generation import GenerationConfig, GenerationResult
from tinylm.tasks.code2.copy_constraint import CopiedFromInput
from tinylm.tasks.code2.task import Code2Task, line_pairs
from tinylm.tokenizers import train_tokenizer


class OracleEngine:
    """Answers every `[bos] line [sep]` prompt with `answers[line]`, as the Engine would return it."""

    def __init__(self, tokenizer, answers: dict[str, str]):
        self.tokenizer, self.answers = tokenizer, answers
        self.batches: list[int] = []
        self.processors: list = []  # what the harness passed with each batch

    def generate(self, prompts, config, logits_processor=None):
        self.batches.append(len(prompts))
        self.processors.append(logits_processor)
        out = []
        for ids in prompts:
            assert ids[0] == self.tokenizer.bos_id and ids[-1] == self.tokenizer.sep_id
            text = self.answers[self.tokenizer.decode(ids)]
            out.append(GenerationResult(self.tokenizer.encode(text) + [self.tokenizer.eos_id], text, "stop", len(ids)))
        return out


def oracle_lm(task: Code2Task, split: str, corrupt: dict[str, str] | None = None):
    examples = task.load_split(split)
    pairs = line_pairs([{"input": e.input, "output": e.reference, "meta": e.meta} for e in examples])
    answers = {p["input"]: p["output"] for p in pairs} | (corrupt or {})
    tokenizer = train_tokenizer("char", [p["input"] + p["output"] for p in pairs])
    engine = OracleEngine(tokenizer, answers)
    paired = PromptFormat("paired")  # a task model's format: the engine checks the harness used it
    encode = lambda prompts: [paired.encode(tokenizer, p) for p in prompts]  # noqa: E731
    return SimpleNamespace(tokenizer=tokenizer, engine=engine, encode_prompts=encode), engine


@pytest.fixture(scope="module")
def task() -> Code2Task:
    return Code2Task("thesis", "line", n=300)


def test_perfect_predictions_score_one(task: Code2Task):
    lm, engine = oracle_lm(task, "test")
    result = evaluate(lm, task, "test", GenerationConfig(temperature=0), batch_size=7, latency_examples=2)
    s = result.summary
    assert s["examples"] == 30
    assert s["metrics"] == pytest.approx({"exact_match": 1, "exact_match_normalized": 1, "bleu": 1, "rouge_l": 1})
    assert s["scores"] == pytest.approx({"syntax_valid": 1, "exec_equal": 1, "line_accuracy": 1, "quotes_verbatim": 1})
    assert s["errors"]["not_exact"] == 0 and not any(s["errors"]["counts"].values())
    # Lines were sorted by length into batches of 7, and came back to their examples in order.
    assert all(r["prediction"] == r["reference"] for r in result.records)
    n_lines = sum(len(e.input.split("\n")) for e in task.load_split("test"))
    assert sum(engine.batches[: -2]) == n_lines and max(engine.batches) == 7
    assert sum(r["examples"] for r in s["by_length"]) == 30
    # Every batch was decoded under the task's constraint, built for that batch's lines.
    assert all(isinstance(p, CopiedFromInput) for p in engine.processors)
    assert [len(p.pieces) for p in engine.processors] == engine.batches
    engine.processors.clear()
    evaluate(lm, task, "test", GenerationConfig(temperature=0), limit=3, latency_examples=0, constrained=False)
    assert engine.processors and all(p is None for p in engine.processors)


def test_errors_are_counted_and_classified(task: Code2Task):
    examples = task.load_split("test")
    target = next(e for e in examples if e.reference.split("\n")[0].startswith("ADDS"))
    first_in, first_out = target.input.split("\n")[0], target.reference.split("\n")[0]
    mnemonic, regs = first_out.split(" ")
    d, s, t = regs.split(",")
    wrong_dest = f"{mnemonic} {'r0' if d != 'r0' else 'r1'},{s},{t}"
    lm, _ = oracle_lm(task, "test", corrupt={first_in: wrong_dest})
    result = evaluate(lm, task, "test", GenerationConfig(temperature=0), latency_examples=0)
    bad = [r for r in result.records if not r["exact_match"]]
    assert bad and all(first_in in r["input"].split("\n") for r in bad)
    for r in bad:
        assert {"semantic", "wrong_register"} <= set(r["errors"])
    counts = result.summary["errors"]["counts"]
    assert counts["semantic"] == counts["wrong_register"] == len(bad)
    assert result.summary["scores"]["exec_equal"] == pytest.approx(1 - len(bad) / 30)


def test_tiny_model_end_to_end_writes_json_markdown_png(tiny_code2_model: Path, tmp_path: Path):
    lm = tinylm.load(tiny_code2_model)
    task = get_task("code2", model_extra=lm.model.config.extra)
    assert (task.preset, task.unit, task.n) == ("thesis", "line", 60)
    config = GenerationConfig(temperature=0, max_new_tokens=8)
    result = evaluate(lm, task, "test", config, limit=4, latency_examples=1)
    paths = write_report(result, tmp_path / "report", extra={"model": "tiny"})
    report = json.loads(paths["json"].read_text())
    assert report["examples"] == 4 and report["split"] == "test"
    assert set(report["metrics"]) == {"exact_match", "exact_match_normalized", "bleu", "rouge_l"}
    assert set(report["scores"]) == {"syntax_valid", "exec_equal", "line_accuracy", "quotes_verbatim"}
    assert report["anchor"]["metrics"]["exact_match_normalized"] == 0.83
    assert report["speed"]["generated_tokens"] > 0 and report["speed"]["latency_s"]["examples"] == 1
    assert len(paths["predictions"].read_text().splitlines()) == 4
    md = paths["markdown"].read_text()
    assert "| exact match (strict) |" in md and "0.9922" in md and "## Accuracy by length" in md
    assert md == markdown(result, {"model": "tiny"})
    for chart in (paths["length_chart"], paths["error_chart"]):
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_are_user_errors(task: Code2Task):
    with pytest.raises(TinyLMError, match="unknown split"):
        task.load_split("dev")
    with pytest.raises(TinyLMError, match="unknown task"):
        get_task("chess")
    lm, _ = oracle_lm(task, "test")
    with pytest.raises(TinyLMError, match="limit"):
        evaluate(lm, task, "test", GenerationConfig(temperature=0), limit=0)
    assert Example("a", "b").meta == {}


def test_published_figures_sit_beside_the_test_split_only(tiny_code2_model: Path):
    """The thesis's figures are on its test split: a report on another split does not show them."""
    lm = tinylm.load(tiny_code2_model)
    task = get_task("code2", model_extra=lm.model.config.extra)
    config = GenerationConfig(temperature=0, max_new_tokens=8)
    on_test = evaluate(lm, task, "test", config, limit=1, latency_examples=0)
    assert on_test.anchor is not None and "UGR thesis" in markdown(on_test)
    other = evaluate(lm, task, "handwritten", config, limit=1, latency_examples=0)
    assert other.anchor is None and "UGR thesis" not in markdown(other)
