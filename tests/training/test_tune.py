"""`tinylm tune`: the search space, a study in SQLite (trials, pruning, best recipe, plots),
resuming after a killed worker, and bad input as one line (exit 2, nothing left behind)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import warnings

import optuna
import pytest

from tinylm.cli.main import main
from tinylm.errors import TinyLMError
from tinylm.training.recipe import load_recipe
from tinylm.training.tune import (SPACES, TrialData, TuneSettings, Tuner, apply_params, check_space, load_space,
                                  space_from_dict)
from tune_fixtures import LR_SPACE, env, run_tune, tune_command, write_space, write_tiny


# -- the space -----------------------------------------------------------------------------


def test_the_built_in_spaces_are_the_thesis_table_3_4():
    full = {p.key: p for p in load_space("full").params}
    assert full["batch_size"].choices == (4, 8, 16, 32) and full["grad_accum"].choices == (1, 2, 4, 8)
    assert (full["lr"].low, full["lr"].high, full["weight_decay"].low, full["weight_decay"].high) == (1e-4, 3e-4, 0, 1e-3)
    lora = {p.key: p for p in load_space("lora").params}
    assert lora["lora.r"].choices == (4, 8, 16, 64) and lora["lora.alpha"].choices[-1] == 1024
    assert (lora["lora.dropout"].low, lora["lora.dropout"].high) == (0.0, 0.3)
    check_space(load_space("full"), load_recipe("code2-thesis"))  # every key is a train config field
    scratch = {p.key: p for p in load_space("scratch").params}
    assert scratch["lr"].low == 1e-3 and scratch["lr"].high == 1e-2 and scratch["lr"].log  # not table 3.4's 1e-4..3e-4
    check_space(load_space("scratch"), load_recipe("code2-thesis"))  # train fields and model.dropout exist
    with pytest.raises(TinyLMError, match="tinylm finetune"):
        check_space(load_space("lora"), load_recipe("code2-thesis"))


def test_the_cli_names_the_built_in_spaces_without_importing_them():
    from tinylm.cli.tune import SPACE_NAMES

    assert SPACE_NAMES == tuple(SPACES)


def test_a_toml_space_with_sections_round_trips(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('lr = {low = 1e-4, high = 1e-2, log = true}\nbatch_size = [8, 16]\n'
                    '[model]\ndropout = {low = 0.0, high = 0.2}\n[task]\nerror_weight = {low = 1, high = 3}\n')
    space = load_space(str(path))
    assert {p.key for p in space.params} == {"lr", "batch_size", "model.dropout", "task.error_weight"}
    assert space_from_dict("again", space.to_dict()) == space.__class__("again", space.params)
    recipe = load_recipe("code2-thesis")
    check_space(space, recipe)
    tuned = apply_params(recipe, {"lr": 1e-3, "model.dropout": 0.1, "task.error_weight": 2})
    assert tuned.model["dropout"] == 0.1 and tuned.settings.error_weight == 2 and tuned.train["lr"] == 1e-3
    # min_lr follows lr at the recipe's ratio (3e-3 -> 3e-4), so a low sampled lr stays valid
    assert tuned.train["min_lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": [1e-3]}, "unknown train config key learning_rate"),
    ({"model": {"depth": [2]}}, "unknown model section key depth"),
    ({"lr": {"low": 1e-2, "high": 1e-3}}, "low .* must be below high"),
    ({"lr": {"low": 0, "high": 1e-3, "log": True}}, "log range needs low > 0"),
    ({"batch_size": [0, 8]}, "batch_size = 0 makes a bad recipe"),
    ({"optimizer": {"low": 1, "high": 2, "step": 1}}, "unknown range field"),
    ({"lora": {"r": [4, 8]}}, "tinylm finetune"),
])
def test_bad_spaces_are_one_line(tmp_path, space, message):
    recipe, _ = write_tiny(tmp_path)
    with pytest.raises(TinyLMError, match=message):
        check_space(space_from_dict("s", space), load_recipe(str(recipe)))


def test_cli_unknown_space_key_exits_2_and_leaves_nothing(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    space = write_space(tmp_path, {"lr": [1e-3], "colour": ["red"]})
    out = tmp_path / "tune"
    code = main(["tune", str(recipe), "--data", str(corpus), "--space", str(space), "--trials", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown train config key colour" in err
    assert not out.exists()


def test_cli_unreachable_postgres_exits_2_and_leaves_nothing(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    out = tmp_path / "tune"
    # port 1 on localhost: nothing listens there, so the connection is refused at once
    url = "postgresql://someone:secret@127.0.0.1:1/optuna"
    code = main(["tune", str(recipe), "--data", str(corpus), "--trials", "2", "--storage", url, "--out", str(out)])
    err = capsys.readouterr().err
    # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; without it tinylm names psycopg2's driver
    assert code == 2 and err.count("\n") == 1 and "cannot open storage postgresql" in err
    assert "someone:***@127.0.0.1:1/optuna" in err
    assert "secret" not in err and not out.exists()


def test_cli_unknown_set_key_exits_2(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    code = main(["tune", str(recipe), "--data", str(corpus), "--trials", "1", "--set", "model.depth=2",
                 "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown model section key depth" in err and not (tmp_path / "t").exists()


def test_exact_match_needs_a_task_recipe(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    code = main(["tune", str(recipe), "--data", str(corpus), "--trials", "1", "--metric", "exact_match",
                 "--out", str(tmp_path / "t")])
    assert code == 2 and "needs a task recipe" in capsys.readouterr().err


def test_exact_match_is_the_task_evaluation_of_the_trial_model_on_the_validation_split(tmp_path, capsys):
    recipe = tmp_path / "code2-tiny.json"
    recipe.write_text(json.dumps({
        "name": "code2-tiny", "preset": "llama-style-nano", "tokenizer": "char",
        "model": {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_kv_head": None, "block_size": 200},
        "train": {"max_steps": 6, "batch_size": 8, "warmup_steps": 1, "eval_every": 3, "eval_batches": 1,
                  "log_every": 3, "num_threads": 1},
        "task": {"name": "code2", "n": 40, "em_blocks": 2, "final_blocks": 2}}))
    out = tmp_path / "tune"
    space = write_space(tmp_path, LR_SPACE)
    assert main(["tune", str(recipe), "--space", str(space), "--trials", "1", "--metric", "exact_match",
                 "--eval-limit", "3", "--quiet", "--out", str(out)]) == 0
    trial = json.loads((out / "trials" / "0000" / "trial.json").read_text())
    assert trial["metric"] == "exact_match" and trial["model_dir"].endswith("model")
    # The same figure from `tinylm eval-task` on the trial's model (validation split, 3 examples).
    report = tmp_path / "eval"
    assert main(["eval-task", trial["model_dir"], "--split", "valid", "--limit", "3", "--latency-examples", "0",
                 "--quiet", "--out", str(report)]) == 0
    assert trial["value"] == json.loads((report / "report.json").read_text())["metrics"]["exact_match"]
    assert json.loads((out / "tune_summary.json").read_text())["direction"] == "maximize"


def test_task_exact_match_agrees_with_eval_task(tiny_code2_model, tmp_path):
    """On a model that gets some lines right (the shared tiny CODE-2 model), not only zeros."""
    from tinylm.training.tune import task_exact_match

    report = tmp_path / "eval"
    assert main(["eval-task", str(tiny_code2_model), "--split", "valid", "--limit", "8", "--latency-examples", "0",
                 "--quiet", "--out", str(report)]) == 0
    expected = json.loads((report / "report.json").read_text())["metrics"]["exact_match"]
    assert task_exact_match(tiny_code2_model, 8) == expected


# -- a study -------------------------------------------------------------------------------


def test_a_study_in_sqlite_writes_trials_plots_and_a_best_recipe_train_accepts(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    out = tmp_path / "tune"
    code = main(["tune", str(recipe), "--data", str(corpus), "--space", "full", "--trials", "2", "--seed", "0",
                 "--threads", "1", "--set", "eval_batches=1", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert {"study.db", "optimization_history.png", "param_importances.png", "best_recipe.json",
            "tune_summary.json"} <= {p.name for p in out.iterdir()}
    for png in ("optimization_history.png", "param_importances.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An independent reading of the study: each trial's value is its run's best validation loss.
    trials = {int(p.name): json.loads((p / "trial.json").read_text()) for p in (out / "trials").iterdir()}
    assert sorted(trials) == [0, 1] and all(t["state"] == "complete" for t in trials.values())
    for number, t in trials.items():
        run = out / "trials" / f"{number:04d}" / "run"
        assert t["value"] == json.loads((run / "summary.json").read_text())["best_val_loss"]
        assert json.loads((run / "train_config.json").read_text())["eval_batches"] == 1  # --set reached the trial
    best_number = min(trials, key=lambda n: trials[n]["value"])
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert study.best_trial.number == best_number and len(study.trials) == 2
    assert f"| {best_number} * | complete |" in printed
    # The best recipe is the base recipe with the best trial's values, and `tinylm train` takes it.
    best = json.loads((out / "best_recipe.json").read_text())
    for key, value in trials[best_number]["params"].items():
        assert best["train"][key] == value
    assert main(["train", "--recipe", str(out / "best_recipe.json"), "--data", str(corpus), "--max-steps", "2",
                 "--samples", "0", "--quiet", "--out", str(tmp_path / "retrain")]) == 0
    saved = json.loads((tmp_path / "retrain" / "train_config.json").read_text())
    assert saved["lr"] == best["train"]["lr"] and saved["batch_size"] == best["train"]["batch_size"]


def test_a_trial_worse_than_the_median_is_pruned_at_an_evaluation(tmp_path):
    recipe, corpus = write_tiny(tmp_path)
    out = tmp_path / "tune"
    settings = TuneSettings(out_dir=str(out), trials=2, pruner_startup=1, quiet=True)
    tuner = Tuner(load_recipe(str(recipe)), space_from_dict("lr", LR_SPACE), settings, TrialData([corpus]))
    study = tuner.open()
    study.enqueue_trial({"lr": 3e-3})  # learns: sets the median
    study.enqueue_trial({"lr": 1e-6})  # barely moves: worse than the median at its first evaluation
    summary = tuner.run()
    assert summary["counts"] == {"complete": 1, "pruned": 1, "fail": 0, "running": 0}
    pruned = json.loads((out / "trials" / "0001" / "trial.json").read_text())
    assert pruned["state"] == "pruned" and pruned["pruned_at_step"] == 4  # the first evaluation (eval_every 4)
    assert not (out / "trials" / "0001" / "run" / "last").exists()  # stopped before the end-of-run save
    assert summary["trials"][1]["pruned_at_step"] == 4 and summary["best"]["number"] == 0
    assert "parameter importance needs at least 2 completed trials (1 so far)" in summary["notes"][0]
    assert not (out / "param_importances.png").exists()


def test_a_rerun_continues_the_study_and_refuses_other_settings(tmp_path, capsys):
    recipe, corpus = write_tiny(tmp_path)
    space = write_space(tmp_path, LR_SPACE)
    out = tmp_path / "tune"
    args = ["tune", str(recipe), "--data", str(corpus), "--space", str(space), "--quiet", "--out", str(out)]
    assert main([*args, "--trials", "1"]) == 0
    assert main([*args, "--trials", "2"]) == 0
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001"]
    capsys.readouterr()
    other = write_space(tmp_path, {"lr": [1e-3, 1e-4]}, "other.json")
    assert main([*args[:5], str(other), *args[6:], "--trials", "3"]) == 2
    assert "searches with another space" in capsys.readouterr().err


def test_a_rerun_fails_the_running_trial_of_a_dead_local_worker(tmp_path):
    recipe, corpus = write_tiny(tmp_path)
    out = tmp_path / "tune"
    settings = TuneSettings(out_dir=str(out), trials=1, quiet=True)
    tuner = Tuner(load_recipe(str(recipe)), space_from_dict("lr", LR_SPACE), settings, TrialData([corpus]))
    study = tuner.open()
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: "heartbeat is supposed to be used with Study.optimize"
        orphan = study.ask()
        alive = study.ask()  # a worker that is still running (this one) must be left alone
    orphan.set_user_attr("host", socket.gethostname())
    orphan.set_user_attr("pid", dead.pid)
    alive.set_user_attr("host", socket.gethostname())
    alive.set_user_attr("pid", os.getpid())
    assert tuner.fail_dead_local_trials() == [orphan.number]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "RUNNING"]
    assert study.get_trials()[0].user_attrs["fail_reason"] == "its worker was killed"


@pytest.mark.slow
def test_a_killed_worker_leaves_the_study_usable_and_a_rerun_finishes_it(tmp_path):
    # Trials of a 5 s budget (max_steps out of reach): the worker is killed inside its first.
    recipe, corpus = write_tiny(tmp_path, max_steps=100_000, eval_every=50)
    space = write_space(tmp_path, LR_SPACE)
    out = tmp_path / "tune"
    args = [str(recipe), "--data", str(corpus), "--space", str(space), "--trials", "2", "--budget-s", "5",
            "--out", str(out)]
    worker = subprocess.Popen(tune_command(*args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "trials" / "0000"
    deadline = time.monotonic() + 120
    while not (first / "run" / "metrics.jsonl").exists():  # training has begun
        assert worker.poll() is None and time.monotonic() < deadline, "the worker never started its trial"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert json.loads((first / "trial.json").read_text())["state"] == "running"
    storage = f"sqlite:///{out / 'study.db'}"
    assert optuna.load_study(study_name="tiny", storage=storage).trials[0].state.name == "RUNNING"

    rerun = run_tune(*args, "--quiet", timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert json.loads((first / "trial.json").read_text())["state"] == "failed"
    assert "2 complete, 0 pruned, 1 failed, 0 running" in rerun.stdout


def test_a_diverged_trial_fails_alone_and_a_fault_in_every_trial_stops_the_worker(tmp_path):
    recipe, corpus = write_tiny(tmp_path)
    space = space_from_dict("lr", {"lr": [1e6, 3e-3]})  # lr 1e6: the loss is not finite within a few steps
    out = tmp_path / "tune"
    tuner = Tuner(load_recipe(str(recipe)), space, TuneSettings(out_dir=str(out), trials=1, quiet=True),
                  TrialData([corpus]))
    study = tuner.open()
    for lr in (1e6, 1e6, 3e-3):
        study.enqueue_trial({"lr": lr})
    summary = tuner.run()
    assert [t["state"] for t in summary["trials"]] == ["fail", "fail", "complete"]
    assert "training diverged" in summary["trials"][0]["note"]
    assert json.loads((out / "trials" / "0000" / "trial.json").read_text())["state"] == "failed"

    every = Tuner(load_recipe(str(recipe)), space_from_dict("lr", {"lr": [1e6]}),
                  TuneSettings(out_dir=str(tmp_path / "tune2"), trials=5, quiet=True), TrialData([corpus]))
    with pytest.raises(TinyLMError, match="3 trials in a row failed, stopping; the last: training diverged"):
        every.run()
    assert len(every.study.trials) == 3


def test_a_pairs_recipe_tunes_on_its_validation_pairs(tmp_path):
    recipe, _ = write_tiny(tmp_path)
    rows = [{"input": f"say {w}", "output": w} for w in ("ab", "ba", "aab", "bba")] * 10
    for name in ("train.jsonl", "val.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "tune"
    assert main(["tune", str(recipe), "--pairs", str(tmp_path / "train.jsonl"), "--space", str(write_space(tmp_path, LR_SPACE)),
                 "--trials", "1", "--quiet", "--out", str(out)]) == 2  # no --val-pairs: nothing to compare trials on
    assert not out.exists()
    assert main(["tune", str(recipe), "--pairs", str(tmp_path / "train.jsonl"), "--val-pairs", str(tmp_path / "val.jsonl"),
                 "--space", str(tmp_path / "space.json"), "--trials", "1", "--quiet", "--out", str(out)]) == 0
    trial = json.loads((out / "trials" / "0000" / "trial.json").read_text())
    assert trial["state"] == "complete" and trial["value"] > 0
