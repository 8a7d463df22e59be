"""`tinylm tune` on a real PostgreSQL server: two workers, one study, at the same time."""

from __future__ import annotations

import json
import subprocess

import optuna
import pytest

from postgres_server import NoServer, postgres_server
from tune_fixtures import env, tune_command, write_space, write_tiny


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except NoServer as e:
        pytest.skip(f"no PostgreSQL server: {e}")


def test_two_workers_share_one_study_and_end_with_n_trials(tmp_path, postgres_url):
    # Trials of about 2 s (max_steps out of reach), so the two workers' trials overlap in time.
    recipe, corpus = write_tiny(tmp_path, max_steps=100_000, eval_every=20)
    space = write_space(tmp_path, {"lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    common = [str(recipe), "--data", str(corpus), "--space", str(space), "--trials", "4", "--budget-s", "2",
              "--storage", postgres_url, "--study", "two-workers", "--threads", "1", "--quiet"]
    workers = [subprocess.Popen(tune_command(*common, "--out", str(tmp_path / f"w{i}")), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err

    study = optuna.load_study(study_name="two-workers", storage=postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    counted = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == 4
    # Anything else is a surplus trial of the race for the last one, never a lost or running one.
    assert all(t.user_attrs.get("surplus") for t in study.trials if t not in counted)
    by_worker = {i: {int(p.name) for p in (tmp_path / f"w{i}" / "trials").iterdir()
                     if json.loads((p / "trial.json").read_text())["state"] in ("complete", "pruned")}
                 for i in (1, 2) if (tmp_path / f"w{i}" / "trials").is_dir()}
    assert set(by_worker) == {1, 2} and all(by_worker.values()), "both workers ran trials"
    assert by_worker[1] | by_worker[2] == {t.number for t in counted} and not by_worker[1] & by_worker[2]
    # At the same time: some trial of one worker ran while one of the other's did.
    spans = {i: [(t.datetime_start, t.datetime_complete) for t in counted if t.number in by_worker[i]] for i in (1, 2)}
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans[1] for b0, b1 in spans[2])
    # Each worker wrote the outputs of the whole study as it stood when it stopped (the first to
    # stop may still see the other's last trial running); the last to stop saw all four end.
    counts = [json.loads((tmp_path / f"w{i}" / "tune_summary.json").read_text())["counts"] for i in (1, 2)]
    assert all(c["complete"] + c["pruned"] + c["running"] == 4 for c in counts)
    assert max(c["complete"] + c["pruned"] for c in counts) == 4
