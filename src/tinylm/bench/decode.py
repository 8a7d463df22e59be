"""decode: greedy tokens/s of tinylm's engine against Hugging Face `generate`, same weights, same run.

The model is `llama-style-small` (about 11M parameters) with random weights (speed does not
depend on the values), converted to `LlamaForCausalLM` by tinylm.interop. Both generate 256
new tokens greedily from the same prompts at batch 1 and batch 8, never stopping at eos.
Batch-1 decode reads every weight once per token, so weight bytes / time per token says how
close we are to the memory bandwidth (about 14 GB/s for a matrix-vector product on this CPU).
Goal: >= 1.5x HF at batch 1 and at batch 8.

`threads` rows: the same decode pinned to 1 and then 2 threads (torch.set_num_threads), in
rounds that time every runner once (a burst of other work then slows one round of each,
not every round of one), best round kept: tinylm fp32 at batch 1 and 8, tinylm int8 and int4
(group 32; both decode batch 1 through the fused step, with activations quantized per block of
32 as llama.cpp's Q8_0 does) at batch 1, and llama.cpp on
the same weights exported by tinylm's export-gguf, F32 and Q8_0, at batch 1 (when
llama-cpp-python is installed: tinylm.bench.peers). llama.cpp's greedy tokens are checked
against tinylm's on the first CHECK_TOKENS steps (F32 must agree; Q8_0 quantizes weights and
activations, so its count of agreeing tokens is reported, not required).
Goals: tinylm fp32 >= llama.cpp F32 and tinylm int8 >= llama.cpp Q8_0 at batch 1 on 1 and 2
threads; batch 8 >= 1.5x faster on 2 threads than on 1.
"""

from __future__ import annotations

import copy
import time
from contextlib import ExitStack
from typing import Any

import torch

from tinylm.generation import Engine, GenerationConfig
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.transforms import prepare_for_inference, quantize

PROMPT_LEN = 16
CHECK_TOKENS = 16


def best_of(runs: int, fn) -> float:
    """Fastest of several timed runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.inference_mode()
def run(quick: bool = False) -> dict[str, Any]:
    from tinylm.interop.hf import to_hf

    new_tokens = 32 if quick else 256
    runs = 1 if quick else 3
    torch.manual_seed(0)
    cfg = model_config("llama-style-small", vocab_size=4096)
    model = GPT(cfg).eval()
    hf = to_hf(model).eval()
    # quantized before preparing (prepare_for_inference changes the model in place)
    quantized = {method: Engine(prepare_for_inference(quantize(copy.deepcopy(model), method, **options)))
                 for method, options in (("int8", {}), ("int4", {"group_size": 32}))}
    engine = Engine(prepare_for_inference(model))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    rows = []
    for batch in (1, 8):
        prompts = torch.randint(0, cfg.vocab_size, (batch, PROMPT_LEN))
        config = GenerationConfig(max_new_tokens=new_tokens, temperature=0.0)
        ours = engine.generate(prompts.tolist(), config)
        theirs = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        same = all(r.token_ids == t[PROMPT_LEN:].tolist() for r, t in zip(ours, theirs))
        t_ours = best_of(runs, lambda: engine.generate(prompts.tolist(), config))
        t_hf = best_of(runs, lambda: hf.generate(
            prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0))
        tokens = batch * new_tokens
        rows.append({
            "batch": batch,
            "tinylm_tokens_per_s": round(tokens / t_ours, 1),
            "hf_tokens_per_s": round(tokens / t_hf, 1),
            "speedup_vs_hf": round(t_hf / t_ours, 2),
            "same_tokens_as_hf": same,
            "tinylm_weight_gb_per_s": round(weight_bytes * new_tokens / t_ours / 1e9, 2),
        })
    threads = _thread_rows(model, engine, quantized, new_tokens, runs)
    return {
        "model": {"preset": "llama-style-small", "parameters": model.num_params(), "weight_bytes": weight_bytes},
        "new_tokens": new_tokens,
        "prompt_tokens": PROMPT_LEN,
        "rows": rows,
        "threads": threads,
        "goal": {"speedup_vs_hf_batch_1": ">= 1.5", "speedup_vs_hf_batch_8": ">= 1.5",
                 "tinylm_fp32_vs_llama_cpp_f32_batch_1": ">= 1.0 at 1 and 2 threads",
                 "tinylm_int8_vs_llama_cpp_q8_0_batch_1": ">= 1.0 at 1 and 2 threads",
                 "batch_8_2_threads_vs_1_thread": ">= 1.5"},
        "anchor": "Hugging Face transformers generate() on the same weights, same run; llama.cpp (threads rows)",
    }


def _thread_rows(model: GPT, engine: Engine, quantized: dict[str, Engine], new_tokens: int,
                 runs: int) -> dict[str, Any]:
    """tinylm fp32 (batch 1 and 8), tinylm int8 / int4 and llama.cpp F32 / Q8_0 (batch 1) at 1 and 2 threads."""
    from tinylm.bench import peers

    cfg = model.config
    torch.manual_seed(1)
    prompts = {b: torch.randint(0, cfg.vocab_size, (b, PROMPT_LEN)).tolist() for b in (1, 8)}
    config = GenerationConfig(max_new_tokens=new_tokens, temperature=0.0)
    before = torch.get_num_threads()
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        files = stack.enter_context(peers.gguf_files(model)) if peers.available() else {}
        try:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                timers = {f"tinylm fp32, batch {b}": (lambda ids=ids: engine.generate(ids, config)) for b, ids in prompts.items()}
                timers.update({f"tinylm {method}, batch 1": (lambda e=e: e.generate(prompts[1], config))
                               for method, e in quantized.items()})
                row: dict[str, Any] = {}
                for kind, name in peers.GGUF_KINDS.items():
                    if kind not in files:
                        row[name] = peers.MISSING
                        continue
                    llm = peers.LlamaCpp(files[kind], cfg.block_size, threads)
                    ours = engine.generate(prompts[1], GenerationConfig(max_new_tokens=CHECK_TOKENS, temperature=0.0))
                    row[f"{name}: same first tokens as tinylm fp32"] = (
                        f"{peers.same_prefix(llm.greedy(prompts[1][0], CHECK_TOKENS), ours[0].token_ids)}/{CHECK_TOKENS}")
                    timers[f"{name}, batch 1"] = lambda llm=llm: llm.greedy(prompts[1][0], new_tokens)
                best = {name: float("inf") for name in timers}
                for fn in timers.values():
                    fn()  # warm-up
                for _ in range(runs):
                    for name, fn in timers.items():
                        best[name] = min(best[name], best_of(1, fn))
                for name, seconds in best.items():
                    batch = 8 if name.endswith("batch 8") else 1
                    row[f"{name} tokens/s"] = round(batch * new_tokens / seconds, 1)
                f32 = row.get("llama.cpp F32, batch 1 tokens/s")
                if f32 is not None:
                    row["tinylm fp32 / llama.cpp F32, batch 1"] = round(row["tinylm fp32, batch 1 tokens/s"] / f32, 2)
                q8 = row.get("llama.cpp Q8_0, batch 1 tokens/s")
                if q8 is not None:
                    row["tinylm int8 / llama.cpp Q8_0, batch 1"] = round(row["tinylm int8, batch 1 tokens/s"] / q8, 2)
                out[f"{threads} thread{'s' if threads > 1 else ''}"] = row
        finally:
            torch.set_num_threads(before)
    one, two = out["1 thread"], out["2 threads"]
    out["batch 8, 2 threads / 1 thread"] = round(two["tinylm fp32, batch 8 tokens/s"] / one["tinylm fp32, batch 8 tokens/s"], 2)
    out["batch 1, 2 threads / 1 thread"] = round(two["tinylm fp32, batch 1 tokens/s"] / one["tinylm fp32, batch 1 tokens/s"], 2)
    return out
