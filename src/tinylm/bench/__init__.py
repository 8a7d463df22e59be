"""Benchmarks: `tinylm bench NAME [--json]`.

Each benchmark is a module with `run(quick: bool) -> dict` returning its figures. The
runner adds the machine it ran on, so every JSON object says where its numbers come
from. Speed goals are stated as ratios against an anchor measured in the same run,
because shared CPUs are noisy: absolute seconds move, ratios much less.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from tinylm.errors import TinyLMError

BENCHMARKS: dict[str, str] = {
    "train-shakespeare-char": "tinylm.bench.train_shakespeare",
    "kv-cache": "tinylm.bench.kv_cache",
    "decode": "tinylm.bench.decode",
    "code2": "tinylm.bench.code2",
    "serve": "tinylm.bench.serve",
    "grammar": "tinylm.bench.grammar",
    "export": "tinylm.bench.export",
    "quant": "tinylm.bench.quant",
    "code2-compress": "tinylm.bench.code2_compress",
    "prune": "tinylm.bench.prune",
    "finetune": "tinylm.bench.finetune",
    "ablation": "tinylm.bench.ablation",
    "bandwidth": "tinylm.bench.bandwidth",
}


def get(name: str) -> Callable[..., dict[str, Any]]:
    if name not in BENCHMARKS:
        raise TinyLMError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name]).run


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import os
    import platform

    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
