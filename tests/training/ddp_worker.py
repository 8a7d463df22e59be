"""Run by torchrun (2 processes) from test_training_ddp.py: DDP training runs to compare.

    python -m torch.distributed.run --standalone --nproc-per-node 2 ddp_worker.py BASE_DIR

BASE_DIR/straight: 20 steps; BASE_DIR/resumed: the same run crashes after step 10's
checkpoint, then a new Trainer (other initial weights) resumes it to 20. The same two
with FSDP instead of DDP: BASE_DIR/fsdp-straight and BASE_DIR/fsdp-resumed.
Rank 1 records every file it opens for writing, renames, creates or deletes under BASE_DIR
(Python audit hooks see them all) and reports them in BASE_DIR/rank1_writes.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import sys

from tinylm.training import Trainer
from tinylm.training import distributed

from train_toys import pattern_data, random_data, tiny_model, tiny_train_config

PER_RANK_BATCH = 4
GRAD_ACCUM = 2


class Crash(Exception):
    pass


def crash_at_step_10(trainer, row) -> None:
    if row["step"] == 10:
        raise Crash


def config(out_dir: Path, fsdp: bool = False):
    return tiny_train_config(out_dir, max_steps=20, batch_size=PER_RANK_BATCH, grad_accum=GRAD_ACCUM, fsdp=fsdp)


def main(base: Path) -> None:
    assert distributed.init_from_env() and distributed.world_size() == 2
    writes: list[str] = []
    recording = distributed.rank() == 1

    def hook(event: str, args: tuple) -> None:
        if not recording:
            return
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        else:
            path, writing = (args[0] if args else ""), event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree")
        if writing and str(path).startswith(str(base)):
            writes.append(f"{event} {path}")

    sys.addaudithook(hook)
    for name, fsdp in (("", False), ("fsdp-", True)):
        Trainer(tiny_model(0), pattern_data(), random_data(), config(base / f"{name}straight", fsdp), quiet=True).fit()
        try:
            Trainer(tiny_model(0), pattern_data(), random_data(), config(base / f"{name}resumed", fsdp),
                    callbacks=[crash_at_step_10], quiet=True).fit()
        except Crash:
            pass
        Trainer(tiny_model(1), pattern_data(), random_data(), config(base / f"{name}resumed", fsdp),
                quiet=True).fit(resume=True)
    recording = False
    if distributed.rank() == 1:
        (base / "rank1_writes.json").write_text(json.dumps(writes))
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
