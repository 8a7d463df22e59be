"""export: the same model decoding in tinylm (PyTorch), ONNX Runtime (fp32, int8) and llama.cpp
(GGUF F32, Q8_0, when llama-cpp-python is installed), and the size of each file.

Greedy decoding of MAX_NEW tokens from one prompt, at batch 1 and 8 (llama.cpp: batch 1, its
Python binding decodes one sequence), one thread each, best of REPEATS runs. The model is
llama-style-small (about 11M parameters) with random weights: speed does not depend on what
the weights say. ONNX Runtime runs behind tinylm's engine (tinylm.interop.onnx.OnnxModel), so
its figures include the same Python loop as PyTorch's. Anchor: tinylm's own PyTorch decode,
measured in the same run (ratios hold better than absolute speeds on a shared CPU).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tinylm.bench import peers
from tinylm.bench.peers import LlamaCpp
from tinylm.checkpoint import WEIGHTS_FILE, save_checkpoint
from tinylm.generation import Engine, GenerationConfig
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.tokenizers import CharTokenizer

MAX_NEW = 128
REPEATS = 3
PROMPT = list(range(5, 21))


def _engine_tokens_per_s(model: Any, batch: int, max_new: int) -> float:
    engine = Engine(model)
    prompts = [PROMPT] * batch
    engine.generate(prompts, GenerationConfig(max_new_tokens=4, temperature=0))  # warm-up
    best = 0.0
    for _ in range(REPEATS):
        started = time.perf_counter()
        results = engine.generate(prompts, GenerationConfig(max_new_tokens=max_new, temperature=0))
        best = max(best, sum(len(r.token_ids) for r in results) / (time.perf_counter() - started))
    return best


def _llama_cpp_tokens_per_s(path: Path, context: int, max_new: int) -> float:
    llm = LlamaCpp(path, context, threads=1)
    return max(max_new / llm.seconds(PROMPT, max_new) for _ in range(REPEATS))


def run(quick: bool = False) -> dict[str, Any]:
    from tinylm.interop.gguf import export_gguf
    from tinylm.interop.onnx import ONNX_FILE, export_onnx, load_onnx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    preset = "llama-style-nano" if quick else "llama-style-small"
    max_new = 32 if quick else MAX_NEW
    model = GPT(model_config(preset, vocab_size=4096)).eval()
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,\n")  # GGUF needs one; decoding here is by ids
    out: dict[str, Any] = {"model": preset, "parameters": model.num_params(), "max_new_tokens": max_new,
                           "threads": 1, "tokens_per_s": {}, "file_mib": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = save_checkpoint(root / "ckpt", model, tokenizer)
        files = {"torch fp32 (safetensors)": ckpt / WEIGHTS_FILE}
        runners: dict[str, Any] = {"torch fp32": model}
        for name, int8 in [("onnx fp32", False), ("onnx int8", True)]:
            folder = export_onnx(ckpt, root / name.replace(" ", "-"), int8=int8)
            files[name] = folder / ONNX_FILE
            runners[name] = load_onnx(folder, threads=1).model
        for name, kind in [("llama.cpp F32", "f32"), ("llama.cpp Q8_0", "q8_0")]:
            files[name] = export_gguf(ckpt, root / f"{kind}.gguf", kind)
        for name, path in files.items():
            out["file_mib"][name] = round(path.stat().st_size / 2**20, 2)
        for batch in (1, 8):
            for name, runner in runners.items():
                out["tokens_per_s"][f"{name}, batch {batch}"] = round(_engine_tokens_per_s(runner, batch, max_new), 1)
        if not peers.available():
            out["llama_cpp"] = peers.MISSING
        else:
            for name, kind in [("llama.cpp F32", "f32"), ("llama.cpp Q8_0", "q8_0")]:
                speed = _llama_cpp_tokens_per_s(files[name], model.config.block_size, max_new)
                out["tokens_per_s"][f"{name}, batch 1"] = round(speed, 1)
    anchor = out["tokens_per_s"]["torch fp32, batch 1"]
    out["speedup_vs_torch_batch_1"] = {
        name.removesuffix(", batch 1"): round(v / anchor, 2) for name, v in out["tokens_per_s"].items() if name.endswith("batch 1")
    }
    return out
