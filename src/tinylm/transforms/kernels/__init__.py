"""tinylm's own CPU kernels for quantized decode steps (quantized_linear.cpp), built on first use.

torch's CPU kernels for int8 / int4 weights were far slower than fp32 at batch 1 on the
machine of docs/compression.md (`_weight_int8pack_mm` about 13x, `_weight_int4pack_mm_for_cpu`
about 20x, dequantize-then-matmul about 14x), so tinylm compiles two small C++ loops with
torch's extension builder: GCC and ninja, about a minute once, then cached under
~/.cache/tinylm/kernels/<cpu> (TINYLM_KERNEL_DIR overrides the folder; one build per CPU
model, since the code is compiled for the CPU it runs on). Without a compiler, or with
TINYLM_NO_KERNELS=1, `kernels()` returns None and the quantized layers use torch's ops
instead (same numbers, slower).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("quantized_linear.cpp")


def _cpu_tag() -> str:
    """A short name for this CPU's model and instruction sets."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        import platform

        lines = [platform.machine(), platform.processor()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The compiled kernels, or None where they cannot be built (warned once)."""
    if os.environ.get("TINYLM_NO_KERNELS"):
        return None
    from torch.utils.cpp_extension import load

    base = Path(os.environ.get("TINYLM_KERNEL_DIR") or Path.home() / ".cache" / "tinylm" / "kernels")
    folder = base / _cpu_tag()  # -march=native code must not run on another CPU sharing the home folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return load("tinylm_quantized_linear", [str(SOURCE)], build_directory=str(folder),
                    extra_cflags=["-O3", "-march=native", "-ffast-math"], verbose=False)
    except Exception as e:  # no compiler, no ninja, a read-only home: fall back, and say why once
        warnings.warn(f"tinylm: quantized kernels unavailable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                      "using torch's slower ops", stacklevel=2)
        return None
