"""tinylm's own CPU kernels, built on first use: matrix-vector products with int8 / int4 weights
(quantized_linear.cpp) and the fused batch-1 decode step of llama-style models (decode_step.cpp).

torch's CPU kernels for int8 / int4 weights were far slower than fp32 at batch 1 on the
machine of docs/compression.md (`_weight_int8pack_mm` about 13x, `_weight_int4pack_mm_for_cpu`
about 20x, dequantize-then-matmul about 14x), so tinylm compiles two small C++ loops with
torch's extension builder: GCC and ninja, about a minute once, then cached under
~/.cache/tinylm/kernels/<cpu> (TINYLM_KERNEL_DIR overrides the folder; one build per CPU
model, since the code is compiled for the CPU it runs on). Without a compiler, or with
TINYLM_NO_KERNELS=1, `kernels()` returns None and the quantized layers use torch's ops
instead (same numbers, slower) and the engine decodes through the PyTorch model.

Both are compiled with -fopenmp, so their `at::parallel_for` loops run on torch's intra-op
threads (torch.set_num_threads); without it ATen's header quietly runs them on one thread.
Only the flag is given, not -lgomp: the OpenMP calls then bind to the runtime torch itself
loaded (one thread pool, not two competing for the cores).
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).parent


def _cpu_tag() -> str:
    """A short name for this CPU's model and instruction sets."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        import platform

        lines = [platform.machine(), platform.processor()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:12]


def kernels() -> ModuleType | None:
    """The quantized matrix-vector kernels, or None where they cannot be built (warned once)."""
    return _build("quantized_linear")


def decode_kernels() -> ModuleType | None:
    """The fused decode step (DecodeStep), or None where it cannot be built (warned once)."""
    return _build("decode_step")


@lru_cache(maxsize=None)
def _build(name: str) -> ModuleType | None:
    if os.environ.get("TINYLM_NO_KERNELS"):
        return None
    from torch.utils.cpp_extension import load

    source = FOLDER / f"{name}.cpp"
    flags = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]
    base = Path(os.environ.get("TINYLM_KERNEL_DIR") or Path.home() / ".cache" / "tinylm" / "kernels")
    # -march=native code must not run on another CPU sharing the home folder; and one folder per
    # kernel, version of its source and flags, and Python environment (the build files name the
    # interpreter's include paths), so two checkouts or two virtual environments sharing the cache
    # neither rebuild each other's kernels in turn nor wait on each other's build lock.
    version = hashlib.sha256(source.read_bytes() + " ".join([*flags, sys.prefix]).encode()).hexdigest()[:12]
    folder = base / _cpu_tag() / f"{name}-{version}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return load(f"tinylm_{name}", [str(source)], build_directory=str(folder), extra_cflags=flags, verbose=False)
    except Exception as e:  # no compiler, no ninja, a read-only home: fall back, and say why once
        warnings.warn(f"tinylm: {name} kernels unavailable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                      "using torch's slower ops", stacklevel=2)
        return None
