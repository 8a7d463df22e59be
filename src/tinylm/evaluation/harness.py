"""The evaluation harness: generate for every example of a split, then score it.

    task = get_task("code2", model_extra=lm.model.config.extra)
    result = evaluate(lm, task, "test", GenerationConfig(temperature=0))
    write_report(result, "runs/eval")          # report.json, report.md, predictions.jsonl, *.png

Models are prompted in their own prompt format (LanguageModel.encode_prompts: a task model
reads `[bos] input [sep]`, as paired data trains it), and their answer runs to eos.
Generation is batched: every prompt of every example (one per example, or one per line
for line-aligned tasks) is sorted by length and decoded `batch_size` at a time, so rows
of a batch have similar lengths and left-padding wastes little. The figures:

- `generation_s`, `tokens_per_s`: wall time of all batched generation and generated
  tokens per second of it (eos included); `latency_batched_s`: generation_s / examples,
  the cost of one example when a whole split is translated at once.
- `latency_s`: the time to answer one example on its own (its prompts in one batch, as
  `translate` does), measured on `latency_examples` examples: mean, p50, p95. This is the
  thesis's "latency per example".
- `metrics`: exact match (strict, normalized), BLEU, ROUGE-L; `scores`: the means of the
  task's own checks; `errors`: how many non-exact predictions fall in each category of
  the task's taxonomy; `by_length`: exact match and task scores per example length.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.evaluation import metrics
from tinylm.evaluation.task import Anchor, Example, Task
from tinylm.generation import GenerationConfig, GenerationResult, LogitsProcessor


# Prompts decoded together. Larger batches amortize each step's overhead, but every row
# that finishes early makes the engine copy the whole KV cache to drop it, a cost that
# grows with the batch: on CODE-2 lines (2 cores) 64-128 rows were fastest, 256 slower.
DEFAULT_BATCH = 128


@dataclass
class EvalResult:
    task: str
    split: str
    settings: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(repr=False)
    score_labels: dict[str, str] = field(default_factory=dict)
    error_labels: dict[str, str] = field(default_factory=dict)
    anchor: Anchor | None = None


def generate_all(
    lm: LanguageModel, prompts: Sequence[str], config: GenerationConfig, batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
    constraint: Callable[[list[str]], LogitsProcessor | None] | None = None,
) -> list[GenerationResult]:
    """The generation result of every prompt, in order.

    Longest prompts first: a batch's cache is as wide as its longest prompt, and the first
    batch then shows at once whether the largest one fits in memory. `constraint` gives
    the logits processor for a batch's prompts (a task's, see Task.logits_processor)."""
    if batch_size < 1:
        raise TinyLMError(f"batch size must be at least 1, got {batch_size}")
    encoded = lm.encode_prompts(list(prompts))
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    results: list[GenerationResult | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        processor = constraint([prompts[i] for i in rows]) if constraint is not None else None
        for i, result in zip(rows, lm.engine.generate([encoded[i] for i in rows], config, processor)):
            results[i] = result
        if progress is not None:
            progress(min(start + batch_size, len(order)), len(order))
    return results  # type: ignore[return-value]  # every row was filled


def predict(lm: LanguageModel, task: Task, inputs: Sequence[str], config: GenerationConfig,
            batch_size: int = DEFAULT_BATCH, progress: Callable[[int, int], None] | None = None,
            constrained: bool = True) -> tuple[list[str], int]:
    """The task's prediction for each input (prompts generated in one batched pass), and the
    token count; `constrained` applies the task's logits processor, if it has one."""
    if task.max_answer_bytes is not None and config.max_new_tokens > task.max_answer_bytes:
        config = dataclasses.replace(config, max_new_tokens=task.max_answer_bytes)
    per_input = [task.prompts(text) for text in inputs]
    flat = [p for prompts in per_input for p in prompts]
    constraint = (lambda batch: task.logits_processor(lm.tokenizer, batch, config.num_beams)) if constrained else None
    results = generate_all(lm, flat, config, batch_size, progress, constraint)
    answers, tokens = [r.text or "" for r in results], sum(r.completion_tokens for r in results)
    out, k = [], 0
    for prompts in per_input:
        out.append(task.join(answers[k : k + len(prompts)]))
        k += len(prompts)
    return out, tokens


def _latencies(lm: LanguageModel, task: Task, examples: Sequence[Example], config: GenerationConfig,
               constrained: bool) -> list[float]:
    times = []
    for ex in examples:
        t0 = time.perf_counter()
        predict(lm, task, [ex.input], config, constrained=constrained)
        times.append(time.perf_counter() - t0)
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def evaluate(
    lm: LanguageModel,
    task: Task,
    split: str,
    config: GenerationConfig,
    *,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    latency_examples: int = 20,
    progress: Callable[[str, int, int], None] | None = None,
    constrained: bool = True,
) -> EvalResult:
    """Generate for the first `limit` examples of `split` and compute every figure
    (`constrained`: decode with the task's logits processor, if it has one)."""
    if limit is not None and limit < 1:
        raise TinyLMError(f"--limit must be at least 1, got {limit}")
    examples = task.load_split(split, limit)
    if not examples:
        raise TinyLMError(f"the {split} split of {task.name} has no examples")
    say = progress or (lambda stage, done, total: None)

    t0 = time.perf_counter()
    predictions, tokens = predict(lm, task, [ex.input for ex in examples], config, batch_size,
                                  lambda done, total: say("generate", done, total), constrained)
    generation_s = time.perf_counter() - t0

    records = []
    for i, (ex, pred) in enumerate(zip(examples, predictions)):
        scores = task.score(ex, pred)
        em = metrics.exact_match(pred, ex.reference)
        records.append({
            "index": i, "input": ex.input, "reference": ex.reference, "prediction": pred,
            "length": task.length(ex), "exact_match": em,
            "exact_match_normalized": metrics.exact_match_normalized(pred, ex.reference),
            "rouge_l": metrics.rouge_l(pred, ex.reference),
            "scores": scores, "errors": [] if em else task.taxonomy(ex, pred, scores),
        })
        if (i + 1) % 500 == 0 or i + 1 == len(examples):
            say("score", i + 1, len(examples))
    latencies = _latencies(lm, task, examples[:latency_examples], config, constrained) if latency_examples > 0 else []

    n = len(records)
    summary: dict[str, Any] = {
        "examples": n,
        "metrics": {
            "exact_match": sum(r["exact_match"] for r in records) / n,
            "exact_match_normalized": sum(r["exact_match_normalized"] for r in records) / n,
            "bleu": metrics.corpus_bleu(predictions, [ex.reference for ex in examples]),
            "rouge_l": sum(r["rouge_l"] for r in records) / n,
        },
        "scores": {key: sum(float(r["scores"][key]) for r in records) / n for key in task.score_labels},
        "errors": _error_counts(records, task),
        "by_length": _by_length(records, task),
        "speed": {
            "generation_s": generation_s,
            "generated_tokens": tokens,
            "tokens_per_s": tokens / generation_s if generation_s > 0 else 0.0,
            "latency_batched_s": generation_s / n,
            "latency_s": {
                "examples": len(latencies),
                "mean": statistics.fmean(latencies) if latencies else None,
                "p50": _percentile(latencies, 0.5) if latencies else None,
                "p95": _percentile(latencies, 0.95) if latencies else None,
            },
        },
    }
    settings = {"generation": _config_dict(config), "max_answer_bytes": task.max_answer_bytes,
                "batch_size": batch_size, "limit": limit, "constrained": constrained}
    return EvalResult(task.name, split, settings, summary, records, dict(task.score_labels),
                      dict(task.error_labels), task.anchor if split == "test" else None)


def _error_counts(records: list[dict[str, Any]], task: Task) -> dict[str, Any]:
    counts = Counter(cat for r in records for cat in r["errors"])
    wrong = sum(not r["exact_match"] for r in records)
    return {"not_exact": wrong, "counts": {key: counts.get(key, 0) for key in task.error_labels}}


def _by_length(records: list[dict[str, Any]], task: Task) -> list[dict[str, Any]]:
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["length"]].append(r)
    rows = []
    for length in sorted(groups):
        rs = groups[length]
        row: dict[str, Any] = {"length": length, "examples": len(rs),
                               "exact_match": sum(r["exact_match"] for r in rs) / len(rs)}
        for key in task.score_labels:
            row[key] = sum(float(r["scores"][key]) for r in rs) / len(rs)
        rows.append(row)
    return rows


def _config_dict(config: GenerationConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["stop_token_ids"], d["stop_strings"] = list(config.stop_token_ids), list(config.stop_strings)
    return d
