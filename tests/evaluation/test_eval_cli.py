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
