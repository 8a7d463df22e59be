"""`tinylm bench finetune`'s options are checked before anything trains (the whole bench takes half an hour)."""

from __future__ import annotations

from tinylm.cli.main import main


def test_bad_options_are_one_line_before_any_training(tmp_path, capsys) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("a previous run")
    for flags, message in ((["--eval-limit", "0"], "--eval-limit must be at least 1"),
                           (["--out", str(tmp_path / "kept")], "is not empty"),
                           (["--png", str(tmp_path / "x.png")], "does not take --png")):
        assert main(["bench", "finetune", "--json", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["old.txt"]
