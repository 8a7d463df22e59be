"""Multi-process training (torchrun, DDP or FSDP on gloo): 2 processes with batch b follow 1
process with batch 2b, resume exactly, and only rank 0 writes. One torchrun launch (ddp_worker.py)
runs every multi-process training; the single-process reference runs here."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from tinylm.cli import main as cli
from tinylm.training import Trainer
from tinylm.training.metrics_log import read_metrics

import ddp_worker
from train_toys import pattern_data, random_data, tiny_model, tiny_train_config

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def torchrun_env() -> dict[str, str]:
    path = os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(HERE / "ddp_worker.py"), str(base)]
    done = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return base


def losses(out_dir: Path, key: str = "loss") -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in read_metrics(out_dir / "metrics.jsonl") if key in r]


def weights(out_dir: Path) -> dict:
    return load_file(str(out_dir / "last" / "model.safetensors"))


def test_two_processes_with_batch_b_match_one_with_batch_2b(ddp_runs, tmp_path):
    cfg = tiny_train_config(tmp_path / "single", max_steps=20, batch_size=2 * ddp_worker.PER_RANK_BATCH,
                            grad_accum=ddp_worker.GRAD_ACCUM)
    Trainer(tiny_model(0), pattern_data(), random_data(), cfg, quiet=True).fit()
    single, ddp = losses(tmp_path / "single"), losses(ddp_runs / "straight")
    assert [s for s, _ in ddp] == list(range(1, 21))
    assert [s for s, _ in single] == [s for s, _ in ddp]
    assert max(abs(a - b) for (_, a), (_, b) in zip(single, ddp)) < 1e-5
    assert single[-1][1] < single[0][1] - 0.5  # it did train: a flat curve would match trivially
    val_single, val_ddp = losses(tmp_path / "single", "val_loss"), losses(ddp_runs / "straight", "val_loss")
    assert len(val_ddp) == 4 and max(abs(a - b) for (_, a), (_, b) in zip(val_single, val_ddp)) < 1e-5
    w1, w2 = weights(tmp_path / "single"), weights(ddp_runs / "straight")
    # Adam divides by sqrt(v): gradients summed in another order (all-reduce) move weights by
    # ~1e-5 in 20 steps of lr 3e-3; a wrong batch or a missing gradient average moves them by ~lr.
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4
    tokens = [r["tokens"] for r in read_metrics(ddp_runs / "straight" / "metrics.jsonl") if "loss" in r]
    assert tokens[0] == 2 * ddp_worker.PER_RANK_BATCH * ddp_worker.GRAD_ACCUM * 16  # counted over both processes


def test_fsdp_matches_ddp(ddp_runs):
    ddp, fsdp = losses(ddp_runs / "straight"), losses(ddp_runs / "fsdp-straight")
    assert [s for s, _ in fsdp] == list(range(1, 21))
    assert max(abs(a - b) for (_, a), (_, b) in zip(ddp, fsdp)) < 1e-5
    w1, w2 = weights(ddp_runs / "straight"), weights(ddp_runs / "fsdp-straight")  # saved whole, as DDP's
    assert set(w1) == set(w2) and max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4


@pytest.mark.parametrize("name", ["", "fsdp-"])
def test_resume_under_ddp_and_fsdp_is_exact(ddp_runs, name):
    straight, resumed = ddp_runs / f"{name}straight", ddp_runs / f"{name}resumed"
    assert losses(resumed) == losses(straight) and losses(resumed, "val_loss") == losses(straight, "val_loss")
    w1, w2 = weights(straight), weights(resumed)
    assert all((w1[k] == w2[k]).all() for k in w1)


def test_only_rank_0_writes(ddp_runs):
    assert json.loads((ddp_runs / "rank1_writes.json").read_text()) == []
    for name in ("last/model.safetensors", "best/model.safetensors", "metrics.jsonl", "loss.png", "train_config.json"):
        assert (ddp_runs / "straight" / name).is_file()


def test_nproc_above_the_cores_needs_force(tmp_path, capsys):
    rc = cli.main(["train", "--data", str(tmp_path / "x.txt"), "--out", str(tmp_path / "run"), "--nproc", "1000"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("tinylm: error: --nproc 1000 is more than") and "\n" not in err
    assert not (tmp_path / "run").exists()
    # Within the cores, mistakes are still caught before any process starts.
    (tmp_path / "run" / "last").mkdir(parents=True)
    assert cli.main(["train", "--data", str(tmp_path / "x.txt"), "--out", str(tmp_path / "run"), "--nproc", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_tinylm_train_nproc_2_end_to_end(tmp_path):
    """`tinylm train --nproc 2` (which runs `torchrun ... -m tinylm train ...`), then a resume under FSDP."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    out = tmp_path / "run"
    common = ["--threads", "1", "--no-tensorboard", "--quiet", "--log-every", "1", "--eval-batches", "2"]
    first = [sys.executable, "-m", "tinylm", "train", "--nproc", "2", "--data", str(corpus), "--out", str(out),
             "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2", "--set", "block_size=16",
             "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--samples", "1", "--sample-tokens", "8", *common]
    done = subprocess.run(first, env=torchrun_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("stopped (max_steps) at step 6") == 1  # rank 0 alone reports
    # Checkpoints hold the whole model either way, so a DDP run can continue under FSDP.
    again = [sys.executable, "-m", "tinylm", "train", "--nproc=2", "--out", str(out), "--resume", "--max-steps", "8",
             "--fsdp", "--samples", "1", "--sample-tokens", "4", *common]
    done = subprocess.run(again, env=torchrun_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 9)) and rows[0]["tokens"] == 2 * 4 * 16
    assert json.loads((out / "summary.json").read_text())["steps"] == 8
    assert json.loads((out / "train_config.json").read_text())["fsdp"] is True and "--- sample 1:" in done.stdout
