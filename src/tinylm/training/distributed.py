"""Multi-process training with torchrun and DDP or FSDP (gloo, CPU): set-up, rank helpers, the launcher.

    tinylm train --nproc 2 --shakespeare --out runs/shk           # launches torchrun itself
    torchrun --nproc-per-node 2 -m tinylm train --shakespeare --out runs/shk   # the same run

torchrun (torch.distributed.run) starts the processes and sets RANK / WORLD_SIZE /
MASTER_ADDR in their environment; `init_from_env` joins them into one process group. The
Trainer then wraps its model in DistributedDataParallel (`wrap`), so every backward pass
averages the gradients over the processes and every process takes the same optimizer
step. The data is split by drawing: each process draws the *global* batch (batch_size x
world size rows) from the same seeded generator and keeps its own rows (`my_rows`), so N
processes with batch b see exactly the batches one process with batch N*b sees, and the
generator state (saved in checkpoints) is the same in every process. Rank 0 alone writes
(checkpoints, logs, plots, the prepared data); the others wait at a barrier.

With `fsdp` (TrainConfig.fsdp, `--fsdp`) the model is sharded in place by FSDP2's
`fully_shard` instead; saves gather it whole into rank 0 (`full_copies`) and resumes
scatter the whole checkpoint back (`load_whole`), so checkpoints look the same either way.

Outside torchrun every helper here is a no-op (rank 0 of 1), so single-process code pays
nothing. docs/distributed.md: multi-node clusters and FSDP.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import subprocess
import sys

import torch
import torch.distributed as dist

from tinylm.errors import TinyLMError

BACKEND = "gloo"  # CPU collectives; NCCL would need GPUs


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """The process that writes files and prints: rank 0 (or the only process)."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; False outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or active():
        return active()
    dist.init_process_group(BACKEND)
    return True


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, fsdp: bool = False) -> torch.nn.Module:
    """`model` in DDP when several processes train it, else itself; `fsdp`: sharded in place.

    forward_sync_buffers=False: the model's buffers (causal masks, rotary tables) are
    constants, equal everywhere, so there is nothing to re-send every forward. FSDP shards
    block by block, so a forward gathers one block's full weights at a time.
    """
    if world_size() == 1:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    return torch.nn.parallel.DistributedDataParallel(model, forward_sync_buffers=False)


def sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_copies(model, optimizer: torch.optim.Optimizer, make_optimizer):
    """A sharded model and its optimizer as plain, whole ones, in rank 0 ((None, None) elsewhere).

    Every process must call it (it gathers the shards). `make_optimizer(plain_model)` builds
    an empty optimizer of the run's kind, which gets the gathered state.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    whole = StateDictOptions(full_state_dict=True, cpu_offload=True)  # cpu_offload: gathered in rank 0 only
    weights = get_model_state_dict(model, options=whole)
    state = get_optimizer_state_dict(model, optimizer, options=whole)
    if not is_main():
        return None, None
    from tinylm.model import GPT

    plain = GPT(model.config)
    plain.load_state_dict(weights)
    plain_optimizer = make_optimizer(plain)
    _set_optimizer_state(plain, plain_optimizer, state, StateDictOptions())
    return plain, plain_optimizer


def load_whole(model, optimizer: torch.optim.Optimizer, plain: torch.nn.Module,
               plain_optimizer: torch.optim.Optimizer) -> None:
    """Scatter a plain model and optimizer (read from a checkpoint by every process) into the sharded ones."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_optimizer_state_dict, set_model_state_dict,
    )

    whole = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, plain.state_dict(), options=whole)
    _set_optimizer_state(model, optimizer, get_optimizer_state_dict(plain, plain_optimizer), whole)


def _set_optimizer_state(model, optimizer, state, options) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=options)
    # Measured: without fresh step counters, the first AdamW step after a load differed
    # from an uninterrupted run's (torch 2.13, CPU); with them the resume is bit-exact.
    for param_state in optimizer.state.values():
        if torch.is_tensor(param_state.get("step")):
            param_state["step"] = param_state["step"].clone()


def my_rows(batch: torch.Tensor) -> torch.Tensor:
    """This process's share of a global batch: the rank-th of world_size near-equal slices
    (exactly batch_size rows each in training; an evaluation's last batch may be uneven)."""
    n = world_size()
    return batch if n == 1 else torch.tensor_split(batch, n)[rank()]


def mean(value: float) -> float:
    """The mean of a number over the processes (e.g. each one's micro-batch loss)."""
    return total(value)[0] / world_size()


def total(*values: float) -> list[float]:
    """Each number summed over the processes."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def from_main(value: int) -> int:
    """Rank 0's value of an integer, in every process (decisions that must agree, e.g. to stop)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.broadcast(t, src=0)
    return int(t)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_nproc(nproc: int, force: bool) -> None:
    if nproc < 1:
        raise TinyLMError(f"--nproc must be at least 1, got {nproc}")
    cores = usable_cores()
    if nproc > cores and not force:
        raise TinyLMError(f"--nproc {nproc} is more than the {cores} CPU cores here; "
                          "each process needs one (pass --force to run anyway)")


def launch(nproc: int, tinylm_args: Sequence[str]) -> int:
    """Run `tinylm ARGS` in `nproc` processes on this machine through torchrun; its exit code.

    The same as `torchrun --standalone --nproc-per-node N -m tinylm ARGS`.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "tinylm", *tinylm_args]
    return subprocess.run(cmd).returncode
