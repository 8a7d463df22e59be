"""bandwidth: how fast this machine reads memory, so a decode step's "limit" is a measurement.

A batch-1 decode step reads every weight once, so its floor is weight bytes / read bandwidth.
This reads a float32 buffer front to back with `torch.sum` (a vectorized streaming reduction,
split over torch's threads) and reports GB/s for a buffer far larger than the last-level
cache (MEMORY_BYTES: from DRAM) and one that fits in it (L3_BYTES: read again and again, it
stays in L3), at 1 and 2 threads, best of several passes. Figures, not goals: the decode
benchmarks compare their weight GB/s with these.
"""

from __future__ import annotations

import time
from typing import Any

import torch

MEMORY_BYTES = 256 * 2**20
L3_BYTES = 8 * 2**20


def _read_gb_per_s(buffer: torch.Tensor, repeat: int, passes: int) -> float:
    """Best of `passes` passes, each reading `buffer` `repeat` times."""
    def read() -> None:
        for _ in range(repeat):
            buffer.sum()

    read()  # warm-up: pages touched, the cache filled where the buffer fits
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        read()
        best = min(best, time.perf_counter() - started)
    return repeat * buffer.numel() * buffer.element_size() / best / 1e9


def run(quick: bool = False) -> dict[str, Any]:
    passes = 3 if quick else 10
    before = torch.get_num_threads()
    rows: dict[str, dict[str, float]] = {}
    try:
        for label, size in (("memory (256 MiB)", MEMORY_BYTES), ("L3 (8 MiB)", L3_BYTES)):
            buffer = torch.ones(size // 4, dtype=torch.float32)
            repeat = MEMORY_BYTES // size // 4 or 1  # the small buffer read several times: a pass long enough to time
            rows[label] = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                gbps = _read_gb_per_s(buffer, repeat, passes)
                rows[label][f"{threads} thread{'s' if threads > 1 else ''} GB/s"] = round(gbps, 1)
    finally:
        torch.set_num_threads(before)
    return {"read_bandwidth": rows, "method": "torch.sum over a float32 buffer, best pass"}
