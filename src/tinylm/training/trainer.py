"""The training loop, nanoGPT-style: sample a batch, forward, backward, clip, step, repeat.

    trainer = Trainer(model, train_data, val_data, TrainConfig(out_dir="out", max_steps=2000), tokenizer)
    result = trainer.fit()              # or fit(resume=True) to continue from out/last/

What a run writes to out_dir:
    last/        the latest checkpoint, with train_state/ (for resuming); saved every save_every steps and at the end
    best/        the checkpoint with the lowest validation loss so far (+ metrics.json)
    train_config.json, metrics.jsonl, tensorboard/, loss.png

Data: any object with `get_batch(batch_size, generator) -> (x, y)` (TextDataset, PairedDataset).
All training randomness comes from one dedicated torch.Generator (which batches) and the
global torch RNG (dropout); both are saved in every checkpoint, with the optimizer state.

Evaluation is deterministic: it sees the same batches every time, so val losses of
different steps (and of a resumed and an uninterrupted run) compare exactly:
  - datasets with `iter_eval_batches(batch_size, max_batches)` (TextDataset): the first
    `eval_batches` batches of consecutive windows of the validation file;
  - datasets with `iter_batches(batch_size, shuffle=False)` (PairedDataset): the first
    `eval_batches` batches of examples in file order;
  - anything else: `eval_batches` calls of get_batch with a generator reseeded from the
    config's seed before every evaluation.
The val loss is the mean over all target tokens (batches weighted by their token count).

Exact resume. Resuming from last/ restores the weights, the optimizer state, the step
(the lr schedule is a function of it), the data generator, the torch/NumPy/Python RNGs,
the token and time counters and the early-stopping state, so on CPU in float32 the
continued run computes the same losses, bit for bit, as a run that was never stopped.
What is not guaranteed bit-exact: a different torch.set_num_threads (matmul reductions
split differently), a different torch version or CPU, and torch.compile (its fused
kernels round differently from eager; resume compiled runs with compile on). bfloat16
autocast resumes exactly too, but its losses differ from float32 ones.
The time budget counts wall time, so where a time-budgeted run stops is not reproducible.

Ctrl-C (SIGINT) does not lose work: the current step finishes, last/ is saved and fit()
returns with stop_reason "interrupted"; a second Ctrl-C aborts at once.

Multi-process (torchrun DDP, training/distributed.py): `self.step_model` is the model in
DistributedDataParallel (what runs forward/backward; `accumulate_gradients` skips the
gradient all-reduce with `no_sync()` for all but the last micro-batch) and `self.model`
the plain model that is saved. `batch_size` is per process: every process draws the same
global batch and trains on its rows, so N processes with batch b follow the losses of one
process with batch N*b (equal within float rounding when there is no dropout, which each
process draws for itself, and every row has as many targets: DDP averages per-process
means). Rank 0 alone logs and saves. Evaluation splits each global batch the same way
and sums the losses over the processes, so every process gets the same val loss and
they agree on the best step and on early stopping.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tinylm.checkpoint import load_model, recover_interrupted_save, save_checkpoint
from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.model import GPT
from tinylm.training import distributed
from tinylm.training.config import TrainConfig
from tinylm.training.metrics_log import (
    PLOT_FILE, MetricsLogger, NullLogger, ProgressBar, format_row, plot_loss_curve, read_metrics,
)
from tinylm.training.optim import build_optimizer
from tinylm.training.schedule import lr_at
from tinylm.training.state import Progress, read_train_state, restore_train_state, write_train_state

LAST = "last"
BEST = "best"
CONFIG_FILE = "train_config.json"


class Dataset(Protocol):
    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


# Called after every optimizer step (after that step's checkpoint, if any) with the step's row;
# on a step that evaluated, the row also holds its "val_loss" (what a pruner watches).
Callback = Callable[["Trainer", dict[str, Any]], None]
# The training loss of a batch, (model, x, y) -> scalar; None means the model's own loss, the
# cross-entropy on y (distillation adds a teacher's soft targets: training/distill.py).
# Evaluation always reports the model's own loss, so val losses compare across objectives.
Objective = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainResult:
    stop_reason: str  # "max_steps" | "early_stopping" | "time_budget" | "token_budget" | "interrupted"
    steps: int
    tokens: int
    elapsed_s: float  # wall time in fit(), summed over resumes
    train_loss: float | None  # of the last step this fit() ran
    best_val_loss: float | None
    best_step: int | None
    out_dir: str


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def accumulate_gradients(
    model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], n_batches: int, bf16: bool = False,
    objective: Objective | None = None,
) -> float:
    """Forward and backward over `n_batches` micro-batches; returns their mean loss.

    Each loss is divided by n_batches, so the summed gradients equal those of one batch
    n_batches times as large (exactly so when every micro-batch has as many targets).
    Under DDP the gradients are averaged over the processes once, in the last backward.
    """
    total = 0.0
    for i, (x, y) in enumerate(batches):
        last = i == n_batches - 1
        with model.no_sync() if hasattr(model, "no_sync") and not last else contextlib.nullcontext():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = objective(model, x, y) if objective is not None else model(x, y)[1]
            (loss / n_batches).backward()
        total += loss.item()
    return total / n_batches


class _GracefulInterrupt:
    """First Ctrl-C: finish the step, save, stop. Second: KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():  # signals only work there
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ntinylm: stopping after this step and saving (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    def __init__(
        self,
        model: GPT,
        train_data: Dataset,
        val_data: Dataset | None = None,
        cfg: TrainConfig | None = None,
        tokenizer=None,
        callbacks: Sequence[Callback] = (),
        quiet: bool = False,
        objective: Objective | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else TrainConfig()
        self.model = model
        self.train_data = train_data
        self.val_data = val_data
        self.tokenizer = tokenizer
        self.callbacks = list(callbacks)
        self.quiet = quiet
        self.objective = objective
        self.out_dir = Path(self.cfg.out_dir)
        seed_everything(self.cfg.seed)
        self.data_generator = torch.Generator().manual_seed(self.cfg.seed)
        # Under torchrun, DDP wraps the model (training/distributed.py), or FSDP shards it in
        # place, which must come before the optimizer sees its parameters; alone, `wrap`
        # gives the model back.
        wrapped = distributed.wrap(model, fsdp=self.cfg.fsdp)
        self.optimizer = build_optimizer(self.cfg.optimizer, model, self.cfg)
        # The schedule scales every group's own starting lr, so an optimizer with several
        # learning rates (Muon for matrices, AdamW for the rest) keeps their ratios.
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        # What runs forward/backward; `self.model` is what is saved.
        self.step_model: torch.nn.Module = torch.compile(wrapped) if self.cfg.compile else wrapped
        self.is_main = distributed.is_main()
        self.progress = Progress()

    # -- one optimizer step ------------------------------------------------------------

    def lr(self, step: int) -> float:
        c = self.cfg
        return lr_at(step, lr=c.lr, min_lr=c.min_lr, warmup_steps=c.warmup_steps, max_steps=c.max_steps, decay=c.decay)

    def train_step(self) -> dict[str, float]:
        """One optimizer step over grad_accum micro-batches; returns loss, lr, grad norm, tokens."""
        cfg = self.cfg
        lr = self.lr(self.progress.step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * lr / cfg.lr
        tokens = 0

        def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
            nonlocal tokens
            world = distributed.world_size()
            for _ in range(cfg.grad_accum):
                # Every process draws the global batch and keeps its rows (distributed.py).
                x, y = self.train_data.get_batch(cfg.batch_size * world, self.data_generator)
                tokens += x.numel()
                yield distributed.my_rows(x), distributed.my_rows(y)

        loss = accumulate_gradients(self.step_model, batches(), cfg.grad_accum, bf16=cfg.dtype == "bfloat16",
                                    objective=self.objective)
        loss = distributed.mean(loss)
        if not math.isfinite(loss):
            raise TinyLMError(f"training diverged: loss is {loss} at step {self.progress.step + 1}; try a lower lr")
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if hasattr(grad_norm, "full_tensor"):  # FSDP: a norm over sharded gradients
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss, "lr": lr, "grad_norm": float(grad_norm), "tokens": tokens}

    # -- evaluation --------------------------------------------------------------------

    def _eval_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        cfg, data = self.cfg, self.val_data
        batch_size = cfg.batch_size * distributed.world_size()  # the global batch; each process scores its rows
        if hasattr(data, "iter_eval_batches"):
            return data.iter_eval_batches(batch_size, max_batches=cfg.eval_batches)
        if hasattr(data, "iter_batches"):
            return itertools.islice(data.iter_batches(batch_size, shuffle=False), cfg.eval_batches)
        generator = torch.Generator().manual_seed(cfg.seed)
        return (data.get_batch(batch_size, generator) for _ in range(cfg.eval_batches))

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss per target token over the (fixed) evaluation batches."""
        if self.val_data is None:
            raise TinyLMError("no validation data to evaluate on")
        self.model.eval()
        total, count = 0.0, 0
        try:
            for x, y in self._eval_batches():
                x, y = distributed.my_rows(x), distributed.my_rows(y)
                # A last batch may have fewer rows than processes. Under FSDP every process
                # must still run the forward (it gathers the weights with the others).
                if len(x) == 0 and not distributed.sharded(self.model):
                    continue
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.dtype == "bfloat16"):
                    _, loss = self.step_model(x, y)
                n = int((y != -100).sum())
                if n:  # the loss of no targets is nan
                    total += loss.float().item() * n
                    count += n
        finally:
            self.model.train()
        total, count = distributed.total(total, count)
        if count == 0:
            raise TinyLMError("the validation data has no target tokens")
        return total / count

    def _evaluate_and_track(self, logger: MetricsLogger, bar: ProgressBar) -> float:
        """Evaluate, log, keep best/ up to date and count evaluations without improvement;
        returns the validation loss."""
        p = self.progress
        val_loss = self.evaluate()
        p.last_eval_step = p.step
        # exp() overflows past ~709; a loss that high means "diverged" either way.
        row = {"step": p.step, "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 700.0))}
        logger.log(row)
        bar.write(format_row(row))
        if p.best_val_loss is None or val_loss < p.best_val_loss:
            p.best_val_loss, p.best_step, p.bad_evals = val_loss, p.step, 0
            model, _ = self._whole()
            if self.is_main:
                save_checkpoint(
                    self.out_dir / BEST, model, self.tokenizer,
                    extra=lambda folder: write_json(folder / "metrics.json", row),
                )
            distributed.barrier()
        else:
            p.bad_evals += 1
        return val_loss

    # -- checkpoints -------------------------------------------------------------------

    def _new_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(self.cfg.optimizer, model, self.cfg)

    def _whole(self) -> tuple[Any, Any]:
        """(model, optimizer) to save: themselves, or under FSDP whole copies in rank 0."""
        if distributed.sharded(self.model):
            return distributed.full_copies(self.model, self.optimizer, self._new_optimizer)
        return self.model, self.optimizer

    def save(self, path: str | Path | None = None) -> Path:
        """Save model, tokenizer and the full training state (default: out_dir/last).

        Under DDP every process holds the same weights, optimizer and generator states,
        so rank 0's copy is the run's; the others wait until it is on disk.
        """
        path = Path(path or self.out_dir / LAST)
        model, optimizer = self._whole()
        extra = functools.partial(
            write_train_state,
            progress=self.progress,
            train_config=self.cfg.to_dict(),
            optimizer=optimizer,
            data_generator=self.data_generator,
        )
        if self.is_main:
            save_checkpoint(path, model, self.tokenizer, extra=extra)
        distributed.barrier()
        return path

    def resume(self, checkpoint: str | Path | None = None) -> int:
        """Restore everything from a checkpoint with train_state/ (default: out_dir/last); returns its step."""
        path = Path(checkpoint) if checkpoint is not None else self.out_dir / LAST
        if self.is_main:
            recover_interrupted_save(path)
        distributed.barrier()
        if not path.is_dir():
            raise TinyLMError(f"nothing to resume: {path} does not exist")
        saved = load_model(path)  # validates the folder (and undoes a save a crash cut short)
        if saved.config.to_dict() != self.model.config.to_dict():
            raise TinyLMError(f"cannot resume: {path}/config.json describes a different model than the one being trained")
        meta, tensors = read_train_state(path)
        if distributed.sharded(self.model):
            # Every process read the whole checkpoint; each keeps its shards of it.
            saved_optimizer = self._new_optimizer(saved)
            self.progress = restore_train_state(meta, tensors, optimizer=saved_optimizer, data_generator=self.data_generator)
            distributed.load_whole(self.model, self.optimizer, saved, saved_optimizer)
            return self.progress.step
        with torch.no_grad():
            # Copy into the existing tensors: the optimizer holds references to them.
            self.model.load_state_dict(saved.state_dict())
        # RNGs last: building `saved` above drew from the global torch RNG.
        self.progress = restore_train_state(meta, tensors, optimizer=self.optimizer, data_generator=self.data_generator)
        return self.progress.step

    # -- the loop ----------------------------------------------------------------------

    def _stop_reason(self, interrupt: _GracefulInterrupt) -> str | None:
        """Why to stop now, or None; under DDP rank 0's clock and Ctrl-C decide for all."""
        reasons = (None, "interrupted", "early_stopping", "max_steps", "token_budget", "time_budget")
        return reasons[distributed.from_main(reasons.index(self._local_stop_reason(interrupt)))]

    def _local_stop_reason(self, interrupt: _GracefulInterrupt) -> str | None:
        cfg, p = self.cfg, self.progress
        if interrupt.requested:
            return "interrupted"
        if cfg.patience and p.bad_evals >= cfg.patience:
            return "early_stopping"
        if p.step >= cfg.max_steps:
            return "max_steps"
        if cfg.token_budget and p.tokens >= cfg.token_budget:
            return "token_budget"
        if cfg.time_budget_s and p.elapsed_s >= cfg.time_budget_s:
            return "time_budget"
        return None

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until a stop condition; `resume=True` first restores out_dir/last.

        A fresh trainer starts new logs in out_dir, replacing old ones; a resumed one cuts
        the logs back to its step and appends.
        """
        if resume:
            self.resume()
        threads = torch.get_num_threads()
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        try:
            return self._fit()
        finally:
            torch.set_num_threads(threads)  # a global setting: give the caller theirs back

    def _fit(self) -> TrainResult:
        cfg, p = self.cfg, self.progress
        quiet = self.quiet or not self.is_main
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / CONFIG_FILE, cfg.to_dict())
        tty = sys.stderr.isatty()
        # A trainer that has already made progress (resumed, or fit before) continues its
        # logs; a fresh one starts them anew.
        logger = MetricsLogger(
            self.out_dir, resume_step=p.step if p.step else None, tensorboard=cfg.tensorboard,
            echo=None if (quiet or tty) else print,
        ) if self.is_main else NullLogger()
        bar = ProgressBar(cfg.max_steps, p.step, enabled=tty and not quiet)
        self.model.train()
        # Offsetting the clock by the time already spent makes the time budget span resumes.
        clock0 = time.perf_counter() - p.elapsed_s
        window_tokens, window_time = 0, 0.0  # tokens/s over the steps since the last log row
        train_loss = None
        try:
            with _GracefulInterrupt() as interrupt:
                while (stop := self._stop_reason(interrupt)) is None:
                    t0 = time.perf_counter()
                    stats = self.train_step()
                    dt = time.perf_counter() - t0
                    p.step += 1
                    p.tokens += stats["tokens"]
                    p.elapsed_s = time.perf_counter() - clock0
                    train_loss = stats["loss"]
                    window_tokens += stats["tokens"]
                    window_time += dt
                    row = {"step": p.step, **stats, "tokens": p.tokens, "elapsed": p.elapsed_s}
                    bar.update(stats["loss"], stats["lr"], stats["tokens"] / dt)
                    if p.step % cfg.log_every == 0:
                        row["tokens_per_s"] = window_tokens / window_time
                        logger.log(row)
                        window_tokens, window_time = 0, 0.0
                    if self.val_data is not None and cfg.eval_every and p.step % cfg.eval_every == 0:
                        # A copy: the logged row stays as it was written.
                        row = {**row, "val_loss": self._evaluate_and_track(logger, bar)}
                    if cfg.save_every and p.step % cfg.save_every == 0:
                        self.save()
                    for callback in self.callbacks:
                        callback(self, row)
            # A run that ended on its own gets a last evaluation; an interrupted or
            # early-stopped one is left exactly as a resume expects to find it.
            ended_naturally = stop in ("max_steps", "token_budget", "time_budget")
            if ended_naturally and self.val_data is not None and p.last_eval_step != p.step:
                self._evaluate_and_track(logger, bar)
            p.elapsed_s = time.perf_counter() - clock0
            self.save()
        finally:
            bar.close()
            logger.close()
        if self.is_main:
            plot_loss_curve(read_metrics(logger.path), self.out_dir / PLOT_FILE)
        return TrainResult(
            stop_reason=stop, steps=p.step, tokens=p.tokens, elapsed_s=p.elapsed_s, train_loss=train_loss,
            best_val_loss=p.best_val_loss, best_step=p.best_step, out_dir=str(self.out_dir),
        )
