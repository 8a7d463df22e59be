"""llama.cpp as a yardstick: the same weights, exported by tinylm's own export-gguf, decoded
greedily by llama-cpp-python in the same run as tinylm (bench decode, quant and export use this).

llama-cpp-python is an optional extra (`pip install 'tinylm[peers]'`; it builds llama.cpp
from source, a few minutes). Without it the benchmarks say so in their rows instead of a speed.
Its Python binding decodes one sequence, so its figures are batch 1. A run is one prompt
evaluation then one `eval` per new token, the next token the argmax of the last logits: the
same work as tinylm's greedy `generate` (prefill, then one step per token), Python loop included.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tinylm.model import GPT

MISSING = "not installed (pip install 'tinylm[peers]')"
# tinylm type -> the name its llama.cpp rows carry
GGUF_KINDS = {"f32": "llama.cpp F32", "q8_0": "llama.cpp Q8_0"}


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def gguf_files(model: GPT, kinds: Sequence[str] = tuple(GGUF_KINDS)) -> Iterator[dict[str, Path]]:
    """`model` exported by tinylm's export_gguf, one file per kind, in a temporary folder."""
    from tinylm.checkpoint import save_checkpoint
    from tinylm.interop.gguf import export_gguf
    from tinylm.tokenizers import CharTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # GGUF needs a tokenizer; decoding here is by ids, so any one that fits the vocabulary does.
        ckpt = save_checkpoint(root / "ckpt", model, CharTokenizer("abcdefghijklmnopqrstuvwxyz .,\n"))
        yield {kind: export_gguf(ckpt, root / f"{kind}.gguf", kind) for kind in kinds}


class LlamaCpp:
    """One GGUF file loaded in llama.cpp with a fixed thread count."""

    def __init__(self, path: Path, context: int, threads: int) -> None:
        import llama_cpp

        # logits_all: llama-cpp-python 0.3.36 leaves `scores` all zeros without it (then every
        # "greedy" token is 0). It only adds the prompt's other rows of logits to the prefill.
        # The KV cache in float32 (llama.cpp's default is float16), as tinylm's: the same
        # arithmetic, so greedy tokens can agree even where random weights leave narrow margins.
        f32 = llama_cpp.GGML_TYPE_F32
        self._llm = llama_cpp.Llama(str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                                    n_batch=context, logits_all=True, type_k=f32, type_v=f32, verbose=False)

    def greedy(self, prompt: Sequence[int], max_new: int) -> list[int]:
        """The max_new tokens greedy decoding gives after `prompt`."""
        import numpy as np

        llm, out = self._llm, []
        llm.reset()
        llm.eval(list(prompt))
        for _ in range(max_new):
            out.append(int(np.asarray(llm.scores[llm.n_tokens - 1]).argmax()))
            if len(out) < max_new:
                llm.eval([out[-1]])
        return out

    def seconds(self, prompt: Sequence[int], max_new: int) -> float:
        """Wall time of one greedy generation of max_new tokens (prompt evaluation included)."""
        started = time.perf_counter()
        self.greedy(prompt, max_new)
        return time.perf_counter() - started


def same_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two generations share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def not_installed_rows() -> dict[str, Any]:
    return {name: MISSING for name in GGUF_KINDS.values()}
