"""Exact resume: a run stopped in any way and resumed logs the same numbers as one never stopped."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tinylm.checkpoint import load_model
from tinylm.errors import TinyLMError
from tinylm.training import Trainer
from tinylm.training.metrics_log import read_metrics
from tinylm.training.state import Progress, read_train_state, restore_train_state, write_train_state

from train_toys import pattern_data, random_data, tiny_model, tiny_train_config

# Dropout on, so the global torch RNG matters; grad accumulation and evals on, so the
# data generator and the best/patience bookkeeping matter.
RUN = dict(max_steps=12, save_every=4, eval_every=3, grad_accum=2, log_every=1)
TIMING = ("elapsed", "tokens_per_s")  # wall-clock fields: the only ones allowed to differ


class Crash(Exception):
    pass


def _trainer(out: Path, seed: int = 0, callbacks=(), **overrides) -> Trainer:
    cfg = tiny_train_config(out, **{**RUN, **overrides})
    return Trainer(tiny_model(seed=seed, dropout=0.1), pattern_data(), random_data(), cfg, callbacks=callbacks, quiet=True)


def _rows(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out / "metrics.jsonl")]


def _assert_same_run(out: Path, ref: Path) -> None:
    rows, ref_rows = _rows(out), _rows(ref)
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, RUN["max_steps"] + 1))
    assert rows == ref_rows  # exact: losses, lrs, grad norms, token counts, val losses
    for name in ("last", "best"):
        a, b = load_model(out / name).state_dict(), load_model(ref / name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b), name


def _stop_at(step: int, action):
    def callback(trainer, row):
        if row["step"] == step:
            action()
    return callback


def _crash():
    raise Crash


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_resume_after_a_crash_is_bit_identical(tmp_path, dtype):
    ref = _trainer(tmp_path / "ref", dtype=dtype, tensorboard=True).fit()
    with pytest.raises(Crash):
        _trainer(tmp_path / "run", callbacks=[_stop_at(6, _crash)], dtype=dtype, tensorboard=True).fit()
    assert max(r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")) == 6  # rows past the checkpoint (4)
    # A different initial model: everything must come from the checkpoint.
    result = _trainer(tmp_path / "run", seed=99, dtype=dtype, tensorboard=True).fit(resume=True)
    assert (result.steps, result.tokens, result.best_val_loss) == (ref.steps, ref.tokens, ref.best_val_loss)
    _assert_same_run(tmp_path / "run", tmp_path / "ref")
    # TensorBoard drops what the dead run wrote after step 4, so no step shows twice.
    assert _tensorboard_losses(tmp_path / "run") == _tensorboard_losses(tmp_path / "ref")


def _tensorboard_losses(out: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("train/loss")]


def test_resume_after_sigkill_in_a_subprocess(tmp_path):
    """The process dies at step 7 without any cleanup; last/ is from step 4."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import torch
torch.set_num_threads(1)
from test_training_resume import _stop_at, _trainer
from pathlib import Path
_trainer(Path({str(tmp_path / "run")!r}), callbacks=[_stop_at(7, lambda: os.kill(os.getpid(), signal.SIGKILL))]).fit()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert read_train_state(tmp_path / "run" / "last")[0]["progress"]["step"] == 4
    _trainer(tmp_path / "ref").fit()
    _trainer(tmp_path / "run", seed=99).fit(resume=True)
    _assert_same_run(tmp_path / "run", tmp_path / "ref")


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under `nohup ... &`
    interrupt = _stop_at(5, lambda: os.kill(os.getpid(), signal.SIGINT))
    result = _trainer(tmp_path / "run", callbacks=[interrupt]).fit()
    assert (result.stop_reason, result.steps) == ("interrupted", 5)
    assert read_train_state(tmp_path / "run" / "last")[0]["progress"]["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # handler given back
    _trainer(tmp_path / "ref").fit()
    assert _trainer(tmp_path / "run", seed=99).fit(resume=True).stop_reason == "max_steps"
    _assert_same_run(tmp_path / "run", tmp_path / "ref")


def test_resuming_a_finished_run_with_more_steps_continues(tmp_path):
    _trainer(tmp_path, max_steps=6).fit()
    result = _trainer(tmp_path, seed=1, max_steps=9).fit(resume=True)
    assert (result.stop_reason, result.steps) == ("max_steps", 9)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r] == list(range(1, 10))


@pytest.mark.parametrize("target", ["tinylm.checkpoint.save_file", "tinylm.training.state.save_file"])
def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, target):
    from safetensors.torch import save_file

    def torn_write(tensors, path, *args, **kwargs):
        # Half a file on disk, then the "crash": what dying mid-write leaves behind.
        save_file(tensors, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError("disk full")

    trainer = _trainer(tmp_path, callbacks=[_stop_at(4, lambda: monkeypatch.setattr(target, torn_write))])
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()  # the save at step 8 fails
    monkeypatch.undo()
    assert load_model(tmp_path / "last") is not None
    assert read_train_state(tmp_path / "last")[0]["progress"]["step"] == 4
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert _trainer(tmp_path, seed=5).resume() == 4


def test_crash_between_the_renames_of_a_save_is_recovered(tmp_path):
    _trainer(tmp_path, max_steps=4).fit()
    os.replace(tmp_path / "last", tmp_path / ".last.old")  # the old folder moved aside, the new one not yet in
    assert _trainer(tmp_path, seed=3).resume() == 4


def test_resume_errors(tmp_path):
    with pytest.raises(TinyLMError, match="nothing to resume"):
        _trainer(tmp_path).fit(resume=True)
    _trainer(tmp_path, max_steps=3).fit()
    cfg = tiny_train_config(tmp_path, **RUN)
    other = Trainer(tiny_model(n_layer=1), pattern_data(), None, cfg, quiet=True)
    with pytest.raises(TinyLMError, match="different model"):
        other.resume()
    with pytest.raises(TinyLMError, match="train_state"):
        _trainer(tmp_path).resume(tmp_path / "best")  # best/ has weights only


def test_train_state_files_are_json_and_safetensors(tmp_path):
    _trainer(tmp_path, max_steps=3).fit()
    folder = tmp_path / "last" / "train_state"
    assert sorted(p.name for p in folder.iterdir()) == ["state.json", "tensors.safetensors"]
    meta = json.loads((folder / "state.json").read_text())
    assert meta["progress"]["step"] == 3 and meta["train_config"]["max_steps"] == 3
    tensors = load_file(str(folder / "tensors.safetensors"))
    assert tensors["rng.torch"].dtype == torch.uint8 and "rng.data" in tensors
    assert {"optimizer.0.exp_avg", "optimizer.0.exp_avg_sq", "optimizer.0.step"} <= set(tensors)


def test_progress_and_rng_states_round_trip(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters())
    gen = torch.Generator().manual_seed(7)

    def draws():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.rand(3, generator=gen).tolist()

    draws()
    progress = Progress(step=9, tokens=1234, elapsed_s=1.5, best_val_loss=2.25, best_step=6, bad_evals=1, last_eval_step=9)
    write_train_state(tmp_path, progress=progress, train_config={}, optimizer=opt, data_generator=gen)
    expected = draws()
    draws()  # move every RNG on
    meta, tensors = read_train_state(tmp_path)
    assert restore_train_state(meta, tensors, optimizer=opt, data_generator=gen) == progress
    assert draws() == expected
