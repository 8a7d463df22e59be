"""TrainConfig: every knob of a training run, as plain JSON values.

It is written to `out_dir/train_config.json` and into every `last/train_state/`, so a run
can be resumed (or reproduced) from its folder alone. Validation lives here so a typo in
a value fails before any data is read or any weights are allocated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tinylm.errors import TinyLMError

DECAYS = ("cosine", "linear", "constant")
DTYPES = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    out_dir: str = "out"
    max_steps: int = 1000  # optimizer steps; also the length of the lr schedule
    batch_size: int = 32  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    lr: float = 1e-3
    min_lr: float = 1e-4  # where the decay ends (nanoGPT: lr / 10)
    warmup_steps: int = 100
    decay: str = "cosine"
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    eval_every: int = 250  # steps between evaluations; 0 = only at the end
    eval_batches: int = 20  # batches per evaluation
    patience: int = 0  # stop after this many evaluations without improvement; 0 = never
    time_budget_s: float = 0.0  # stop after this much training time (summed over resumes); 0 = none
    token_budget: int = 0  # stop after this many training tokens; 0 = none
    seed: int = 1337
    dtype: str = "float32"  # "bfloat16" runs forward/backward under CPU autocast (weights stay float32)
    save_every: int = 250  # steps between `last/` checkpoints; 0 = only at the end
    log_every: int = 10  # steps between JSONL/TensorBoard rows
    optimizer: str = "adamw"
    compile: bool = False  # torch.compile the model (needs a C compiler; first steps are slow)
    fsdp: bool = False  # under torchrun: shard weights, gradients and optimizer state (FSDP2) instead of DDP
    num_threads: int = 0  # torch intra-op threads; 0 = torch's default
    tensorboard: bool = True  # also write TensorBoard events (skipped with a note if unavailable)

    def __post_init__(self) -> None:
        # JSON has no tuples; accept the list that a round trip through JSON gives back.
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        positive = ("max_steps", "batch_size", "grad_accum", "eval_batches", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TinyLMError(f"train config: {name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_every", "patience", "token_budget", "save_every", "num_threads", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TinyLMError(f"train config: {name} must be a non-negative integer, got {value!r}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "time_budget_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise TinyLMError(f"train config: {name} must be a non-negative number, got {value!r}")
        if self.lr == 0:
            raise TinyLMError("train config: lr must be positive")
        if self.min_lr > self.lr:
            raise TinyLMError(f"train config: min_lr={self.min_lr} is larger than lr={self.lr}")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise TinyLMError(f"train config: betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.decay not in DECAYS:
            raise TinyLMError(f"train config: decay={self.decay!r} is not one of {', '.join(DECAYS)}")
        if self.dtype not in DTYPES:
            raise TinyLMError(f"train config: dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        from tinylm.training.optim import OPTIMIZERS

        if self.optimizer not in OPTIMIZERS:
            raise TinyLMError(f"train config: optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TinyLMError(f"train config: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise TinyLMError(f"train config: {e}") from None
