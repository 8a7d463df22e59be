"""A task with and without a grammar: the same model, the same prompts, the same decoding.

    python -m tinylm.constrain.compare runs/code2/model --task code2 --grammar code2-thesis --limit 500

For every example of the split, the task's prompts are answered twice, free and under the
grammar (batched, longest prompts first, as the evaluation harness does); each prediction
gets the task's own scores (for CODE-2: syntactic validity and execution accuracy by the
emulator), and each single answer is checked against the grammar itself. The grammar is
compiled once, before the clock starts. Prints a Markdown table (or one JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

from tinylm.errors import TinyLMError


def _answers(lm: Any, prompts: list[str], config: Any, processor: Any, batch_size: int) -> tuple[list[Any], float]:
    from tinylm.data import encode_prompt

    encoded = [encode_prompt(lm.tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    results: list[Any] = [None] * len(encoded)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        for i, result in zip(rows, lm.engine.generate([encoded[i] for i in rows], config, processor)):
            results[i] = result
    return results, time.perf_counter() - started


def compare(lm: Any, task: Any, grammar: Any, config: Any, *, split: str = "test", limit: int | None = None,
            batch_size: int = 256) -> dict[str, Any]:
    from tinylm.constrain import GrammarProcessor, compile_grammar

    examples = task.load_split(split, limit)
    if not examples:
        raise TinyLMError(f"the {split} split of {task.name} has no examples")
    if task.max_answer_bytes is not None and config.max_new_tokens > task.max_answer_bytes:
        import dataclasses

        config = dataclasses.replace(config, max_new_tokens=task.max_answer_bytes)
    per_example = [task.prompts(ex.input) for ex in examples]
    prompts = [p for group in per_example for p in group]
    compiled = compile_grammar(grammar, lm.tokenizer, lm.model.config.vocab_size)
    modes = {}
    for mode, processor in (("free", None), ("grammar", GrammarProcessor(compiled))):
        results, seconds = _answers(lm, prompts, config, processor, batch_size)
        scores: Counter = Counter()
        k = 0
        for ex, group in zip(examples, per_example):
            answers = [r.text or "" for r in results[k : k + len(group)]]
            k += len(group)
            prediction = task.join(answers)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinylm.constrain.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--task", default="code2")
    p.add_argument("--grammar", required=True, help="a built-in grammar or an EBNF file")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        import torch

        import tinylm
        from tinylm.constrain import Grammar
        from tinylm.evaluation import get_task
        from tinylm.generation import GenerationConfig

        if args.threads:
            torch.set_num_threads(args.threads)
        lm = tinylm.load(args.checkpoint)
        task = get_task(args.task, model_extra=lm.model.config.extra)
        config = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                  seed=args.seed)
        result = compare(lm, task, Grammar.resolve(args.grammar), config, split=args.split, limit=args.limit,
                         batch_size=args.batch_size)
    except TinyLMError as e:
        print(f"tinylm: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else markdown(result, task.score_labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
