"""grammar: what grammar-constrained decoding costs per token, and how long grammars take to compile.

Model: a llama-style model at nanoGPT's CPU size (4 layers, 128 dims, about 0.85M
parameters) with random weights and a character vocabulary (printable ASCII plus byte
fallback, 358 ids), the size of the arithmetic and CODE-2 models: its decode step is about
0.2 ms at batch 1 (the fused C++ step) on a quiet core, so any mask cost shows. One torch thread (the fastest
for a model this small). Sampling at temperature 1: a random model wanders through every
corner of a grammar, long comments and strings included.

Workloads: the CODE-2 full grammar, a JSON schema (nested object, enum, bounded strings
and integers, an array) and the grammar-decoding study's arithmetic grammar; batch 1 and batch 8.

Overhead per token: constrained against free decoding of exactly the same number of tokens
per row (new_tokens; the free run ignores eos, the constrained run may not stop early:
eos is masked after the grammar's mask, counted against the grammar (one torch call per step with
masks in the step, a cleared bit when overlapped), and the JSON workload is a stream of schema objects, one per line,
so every grammar can always go on). Runs alternate, and the headline is the median over
runs of the wall time per token with the engine's default (process CPU time is reported
beside it as overhead_pct_cpu). With one torch thread on a machine of two cores or more the
default overlaps the masks (masks_overlapped): the fused step runs on its own C++ thread while
the decoder prepares the next bitmask, which the step's finish applies in C++ (the bench's eos
ban is cleared from that bitmask during the forward pass too). overhead_pct_masks_in_step is
the same constrained run with overlap_masks=False, timed in the same rounds. The machine is
shared, so run it twice. Goal: <= 10 % (the structure issue asks <= 5 %; docs/grammar.md says
where it stands). grammar_us_per_token is the time spent inside the GrammarProcessor's calls in
the decode step, grammar_overlapped_us_per_token in its calls during the forward pass, and
grammar_us_per_token_masks_in_step the former with masks in the step (from further runs with
timers, whose wall time is not used).

Correctness: separate ordinary constrained runs (eos allowed, plain schema) check every
output: a finished row must be a sentence of its grammar (for JSON, also json.loads), a
row cut by max_new_tokens a prefix of one; grammatical_pct is over finished rows.

Compile time: each built-in grammar and the schema compiled cold (caches cleared; best of
3) for the character vocabulary and for a 1024-token byte-level BPE. Goal: <= 50 ms.

Anchor: the grammar-decoding study measured grammar-constrained requests 79x (50 tokens) to 115x (200
tokens) slower than free ones (Llama 3 8B on vLLM 0.5.5 with Outlines): an overhead of
7 800 % to 11 400 %.
"""

from __future__ import annotations

import json
import re
import statistics
import string
import time
from typing import Any

import numpy as np
import torch

from tinylm.generation import Engine, GenerationConfig, LogitsProcessor
from tinylm.generation.continuous import masks_overlap_by_default

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["student", "teacher", "admin"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 4},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}, "zip": {"type": "string", "pattern": "[0-9]{5}"}},
            "required": ["city", "zip"],
        },
    },
    "required": ["name", "age", "role", "address"],
}
GOALS = {"overhead_pct": 10.0, "compile_ms": 50.0}
ANCHOR = {"slowdown_x": [79, 115], "source": "the grammar-decoding study: Llama 3 8B on vLLM 0.5.5 + Outlines, GBD vs NoGBD mean time "
          "per request at max_tokens 50 and 200"}


class _Timed(LogitsProcessor):
    """Times every hook of the processor it wraps (wall clock: the calls are microseconds):
    `seconds` in the step, `prepare_seconds` in prepare and prepared_bitmask, which the decoder
    calls during the forward pass when it overlaps."""

    def __init__(self, inner: LogitsProcessor) -> None:
        self.inner, self.seconds, self.prepare_seconds = inner, 0.0, 0.0

    def __call__(self, logits, rows, generated):
        t0 = time.perf_counter()
        dead = self.inner(logits, rows, generated)
        self.seconds += time.perf_counter() - t0
        return dead

    def advance(self, row, token_id) -> None:
        t0 = time.perf_counter()
        self.inner.advance(row, token_id)
        self.seconds += time.perf_counter() - t0

    def is_finished(self, row) -> bool:
        t0 = time.perf_counter()
        done = self.inner.is_finished(row)
        self.seconds += time.perf_counter() - t0
        return done

    def prepare(self, rows, generated) -> None:
        t0 = time.perf_counter()
        self.inner.prepare(rows, generated)
        self.prepare_seconds += time.perf_counter() - t0

    def prepared_bitmask(self, rows, generated):
        t0 = time.perf_counter()
        prepared = self.inner.prepared_bitmask(rows, generated)
        self.prepare_seconds += time.perf_counter() - t0
        return prepared


class _NoEarlyEnd(LogitsProcessor):
    """The grammar's mask, then eos masked too, so a row decodes exactly max_new_tokens tokens.

    It passes on the grammar's rows with nothing allowed as they are: the workloads are
    grammars that can always go on (eos is never the only token allowed), and a row that
    masking eos left with nothing would make the draw fail, loudly, not skew a figure."""

    def __init__(self, inner: LogitsProcessor, eos_id: int) -> None:
        self.inner, self.eos_id = inner, eos_id

    def __call__(self, logits, rows, generated):
        dead = self.inner(logits, rows, generated)
        logits.select(1, self.eos_id).fill_(float("-inf"))
        return dead

    def advance(self, row, token_id) -> None:
        self.inner.advance(row, token_id)

    def prepare(self, rows, generated) -> None:
        self.inner.prepare(rows, generated)

    def prepared_bitmask(self, rows, generated):
        """The grammar's prepared bitmask with eos's bit cleared: during the forward pass, like the
        grammar's own work, instead of a torch call after it."""
        prepared = self.inner.prepared_bitmask(rows, generated)
        if prepared is not None:
            words = prepared[0].numpy().view(np.uint32)
            words[: len(rows), self.eos_id // 32] &= np.uint32(~(1 << self.eos_id % 32) & 0xFFFFFFFF)
        return prepared


def _char_tokenizer():
    from tinylm.tokenizers import CharTokenizer

    return CharTokenizer(string.printable.replace("\x0b", "").replace("\x0c", ""))


def _bpe_tokenizer():
    from tinylm.tasks.code2 import generate_examples
    from tinylm.tokenizers import train_tokenizer

    texts = [f"{e.input}\n{e.output}" for e in generate_examples("full", 2000, 0)]
    return train_tokenizer("bpe", texts + [json.dumps(SCHEMA), "(9*15)==(9*10+9*5)==(135*1)"], 1024)


def _workloads() -> dict[str, tuple[Any, Any]]:
    """name -> (grammar timed without early ends, grammar whose outputs are checked)."""
    from tinylm.constrain import Grammar, builtin

    schema = Grammar.json_schema(SCHEMA, "bench schema")
    # One schema object per line, as many as fit: the schema's rules, its root renamed.
    lines = Grammar.ebnf('root ::= item ("\\n" item)*\n' + re.sub(r"^root ::=", "item ::=", schema.ebnf_text(), flags=re.M),
                         "bench schema, one object per line")
    return {"code2-full": (builtin("code2-full"), builtin("code2-full")), "json-schema": (lines, schema),
            "arithmetic": (builtin("arithmetic"), builtin("arithmetic"))}


def _compile_times(tokenizers: dict[str, Any]) -> list[dict[str, Any]]:
    import xgrammar as xgr

    from tinylm.constrain import builtin, clear_cache, compile_grammar
    from tinylm.constrain.compiler import vocabulary

    grammars = {**{name: builtin(name) for name in ("code2-thesis", "code2-full", "arithmetic", "json")},
                "json-schema": _workloads()["json-schema"][1]}
    rows = []
    for tok_name, tok in tokenizers.items():
        t0 = time.perf_counter()
        xgr.TokenizerInfo(vocabulary(tok), xgr.VocabType.RAW, stop_token_ids=[tok.eos_id])
        info_ms = (time.perf_counter() - t0) * 1000
        for name, grammar in grammars.items():
            times = []
            for _ in range(3):
                clear_cache()
                times.append(compile_grammar(grammar, tok).compile_ms)
            rows.append({"tokenizer": tok_name, "vocab_size": tok.vocab_size, "grammar": name,
                         "compile_ms": round(min(times), 2), "tokenizer_info_ms": round(info_ms, 2)})
    return rows


def _timed_generate(engine: Engine, batch: int, config: GenerationConfig, processor) -> tuple[float, float, list]:
    """(process CPU seconds, wall seconds, results)."""
    bos = engine.tokenizer.bos_id
    c0, w0 = time.process_time(), time.perf_counter()
    results = engine.generate([[bos]] * batch, config, processor)
    return time.process_time() - c0, time.perf_counter() - w0, results


def _overhead(engine: Engine, compiled: Any, batch: int, new_tokens: int, runs: int) -> dict[str, Any]:
    from tinylm.constrain import GrammarProcessor

    eos = engine.tokenizer.eos_id
    in_step = Engine(engine.model, engine.tokenizer, overlap_masks=False)  # the same, masks computed in the step
    cpu, wall, wall_in_step, inside, inside_in_step, during = [], [], [], [], [], []
    for seed in range(runs):
        config = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, seed=seed, ignore_eos=True)
        c_cpu, c_wall, results = _timed_generate(engine, batch, config, _NoEarlyEnd(GrammarProcessor(compiled), eos))
        f_cpu, f_wall, _ = _timed_generate(engine, batch, config, None)
        s_wall = _timed_generate(in_step, batch, config, _NoEarlyEnd(GrammarProcessor(compiled), eos))[1]
        # Runs of their own with timers (the timers cost time too): the default, and masks in the step.
        timed, timed_in_step = _Timed(GrammarProcessor(compiled)), _Timed(GrammarProcessor(compiled))
        _timed_generate(engine, batch, config, _NoEarlyEnd(timed, eos))
        _timed_generate(in_step, batch, config, _NoEarlyEnd(timed_in_step, eos))
        if any(r.completion_tokens != new_tokens for r in results):
            raise AssertionError("a constrained row ended early; the timing would compare unequal work")
        tokens = batch * new_tokens
        cpu.append((c_cpu / tokens, f_cpu / tokens))
        wall.append((c_wall / tokens, f_wall / tokens))
        wall_in_step.append(s_wall / tokens)
        inside.append(timed.seconds / tokens)
        during.append(timed.prepare_seconds / tokens)
        inside_in_step.append(timed_in_step.seconds / tokens)
    med = lambda pairs, i: statistics.median(p[i] for p in pairs)  # noqa: E731
    return {
        "batch": batch,
        "tokens_per_run": batch * new_tokens,
        "masks_overlapped": masks_overlap_by_default() if engine.overlap_masks is None else engine.overlap_masks,
        "free_ms_per_token": round(1e3 * med(wall, 1), 3),
        "constrained_ms_per_token": round(1e3 * med(wall, 0), 3),
        "overhead_pct": round(100 * (med(wall, 0) / med(wall, 1) - 1), 2),
        "overhead_pct_masks_in_step": round(100 * (statistics.median(wall_in_step) / med(wall, 1) - 1), 2),
        "free_cpu_ms_per_token": round(1e3 * med(cpu, 1), 3),
        "constrained_cpu_ms_per_token": round(1e3 * med(cpu, 0), 3),
        "overhead_pct_cpu": round(100 * (med(cpu, 0) / med(cpu, 1) - 1), 2),
        "grammar_us_per_token": round(1e6 * statistics.median(inside), 1),
        "grammar_overlapped_us_per_token": round(1e6 * statistics.median(during), 1),
        "grammar_us_per_token_masks_in_step": round(1e6 * statistics.median(inside_in_step), 1),
    }


def _correctness(engine: Engine, grammar: Any, compiled: Any, new_tokens: int, seeds: int) -> dict[str, Any]:
    from tinylm.constrain import GrammarProcessor

    processor = GrammarProcessor(compiled)
    ok = finished = cut = 0
    for seed in range(seeds):
        config = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, seed=seed)
        for r in _timed_generate(engine, 8, config, processor)[2]:
            if r.finish_reason == "stop":
                finished += 1
                good = grammar.accepts(r.text)
                if good and grammar.kind == "json_schema":
                    json.loads(r.text)
                ok += good
            elif grammar.is_prefix(r.text):
                cut += 1
            else:
                raise AssertionError(f"constrained output left its grammar: {r.text!r}")
    return {"finished_rows": finished, "cut_rows": cut,
            "grammatical_pct": round(100 * ok / finished, 1) if finished else None}


def run(quick: bool = False) -> dict[str, Any]:
    from tinylm.constrain import GrammarProcessor, compile_grammar
    from tinylm.model import GPT
    from tinylm.presets import model_config
    from tinylm.transforms import prepare_for_inference

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        new_tokens, runs, seeds = (32, 2, 2) if quick else (128, 9, 8)
        tok = _char_tokenizer()
        torch.manual_seed(0)
        model = prepare_for_inference(GPT(model_config("llama-style-nano", vocab_size=tok.vocab_size, block_size=256, n_kv_head=None)))
        engine = Engine(model, tok)
        rows = []
        with torch.inference_mode():
            for name, (timed_grammar, checked_grammar) in _workloads().items():
                compiled = compile_grammar(timed_grammar, tok, model.config.vocab_size)
                checked = compile_grammar(checked_grammar, tok, model.config.vocab_size)
                # Warm-up: the first calls load kernels and allocate; those are not per-token costs.
                engine.generate([[tok.bos_id]] * 8, GenerationConfig(max_new_tokens=8, seed=0), GrammarProcessor(compiled))
                engine.generate([[tok.bos_id]] * 8, GenerationConfig(max_new_tokens=8, seed=0))
                check = _correctness(engine, checked_grammar, checked, new_tokens, seeds)
                for batch in (1, 8):
                    rows.append({"grammar": name, **_overhead(engine, compiled, batch, new_tokens, runs), **check})
        compile_rows = _compile_times({"char": tok} if quick else {"char": tok, "bpe-1024": _bpe_tokenizer()})
    finally:
        torch.set_num_threads(threads)
    worst = max(r["overhead_pct"] for r in rows)
    return {
        "model": {"preset": "llama-style-nano", "parameters": model.num_params(), "vocab_size": tok.vocab_size,
                  "threads": 1},
        "new_tokens": new_tokens, "runs": runs,
        "decode": rows,
        "compile": compile_rows,
        "summary": {
            "worst_overhead_pct": worst,
            "worst_compile_ms": max(r["compile_ms"] for r in compile_rows),
            "grammatical_pct": min(r["grammatical_pct"] for r in rows if r["grammatical_pct"] is not None),
            "slowdown_x": round(1 + worst / 100, 3),
        },
        "goal": {"overhead_pct": f"<= {GOALS['overhead_pct']}", "compile_ms": f"<= {GOALS['compile_ms']}"},
        "anchor": ANCHOR,
    }
