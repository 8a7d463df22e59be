"""`tinylm bench finetune`'s options are checked before anything trains (the whole bench takes an
hour), and a study folder runs in pieces: the base is trained once and reused, rows are kept."""

from __future__ import annotations

import json

import pytest

from tinylm.bench import finetune
from tinylm.cli.main import main
from tinylm.errors import TinyLMError


def test_bad_options_are_one_line_before_any_training(tmp_path, capsys) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("a previous run")
    for flags, message in ((["--eval-limit", "0"], "--eval-limit must be at least 1"),
                           (["--base-budget-s", "0"], "--budget-s and --base-budget-s must be positive"),
                           (["--budget-s", "-5"], "--budget-s and --base-budget-s must be positive"),
                           (["--variants", "lora", "dora"], "unknown finetune row(s) dora; rows: base, full, lora"),
                           (["--out", str(tmp_path / "kept")], "is not empty and holds no finetune study"),
                           (["--out", str(tmp_path / "kept" / "old.txt")], "is not a folder"),
                           (["--png", str(tmp_path / "x.png")], "does not take --png")):
        assert main(["bench", "finetune", "--json", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["old.txt"]


def test_a_study_runs_in_pieces_reusing_its_base(tmp_path, capsys) -> None:
    out = tmp_path / "study"
    first = finetune.run(quick=True, budget_s=1, out=str(out), variants=["prompt"])
    assert list(first["rows"]) == ["prompt"] and first["met"] is None  # no full, no LoRA row yet
    weights = out / "base" / "model" / "model.safetensors"
    stamp, prompt_row = weights.stat().st_mtime_ns, (out / "rows" / "prompt.json").read_text()
    (out / "adapter").mkdir()  # an adapter run cut short: started again
    (out / "adapter" / "half-written.txt").write_text("x")

    second = finetune.run(quick=True, budget_s=1, out=str(out), variants=["adapter", "prompt"])
    assert list(second["rows"]) == ["adapter", "prompt"]  # in the table's order
    assert weights.stat().st_mtime_ns == stamp  # the base was not trained again
    assert (out / "rows" / "prompt.json").read_text() == prompt_row  # a measured row is kept, not rerun
    assert not (out / "adapter" / "half-written.txt").exists()
    config = json.loads((out / "adapter" / "adapter" / "adapter_config.json").read_text())
    assert config["base"]["path"] == str(out / "base" / "model")
    assert second["rows"]["adapter"]["trainable_parameters"] == config["trainable_parameters"] > 0

    # Other settings on the same folder: one line, exit 2, nothing touched.
    assert main(["bench", "finetune", "--quick", "--budget-s", "2", "--base-budget-s", "1", "--out", str(out), "--variants", "full"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a study with other settings (budget_s 1.0 there, 2.0 here)" in err and len(err.splitlines()) == 1
    assert not (out / "full").exists()
    with pytest.raises(TinyLMError, match="base_budget_s 1.0 there, 5.0 here"):
        finetune.run(quick=True, budget_s=1, base_budget_s=5, out=str(out), variants=["lora"])


def test_the_lora_goal_needs_one_lora_row_meeting_both_parts() -> None:
    rows = {"full": {"exact_match": 0.50},
            "lora": {"trainable_share": 0.03, "exact_match": 0.40},  # small enough, too far below full
            "lora16": {"trainable_share": 0.16, "exact_match": 0.49}}  # close enough, too many parameters
    goals = finetune._goals(rows)
    assert goals["met"] is False
    assert goals["lora_rows"]["lora"] == {"trainable_share": 0.03, "em_gap_to_full": 0.1, "share_met": True,
                                          "gap_met": False}
    assert goals["lora_rows"]["lora16"]["share_met"] is False and goals["lora_rows"]["lora16"]["gap_met"] is True
    rows["lora"]["exact_match"] = 0.485
    assert finetune._goals(rows)["met"] is True
    assert finetune._goals({"lora": rows["lora"]})["met"] is None
