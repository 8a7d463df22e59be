"""The grammar-decoding study's experiment, run its way and scored honestly.

The study's protocol (its reference notes, section 1.4): one prompt ("Rewrite 9 * 15 as ..."),
100 fixed seeds, temperature 1, top-p 0.95, max_tokens 50 / 100 / 200, each generation a
separate sequential request, without the grammar ("NoGBD") and with it ("GBD"). We keep
all of that and change two things, both in the study's disfavour as a baseline:
- the same prompt in both modes (the study changed prompts between modes, mixing the
  prompt's effect with the grammar's);
- a third measure beside its two: true correctness (checks.py).
Time per request is the wall time of one `Engine.generate` call, batch 1, as the study
measured vLLM's finished_time - arrival_time; the grammar is compiled once, before.

Beyond the study, `heldout` runs both modes once on each of up to 100 test problems the
model never saw in training (one seed each, max_tokens 100): one problem says little.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinylm.tasks.arithmetic.checks import score
from tinylm.tasks.arithmetic.data import STUDY_PROBLEM, Problem

MAX_TOKENS = (50, 100, 200)
MODES = ("free", "grammar")
TEMPERATURE, TOP_P = 1.0, 0.95

# The grammar-decoding study's tables 4.2-4.13 (Llama 3 on vLLM 0.5.5 + Outlines): (syntactic %, "semantic" %, mean s/request).
STUDY_TABLES = {
    "Llama 3 8B": {
        ("free", 50): (4, 48, 0.095), ("free", 100): (4, 48, 0.094), ("free", 200): (4, 48, 0.091),
        ("grammar", 50): (86, 86, 7.50), ("grammar", 100): (96, 96, 8.72), ("grammar", 200): (98, 98, 10.42),
    },
    "Llama 3 70B": {
        ("free", 50): (73, 80, 3.26), ("free", 100): (73, 80, 7.72), ("free", 200): (73, 80, 11.58),
        ("grammar", 50): (84, 84, 13.41), ("grammar", 100): (99, 99, 27.61), ("grammar", 200): (100, 100, 25.40),
    },
}


def fixed_seeds(n: int = 100) -> list[int]:
    """n fixed seeds, drawn once the way the study drew its own (randint(1, SAMPLES * 10e9));
    its list is not published, so ours is this deterministic one."""
    rng = random.Random(3)
    return [rng.randint(1, int(n * 10e9)) for _ in range(n)]


@dataclass
class Cell:
    mode: str
    max_tokens: int
    n: int = 0
    syntactic: int = 0
    sympy: int = 0
    correct: int = 0
    sympy_refused: int = 0
    finish: Counter = field(default_factory=Counter)
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, text: str, target: int, finish_reason: str, tokens: int, seconds: float) -> dict[str, Any]:
        s = score(text, target)
        self.n += 1
        self.syntactic += s.syntactic
        self.sympy += s.sympy
        self.correct += s.correct
        self.sympy_refused += s.sympy_refused
        self.finish[finish_reason] += 1
        self.tokens.append(tokens)
        self.seconds.append(seconds)
        return asdict(s)

    def summary(self) -> dict[str, Any]:
        pct = lambda k: round(100.0 * k / self.n, 1)  # noqa: E731 - a percentage of this cell
        total = sum(self.seconds)
        return {
            "mode": self.mode, "max_tokens": self.max_tokens, "requests": self.n,
            "syntactic_pct": pct(self.syntactic), "sympy_pct": pct(self.sympy), "correct_pct": pct(self.correct),
            "sympy_refused": self.sympy_refused, "finish_reasons": dict(self.finish),
            "mean_tokens": round(statistics.fmean(self.tokens), 1),
            "total_s": round(total, 3), "mean_s": round(total / self.n, 4),
            "ms_per_token": round(1000 * total / max(1, sum(self.tokens)), 3),
        }


class _Runner:
    def __init__(self, lm: Any) -> None:
        from tinylm.constrain import GrammarProcessor, builtin, compile_grammar

        self.lm = lm
        compiled = compile_grammar(builtin("arithmetic"), lm.tokenizer, lm.model.config.vocab_size)
        self.compile_ms = compiled.compile_ms
        self.processor = GrammarProcessor(compiled)

    def one(self, problem: Problem, mode: str, max_tokens: int, seed: int) -> tuple[str, str, int, float]:
        from tinylm.generation import GenerationConfig

        config = GenerationConfig(max_new_tokens=max_tokens, temperature=TEMPERATURE, top_p=TOP_P, seed=seed)
        [prompt] = self.lm.encode_prompts([problem.prompt])  # [bos] prompt [sep]: the model's prompt format
        processor = self.processor if mode == "grammar" else None
        started = time.perf_counter()
        [result] = self.lm.engine.generate([prompt], config, processor)
        seconds = time.perf_counter() - started
        return result.text or "", result.finish_reason, result.completion_tokens, seconds


def run_protocol(
    lm: Any,
    *,
    seeds: Sequence[int] | None = None,
    max_tokens: Sequence[int] = MAX_TOKENS,
    modes: Sequence[str] = MODES,
    problem: Problem = Problem(*STUDY_PROBLEM),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The study's grid for one problem; returns cells (summaries) and every sample."""
    import torch

    seeds = list(fixed_seeds() if seeds is None else seeds)
    runner = _Runner(lm)
    cells, samples = [], []
    with torch.inference_mode():
        for mode in modes:
            for limit in max_tokens:
                cell = Cell(mode, limit)
                for seed in seeds:
                    text, reason, tokens, seconds = runner.one(problem, mode, limit, seed)
                    scores = cell.add(text, problem.value, reason, tokens, seconds)
                    samples.append({"mode": mode, "max_tokens": limit, "seed": seed, "text": text,
                                    "finish_reason": reason, "tokens": tokens, "seconds": seconds, **scores})
                cells.append(cell.summary())
                if progress:
                    progress(_line(cells[-1]))
    return {"problem": f"{problem.a} {problem.op} {problem.b}", "prompt": problem.prompt, "target": problem.value,
            "seeds": len(seeds), "temperature": TEMPERATURE, "top_p": TOP_P, "compile_ms": round(runner.compile_ms, 2),
            "cells": cells, "samples": samples}


def run_heldout(lm: Any, problems: Sequence[Problem], *, max_tokens: int = 100, modes: Sequence[str] = MODES,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Each problem once per mode (seed i for problem i): correctness on unseen problems."""
    import torch

    seeds = fixed_seeds(len(problems))
    runner = _Runner(lm)
    cells, samples = [], []
    with torch.inference_mode():
        for mode in modes:
            cell = Cell(mode, max_tokens)
            for problem, seed in zip(problems, seeds):
                text, reason, tokens, seconds = runner.one(problem, mode, max_tokens, seed)
                scores = cell.add(text, problem.value, reason, tokens, seconds)
                samples.append({"mode": mode, "problem": problem.prompt, "target": problem.value, "seed": seed,
                                "text": text, "finish_reason": reason, **scores})
            cells.append(cell.summary())
            if progress:
                progress(_line(cells[-1]))
    return {"problems": len(problems), "max_tokens": max_tokens, "cells": cells, "samples": samples}


def _line(c: dict[str, Any]) -> str:
    return (f"{c['mode']:>7} max_tokens {c['max_tokens']:>3}: syntactic {c['syntactic_pct']:5.1f}%  "
            f"sympy {c['sympy_pct']:5.1f}%  correct {c['correct_pct']:5.1f}%  {1000 * c['mean_s']:7.1f} ms/request  "
            f"{c['mean_tokens']:5.1f} tokens  {c['finish_reasons']}")


def markdown(protocol: dict[str, Any], heldout: dict[str, Any] | None = None) -> str:
    """The grammar-decoding study's table with ours beside its figures (8B and 70B), then the held-out table."""
    mode_name = {"free": "NoGBD (free)", "grammar": "GBD (grammar)"}
    lines = [
        f"Problem `{protocol['problem']}` (target {protocol['target']}), {protocol['seeds']} seeds, "
        f"temperature {protocol['temperature']}, top-p {protocol['top_p']}; grammar compiled once in "
        f"{protocol['compile_ms']} ms.",
        "",
        "| max tokens | mode | syntactic (Lark) | \"semantic\" (SymPy parses) | **true correct** | mean time / request "
        "| tokens / request | finish (stop / length) | study 8B: syn / sem / time | study 70B: syn / sem / time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in protocol["cells"]:
        key = (c["mode"], c["max_tokens"])
        study = [STUDY_TABLES[m].get(key) for m in STUDY_TABLES]
        finish = c["finish_reasons"]
        lines.append(
            f"| {c['max_tokens']} | {mode_name[c['mode']]} | {c['syntactic_pct']:.0f} % | {c['sympy_pct']:.0f} % "
            f"| **{c['correct_pct']:.0f} %** | {1000 * c['mean_s']:.1f} ms | {c['mean_tokens']:.1f} "
            f"| {finish.get('stop', 0)} / {finish.get('length', 0)} | "
            + " | ".join(f"{t[0]} % / {t[1]} % / {t[2]:.2f} s" if t else "" for t in study) + " |"
        )
    ratios = []
    by_key = {(c["mode"], c["max_tokens"]): c for c in protocol["cells"]}
    for limit in sorted({c["max_tokens"] for c in protocol["cells"]}):
        free, gram = by_key.get(("free", limit)), by_key.get(("grammar", limit))
        if free and gram:
            ratios.append(f"{limit} tokens: {gram['mean_s'] / free['mean_s']:.2f}x per request, "
                          f"{gram['ms_per_token'] / free['ms_per_token']:.2f}x per token")
    if ratios:
        lines += ["", "Grammar vs free, time: " + "; ".join(ratios) + " (the study, 8B: 79x at 50 tokens, 115x at 200)."]
    if heldout:
        lines += [
            "",
            f"Held-out problems ({heldout['problems']} test problems never seen in training, one seed each, "
            f"max tokens {heldout['max_tokens']}):",
            "",
            "| mode | syntactic (Lark) | \"semantic\" (SymPy parses) | **true correct** | mean time / request |",
            "|---|---|---|---|---|",
        ]
        for c in heldout["cells"]:
            lines.append(f"| {mode_name[c['mode']]} | {c['syntactic_pct']:.0f} % | {c['sympy_pct']:.0f} % "
                         f"| **{c['correct_pct']:.0f} %** | {1000 * c['mean_s']:.1f} ms |")
    return "\n".join(lines) + "\n"
