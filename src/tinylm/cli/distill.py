"""`tinylm distill TEACHER --student PRESET|CONFIG.json --out DIR`: a smaller model trained on a teacher's outputs.

    tinylm distill runs/code2-thesis/model --student llama-style-nano --set n_layer=2 --task code2 \\
        --budget-s 600 --out runs/code2-student
    tinylm distill runs/shk/best --student shakespeare-char --set n_embd=64 --task text --max-steps 500 --out runs/shk-student

loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
per target token (training/distill.py). The student uses the teacher's tokenizer, context
length, task and prompt format; --task code2 regenerates the teacher's CODE-2 dataset from
its checkpoint, --task text reads --data FILE... (or the teacher's run's corpus). The student
lands in DIR/model, a normal checkpoint (eval-task, code2 translate, quantize work on it).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("distill", help="train a smaller student model from a teacher checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", metavar="TEACHER", help="the teacher's checkpoint folder")
    p.add_argument("--student", required=True, metavar="PRESET|CONFIG.json",
                   help='a model preset, or a JSON file {"preset": NAME, field: value, ...}')
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a student config field, e.g. --set n_layer=2 (repeatable)")
    p.add_argument("--task", metavar="code2|text", help="the teacher's data: code2 or text (default: the teacher's task)")
    p.add_argument("--data", nargs="+", metavar="FILE", help="text: UTF-8 files; code2: a folder with train/valid.jsonl "
                   "(default: the teacher's dataset)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the hard-label loss (default 0.5)")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T (default 2.0)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-s", type=float, metavar="S", help="training time budget in seconds")
    budget.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (no time budget)")
    p.add_argument("--batch-size", type=int, metavar="N", help="sequences per batch (default: the teacher's recipe's)")
    p.add_argument("--lr", type=float, metavar="X", help="peak learning rate (default: the teacher's recipe's)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (student weights, batches)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    p.add_argument("--force", action="store_true", help="allow a student that is not smaller than the teacher")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (must be new or empty); the student lands in DIR/model")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=_distill)


def _distill(args: argparse.Namespace) -> int:
    from tinylm.cli.train import parse_overrides
    from tinylm.training.distill_run import distill_checkpoint

    train = {field: value for field, value in (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                                               ("num_threads", args.threads)) if value is not None}
    summary = distill_checkpoint(
        args.teacher, args.student, args.out, task=args.task, overrides=parse_overrides(args.overrides),
        data=args.data, alpha=args.alpha, temperature=args.temperature, budget_s=args.budget_s,
        max_steps=args.max_steps, train=train, force=args.force, quiet=args.quiet,
    )
    print(f"student: {summary.model_dir} ({summary.parameters:,} parameters, teacher "
          f"{summary.figures['teacher_parameters']:,}); held-out KL per token "
          f"{summary.figures['held_out_kl_before']:.4f} -> {summary.figures['held_out_kl_after']:.4f}")
    return 0
