"""`tinylm eval-task`: a run on a tiny model, and user mistakes as one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinylm.cli.main import main


def test_eval_task_writes_the_report(tiny_code2_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "eval"
    code = main(["eval-task", str(tiny_code2_model), "--task", "code2", "--split", "valid", "--limit", "3",
                 "--max-new-tokens", "6", "--latency-examples", "0", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# code2: valid split, 3 examples, greedy")
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["generation"]["temperature"] == 0.0
    assert report["settings"]["generation"]["max_new_tokens"] == 6


def test_handwritten_split_by_category(tiny_code2_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    """--task NAME-PRESET names the task and its preset; the hand-written set is broken down per category."""
    from tinylm.tasks.code2.handwritten import load_handwritten

    out = tmp_path / "eval"
    assert main(["eval-task", str(tiny_code2_model), "--task", "code2-thesis", "--split", "handwritten", "--limit", "4",
                 "--max-new-tokens", "6", "--latency-examples", "0", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# code2: handwritten split, 4 examples") and "## By category" in printed
    report = json.loads((out / "report.json").read_text())
    table = report["by_category"]
    assert table["all"]["n"] == 4 and set(table["all"]) == {"n", "exact_match", "exec_equal", "quotes_verbatim"}
    first = load_handwritten("thesis")[:4]
    for category in {c for ex in first for c in ex["meta"]["categories"]}:
        assert table[category]["n"] == sum(category in ex["meta"]["categories"] for ex in first)
    assert [r["input"] for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())] == [
        ex["input"] for ex in first]
    assert main(["eval-task", str(tiny_code2_model), "--task", "code2-chess", "--split", "handwritten"]) == 2
    assert "unknown task 'code2-chess'" not in capsys.readouterr().err  # the preset is what is wrong


def test_thesis_decoding_flag(tiny_code2_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "eval"
    assert main(["eval-task", str(tiny_code2_model), "--split", "test", "--limit", "2", "--max-new-tokens", "4",
                 "--latency-examples", "0", "--out", str(out), "--thesis-decoding", "--quiet"]) == 0
    g = json.loads((out / "report.json").read_text())["settings"]["generation"]
    assert (g["temperature"], g["top_p"], g["seed"]) == (0.2, 0.6, 42)
    assert "sampling, temperature 0.2, top-p 0.6, seed 42" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["eval-task", "{missing}"], "checkpoint not found"),
    (["eval-task", "{model}", "--task", "chess"], "unknown task 'chess'"),
    (["eval-task", "{model}", "--split", "dev"], "unknown split 'dev'"),
    (["eval-task", "{model}", "--limit", "0"], "--limit must be at least 1"),
    (["eval-task", "{model}", "--data", "{missing}"], "not a folder"),
])
def test_user_mistakes_exit_2_with_one_line(args, message, tiny_code2_model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture):
    argv = [a.format(missing=tmp_path / "nope", model=tiny_code2_model) for a in args]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinylm: error: ") and message in err


def test_the_task_comes_from_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture):
    """A model of no task needs --task; the message names the tasks there are."""
    from tinylm.checkpoint import save_checkpoint
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tokenizers import train_tokenizer

    tok = train_tokenizer("char", ["abc"])
    path = save_checkpoint(tmp_path / "plain", GPT(ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=16,
                                                               n_head=2, block_size=16)), tok)
    assert main(["eval-task", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "trained for no task; name one with --task (code2, arithmetic)" in capsys.readouterr().err


def test_a_task_without_evaluation_says_which_have_one(monkeypatch: pytest.MonkeyPatch):
    import dataclasses

    from tinylm.evaluation import get_task
    from tinylm.errors import TinyLMError
    from tinylm.tasks import get_plugin, registry

    bare = dataclasses.replace(get_plugin("arithmetic"), evaluation=None)
    monkeypatch.setitem(registry._loaded, "tinylm.tasks.arithmetic", bare)
    with pytest.raises(TinyLMError, match="task arithmetic has no evaluation; tasks with one: code2$"):
        get_task("arithmetic")


def test_compare_grammar(tiny_code2_model: Path, capsys: pytest.CaptureFixture):
    from tinylm.constrain import builtin

    assert main(["compare-grammar", str(tiny_code2_model), "--grammar", "code2-thesis", "--split", "valid",
                 "--limit", "2", "--max-new-tokens", "24", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "code2" and result["examples"] == 2 and set(result["modes"]) == {"free", "grammar"}
    free, grammar = result["modes"]["free"], result["modes"]["grammar"]
    assert set(free["scores"]) == {"syntax_valid", "exec_equal", "line_accuracy", "quotes_verbatim", "exact_match"}
    # Under the grammar, every answer that ended on its own is a sentence of the grammar.
    stopped = grammar["finish_reasons"].get("stop", 0) / result["prompts"]
    assert grammar["answers_in_grammar"] >= round(stopped, 4)  # the report rounds to 4 digits
    assert builtin("code2-thesis").name == result["grammar"]
    assert main(["compare-grammar", str(tiny_code2_model), "--grammar", "no-such"]) == 2
    assert "neither a built-in grammar" in capsys.readouterr().err
