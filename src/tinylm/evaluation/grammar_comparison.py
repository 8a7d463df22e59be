"""A task with and without a grammar: the same model, the same prompts, the same decoding.

    tinylm compare-grammar runs/code2-thesis/model --grammar code2-thesis --limit 500

For every example of the split, the task's prompts are answered twice, free and under the
grammar (batched, longest prompts first: the harness's generate_all); each prediction gets
the task's own scores (for CODE-2: syntactic validity and execution accuracy by the
emulator), and each single answer is checked against the grammar itself. The grammar is
compiled once, before the clock starts. `markdown` writes the table the command prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from tinylm.errors import TinyLMError


def compare(lm: Any, task: Any, grammar: Any, config: Any, *, split: str = "test", limit: int | None = None,
            batch_size: int = 256) -> dict[str, Any]:
    from tinylm.constrain import GrammarProcessor, compile_grammar
    from tinylm.evaluation.harness import generate_all

    examples = task.load_split(split, limit)
    if not examples:
        raise TinyLMError(f"the {split} split of {task.name} has no examples")
    if task.max_answer_bytes is not None and config.max_new_tokens > task.max_answer_bytes:
        config = dataclasses.replace(config, max_new_tokens=task.max_answer_bytes)
    per_example = [task.prompts(ex.input) for ex in examples]
    prompts = [p for group in per_example for p in group]
    compiled = compile_grammar(grammar, lm.tokenizer, lm.model.config.vocab_size)
    modes = {}
    for mode, processor in (("free", None), ("grammar", GrammarProcessor(compiled))):
        started = time.perf_counter()
        # One processor for every batch: it holds one matcher per row and starts each row anew.
        results = generate_all(lm, prompts, config, batch_size, constraint=lambda batch: processor)
        seconds = time.perf_counter() - started
        scores: Counter = Counter()
        k = 0
        for ex, group in zip(examples, per_example):
            prediction = task.join([r.text or "" for r in results[k : k + len(group)]])
            k += len(group)
            for key, value in task.score(ex, prediction).items():
                scores[key] += float(value)
            scores["exact_match"] += float(prediction == ex.reference)
        tokens = sum(r.completion_tokens for r in results)
        modes[mode] = {
            "scores": {key: round(value / len(examples), 4) for key, value in scores.items()},
            "answers_in_grammar": round(sum(grammar.accepts(r.text or "") for r in results) / len(results), 4),
            "finish_reasons": dict(Counter(r.finish_reason for r in results)),
            "seconds": round(seconds, 2), "tokens": tokens, "ms_per_token": round(1000 * seconds / max(tokens, 1), 3),
        }
    return {"task": task.name, "split": split, "examples": len(examples), "prompts": len(prompts),
            "grammar": str(grammar), "compile_ms": round(compiled.compile_ms, 2),
            "decoding": {"temperature": config.temperature, "top_p": config.top_p, "seed": config.seed,
                         "max_new_tokens": config.max_new_tokens}, "modes": modes}


def markdown(result: dict[str, Any], labels: dict[str, str]) -> str:
    keys = [k for k in labels if k in result["modes"]["free"]["scores"]] + ["exact_match"]
    names = {**labels, "exact_match": "exact match"}
    lines = [
        f"{result['task']}, {result['split']} split, {result['examples']} examples ({result['prompts']} prompts), "
        f"grammar {result['grammar']} (compiled in {result['compile_ms']} ms), decoding {result['decoding']}",
        "",
        "| mode | " + " | ".join(names[k] for k in keys) + " | answers in the grammar | finish reasons | ms / token |",
        "|---|" + "---|" * (len(keys) + 3),
    ]
    for mode, m in result["modes"].items():
        lines.append(f"| {mode} | " + " | ".join(f"{100 * m['scores'][k]:.1f} %" for k in keys)
                     + f" | {100 * m['answers_in_grammar']:.1f} % | {m['finish_reasons']} | {m['ms_per_token']} |")
    return "\n".join(lines) + "\n"
