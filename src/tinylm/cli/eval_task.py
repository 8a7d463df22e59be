"""`tinylm eval-task CHECKPOINT --split test`: evaluate a model on its task's split.

    tinylm eval-task runs/code2-thesis/model --split test
    tinylm eval-task runs/code2-thesis/model --split test --thesis-decoding --limit 500
    tinylm eval-task runs/code2-full/model --task code2 --split valid --num-beams 4 --out runs/eval-beam
    tinylm eval-task runs/code2-thesis/model --task code2-thesis --split handwritten
    tinylm eval-task runs/t5-lora/adapter --task code2-thesis --split test   # a Hugging Face seq2seq model

CHECKPOINT is a tinylm checkpoint, or a Hugging Face seq2seq model folder (T5) or the PEFT
adapter folder `tinylm finetune HF_DIR` wrote (--task required; decoded by transformers,
without the task's constraint). The task is the one the model was trained for (its
checkpoint says), or --task NAME; NAME-PRESET
(code2-thesis, code2-full) names a task and its data preset at once. A task may break a split
down further (code2's hand-written set: exact match and execution accuracy per category).

Decoding is greedy unless sampling flags say otherwise; --thesis-decoding is the UGR
thesis's final setting (sampling at temperature 0.2, top-p 0.6, seed 42). Writes
report.json, report.md, predictions.jsonl and two PNG charts into --out (default:
<checkpoint>/../eval-<split>) and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinylm.cli.common import add_sampling_args, sampling_settings
from tinylm.errors import TinyLMError

THESIS_DECODING = {"temperature": 0.2, "top_p": 0.6, "seed": 42}


def _task_and_preset(name: str, preset: str | None) -> tuple[str, str | None]:
    """A task name, or NAME-PRESET (code2-thesis): the task and its data preset (--preset wins)."""
    from tinylm.tasks import get_plugin

    try:
        get_plugin(name)
        return name, preset
    except TinyLMError:
        head, _, tail = name.partition("-")
        if not tail:
            raise
        try:
            get_plugin(head)
        except TinyLMError:
            get_plugin(name)  # the message about the name as given
        return head, preset or tail


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval-task", help="evaluate a checkpoint on a task (exact match, BLEU, execution...)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--task", help="task name, or NAME-PRESET such as code2-thesis (default: the model's task)")
    p.add_argument("--split", default="test",
                   help="train, valid, test or a task's own (code2: test-broad, handwritten); default test")
    p.add_argument("--data", metavar="DIR", help="read the split from DIR/<split>.jsonl instead of generating it")
    p.add_argument("--preset", help="the task's data preset (default: the one the model was trained on)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    p.add_argument("--batch-size", type=int, default=128, help="prompts decoded together (default 128)")
    p.add_argument("--latency-examples", type=int, default=20, metavar="N",
                   help="examples timed one at a time for the latency figure (default 20, 0 = skip)")
    p.add_argument("--out", metavar="DIR", help="report folder (default <checkpoint>/../eval-<split>)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--thesis-decoding", action="store_true",
                   help="the UGR thesis's sampling: temperature 0.2, top-p 0.6, seed 42")
    p.add_argument("--unconstrained", action="store_true",
                   help="decode without the task's constraint (code2: quoted tokens copied from the input)")
    p.add_argument("--quiet", action="store_true", help="print only the Markdown table")
    add_sampling_args(p)
    p.set_defaults(func=run, temperature=0.0, max_new_tokens=512)


def run(args: argparse.Namespace) -> int:
    settings = sampling_settings(args)
    if args.thesis_decoding:
        settings.update(THESIS_DECODING)
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise TinyLMError(f"checkpoint not found: {checkpoint} is not a folder")
    task_name, preset = args.task, args.preset
    if task_name is not None:
        task_name, preset = _task_and_preset(task_name, preset)  # an unknown task fails before the model loads
    import torch

    import tinylm
    from tinylm.api import generation_config
    from tinylm.evaluation import evaluate, get_task, markdown, write_report

    from tinylm.evaluation.hf_seq2seq import is_hf_model_or_adapter, load_hf_seq2seq

    if args.threads:
        torch.set_num_threads(args.threads)
    config = generation_config(**settings)
    hf = is_hf_model_or_adapter(checkpoint)
    if hf:
        if task_name is None:
            raise TinyLMError("a Hugging Face model does not say its task: name it with --task (e.g. code2-thesis)")
        lm = load_hf_seq2seq(checkpoint)
        model_info = f"{checkpoint} ({lm.num_params():,} parameters, Hugging Face seq2seq, unconstrained decoding)"
        extra = None
    else:
        lm = tinylm.load(checkpoint)
        model_info = f"{checkpoint} ({lm.model.num_params():,} parameters, {lm.tokenizer.kind} tokenizer)"
        extra = lm.model.config.extra
    task = get_task(task_name, model_extra=extra, data=args.data, preset=preset)
    task.load_split(args.split, 1)  # an unknown split fails here, before any generation

    def progress(stage: str, done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = evaluate(lm, task, args.split, config, limit=args.limit, batch_size=args.batch_size,
                      latency_examples=args.latency_examples, progress=progress,
                      constrained=not (args.unconstrained or hf))  # a task's constraint is for tinylm tokenizers
    out = Path(args.out) if args.out else checkpoint.resolve().parent / f"eval-{args.split}"
    # A task may break a split down further (code2's hand-written set: per category).
    breakdown = task.breakdown(args.split, result.records, args.limit) if hasattr(task, "breakdown") else None
    if breakdown is not None:
        result.summary["by_category"] = breakdown
    paths = write_report(result, out, extra={"model": model_info, "checkpoint": str(checkpoint)})
    print(markdown(result, {"model": model_info}))
    if not args.quiet:
        print(f"wrote {paths['json']}, {paths['markdown']}, {paths['predictions'].name}, "
              f"{paths['length_chart'].name}, {paths['error_chart'].name}", file=sys.stderr)
    return 0
