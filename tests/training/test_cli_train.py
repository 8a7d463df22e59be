"""`tinylm train` end to end, in-process, on corpora small enough to train in a second or two."""

import json

import pytest

from tinylm.cli import main as cli
from tinylm.training.metrics_log import read_metrics

from train_toys import PATTERN

TINY = ["--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2", "--set", "block_size=16"]
FAST = [
    "--batch-size", "8", "--eval-every", "10", "--eval-batches", "2", "--save-every", "10", "--log-every", "5",
    "--warmup-steps", "2", "--threads", "1", "--no-tensorboard", "--sample-tokens", "12", "--quiet",
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(PATTERN * 30, encoding="utf-8")
    return path


def _err_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinylm: error: ") and "\n" not in err, err
    return err


def test_train_is_a_registered_command():
    assert "tinylm.cli.train" in cli.COMMAND_MODULES


def test_train_then_resume_on_a_text_file(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "--data", str(corpus), *TINY, "--out", str(out), "--max-steps", "20", *FAST])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "stopped (max_steps) at step 20" in stdout and "--- sample 1:" in stdout
    for name in ("train.bin", "val.bin", "test.bin", "meta.json", "tokenizer.json"):
        assert (out / "data" / name).is_file()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_state"):
        assert (out / "last" / name).exists()
    assert (out / "best" / "model.safetensors").is_file() and (out / "loss.png").is_file()
    config = json.loads((out / "last" / "config.json").read_text())
    assert (config["n_layer"], config["block_size"], config["extra"]["preset"]) == (1, 16, "gpt2-style-nano")

    # Resume for longer: model, data and settings come from the run folder; --max-steps overrides.
    assert cli.main(["train", "--out", str(out), "--resume", "--max-steps", "30", "--samples", "0", "--quiet"]) == 0
    assert "stopped (max_steps) at step 30" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r] == [5, 10, 15, 20, 25, 30]
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["max_steps"], saved["batch_size"]) == (30, 8)


def test_train_on_pairs(tmp_path, capsys):
    rows = [{"input": f"{a}+{b}", "output": str(a + b)} for a in range(10) for b in range(10)]
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:90]), encoding="utf-8")
    val.write_text("".join(json.dumps(r) + "\n" for r in rows[90:]), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--pairs", str(train), "--val-pairs", str(val), *TINY, "--out", str(out),
            "--max-steps", "10", "--samples", "2", *FAST]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "--- sample 1: '9+0' ->" in stdout and "--- sample 2: '9+1' ->" in stdout  # answers the first validation prompts
    assert (out / "data" / "train.jsonl").read_bytes() == train.read_bytes()
    assert any("val_loss" in r for r in read_metrics(out / "metrics.jsonl"))
    assert cli.main(["train", "--out", str(out), "--resume", "--max-steps", "12", "--samples", "0", "--quiet"]) == 0


def test_pairs_without_validation_train_and_sample_from_train_prompts(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"input": f"{a}*2", "output": str(2 * a)}) + "\n" for a in range(20)), encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["train", "--pairs", str(train), *TINY, "--out", str(out), "--max-steps", "4", *FAST]) == 0
    stdout = capsys.readouterr().out
    assert "best val loss" not in stdout and "--- sample 1: '0*2' ->" in stdout
    assert not (out / "best").exists() and (out / "last" / "train_state").is_dir()


@pytest.mark.parametrize("argv, message", [
    (["--data", "{missing}"], "not found"),
    (["--data", "{empty}"], "empty"),
    (["--data", "{corpus}", "--preset", "gpt5-huge"], "unknown preset"),
    (["--data", "{corpus}", "--set", "n_layer=zero"], "n_layer"),
    (["--data", "{corpus}", "--set", "n_layers=2"], "unknown model key(s) n_layers"),
    (["--data", "{corpus}", "--set", "n_layer"], "KEY=VALUE"),
    (["--data", "{corpus}", "--set", "vocab_size=99"], "vocab_size"),
    (["--data", "{corpus}", "--lr", "-1"], "lr"),
    (["--data", "{corpus}", "--dtype", "float16"], "dtype"),
    (["--data", "{corpus}", "--tokenizer", "char", "--vocab-size", "300"], "vocab_size"),
    (["--data", "{corpus}", "--set", "block_size=512"], "corpus too small"),
    (["--data", "{corpus}", "--shakespeare"], "exactly one data source"),
    ([], "exactly one data source"),
    (["--pairs", "{corpus}"], "not valid JSON"),
    (["--resume"], "nothing to resume"),
    (["--shakespeare-path", "{corpus}"], "not Tiny Shakespeare"),
    (["--data", "{corpus}", "--val-pairs", "{corpus}"], "--val-pairs goes with --pairs"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, corpus, capsys, argv, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    paths = {"missing": tmp_path / "nope.txt", "empty": empty, "corpus": corpus}
    argv = [a.format(**paths) for a in argv]
    assert cli.main(["train", *argv, "--out", str(tmp_path / "run"), "--max-steps", "2", *FAST]) == 2
    assert message in _err_line(capsys)


def test_existing_run_needs_resume_and_resume_takes_no_data_flags(tmp_path, corpus, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "--data", str(corpus), *TINY, "--out", out, "--max-steps", "2", *FAST]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--data", str(corpus), *TINY, "--out", out, "--max-steps", "2", *FAST]) == 2
    assert "--resume" in _err_line(capsys)
    assert cli.main(["train", "--data", str(corpus), "--out", out, "--resume", *FAST]) == 2
    assert "drop --data" in _err_line(capsys)


def test_recipe_sets_preset_tokenizer_and_training_but_flags_win(tmp_path, corpus):
    from tinylm.presets import RECIPES

    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--recipe", "shakespeare-char", "--set", "block_size=16",
            "--out", str(out), "--max-steps", "2", *FAST]
    assert cli.main(argv) == 0
    saved = json.loads((out / "train_config.json").read_text())
    wanted = RECIPES["shakespeare-char"]["train"]
    assert saved["lr"] == wanted["lr"] and saved["weight_decay"] == wanted["weight_decay"]
    assert saved["batch_size"] == 8  # given in FAST
    assert saved["max_steps"] == 2  # the explicit flag beats the recipe
    config = json.loads((out / "last" / "config.json").read_text())
    assert config["position"] == "rope" and config["block_size"] == 16


def test_train_with_a_sentencepiece_tokenizer(tmp_path, capsys):
    from tinylm.tokenizers import load_tokenizer

    corpus = tmp_path / "corpus.txt"
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * i}.\n" for i in range(300))
    corpus.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--tokenizer", "sentencepiece", "--vocab-size", "320", *TINY,
            "--out", str(out), "--max-steps", "4", *FAST]
    assert cli.main(argv) == 0
    tok = load_tokenizer(out / "last")
    assert (tok.kind, tok.vocab_size) == ("sentencepiece", 320)
    assert json.loads((out / "last" / "config.json").read_text())["vocab_size"] == 320
    assert json.loads((out / "recipe.json").read_text())["tokenizer"] == "sentencepiece"
    assert tok.decode(tok.encode(text)) == text



def test_time_budget_fits_the_schedule_warmup_included():
    """`tinylm train --time-budget` hands the trainer a FitScheduleToBudget that shrinks the
    warm-up with the schedule (its arithmetic: tests/training/test_training_schedule.py);
    without a budget, the recipe's schedule is left alone. No clock here: the fit itself is
    checked on a fake trainer, so the test does not depend on the machine's speed."""
    from tinylm.cli.train import _budget_fit
    from tinylm.training.config import TrainConfig
    from tinylm.training.schedule import FitScheduleToBudget

    assert _budget_fit(TrainConfig(out_dir="x", max_steps=8000, warmup_steps=1000)) == []
    [fit] = _budget_fit(TrainConfig(out_dir="x", max_steps=8000, warmup_steps=1000, time_budget_s=900.0))
    assert isinstance(fit, FitScheduleToBudget)
    assert (fit.budget_s, fit.reserve_s, fit.max_steps, fit.warmup_steps) == (900.0, 27.0, 8000, 1000)
