"""`tinylm finetune`: adapt a trained checkpoint with full fine-tuning, LoRA, prompt tuning or adapters.

    tinylm finetune runs/base/best --method lora --rank 8 --alpha 16 --task code2-thesis --out runs/ft-lora
    tinylm finetune runs/base/best --method adapter --placement pfeiffer --reduction 8 --data pairs.jsonl --out runs/ft-ad
    tinylm finetune runs/base/best --method prompt --virtual-tokens 20 --data pairs.jsonl --out runs/ft-pt
    tinylm finetune runs/base/best --method full --freeze tok_emb,blocks.0 --data notes.txt --out runs/ft-full
    tinylm finetune --resume --out runs/ft-lora --max-steps 4000      # continue (data and model from the run)
    tinylm finetune runs/base/best --merge-adapter runs/ft-lora/adapter --out runs/merged
    tinylm finetune ./t5-small --method lora --rank 16 --data pairs.jsonl --out runs/t5-lora   # a Hugging Face folder, via PEFT
    tinylm finetune runs/base/best --export-peft runs/ft-lora/adapter --out runs/peft   # for PEFT on export-hf's model
    tinylm finetune runs/base/best --import-peft runs/peft --out runs/ft-lora/adapter2

The run is a `tinylm train` run (the same Trainer, logs, budgets, best/ and last/, resume)
whose model is the base with the method's transforms applied (tinylm.finetune): last/ and
best/ are whole checkpoints that load as they are (unmerged), and the run adds adapter/,
only the trained tensors of the chosen checkpoint plus a config naming the base (with a hash
of its weights), and with --merge, merged/: one standalone checkpoint. A task (--task
code2-thesis, code2-full; or --recipe with a task's recipe) trains on the task's data as
`tinylm code2 train` does and keeps the checkpoint with the best exact match in model/.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError

TASK_ALIASES = {"code2": "code2-full"}
RUN_FILE = "finetune.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    from tinylm.cli.train import TRAIN_FLAGS

    p = subparsers.add_parser(
        "finetune", help="fine-tune a checkpoint: full, LoRA, prompt tuning or adapters",
        description="Fine-tune the checkpoint BASE into --out (a training run: best/, last/, logs) and save the "
                    "trained tensors alone in OUT/adapter (load with tinylm.load(BASE, adapter=OUT/adapter)).",
    )
    p.add_argument("base", nargs="?", metavar="BASE", help="the checkpoint folder to fine-tune (not with --resume)")
    m = p.add_argument_group("method")
    m.add_argument("--method", choices=("full", "lora", "prompt", "adapter"), default="lora", help="default lora")
    m.add_argument("--rank", type=int, default=8, metavar="R", help="LoRA rank (default 8)")
    m.add_argument("--alpha", type=float, default=16.0, metavar="A", help="LoRA alpha; the update is scaled by alpha/rank (default 16)")
    m.add_argument("--lora-dropout", type=float, default=0.0, metavar="P", help="dropout on LoRA's input (default 0)")
    m.add_argument("--targets", metavar="PATTERN", help="LoRA's layers by name: attn.qkv,attn.proj (default), "
                   "ffn.up, a glob blocks.0.*, or re:REGEX (docs/finetune.md lists the names)")
    m.add_argument("--virtual-tokens", type=int, default=20, metavar="N", help="prompt tuning's virtual tokens (default 20)")
    m.add_argument("--prompt-init", choices=("vocab", "random"), default="vocab",
                   help="virtual tokens start as embeddings of random vocabulary tokens (default) or at random")
    m.add_argument("--reduction", type=int, default=16, metavar="F", help="adapter bottleneck: n_embd / F units (default 16)")
    m.add_argument("--placement", choices=("houlsby", "pfeiffer"), default="houlsby",
                   help="adapters after attention and FFN (houlsby, default) or after the FFN only (pfeiffer)")
    m.add_argument("--freeze", metavar="PATTERN", help="with --method full: parameters to keep fixed, by name pattern")
    d = p.add_argument_group("data (one of --task, --data, a --recipe of a task)")
    d.add_argument("--task", metavar="NAME", help="a task's data and training: code2-thesis, code2-full (= code2)")
    d.add_argument("--data", nargs="+", metavar="FILE", help="pairs (.jsonl, {\"input\", \"output\"} a line) or text files")
    d.add_argument("--val-data", metavar="VAL.jsonl", help="validation pairs (default: the last 5%% of --data's pairs)")
    d.add_argument("--recipe", metavar="NAME|FILE", help="training settings from a recipe (a task's recipe brings its data)")
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="DIR", help="the run folder")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    r.add_argument("--merge", action="store_true", help="also write OUT/merged: base and adapter as one checkpoint")
    r.add_argument("--merge-adapter", metavar="ADAPTER", help="no training: merge ADAPTER onto BASE into --out")
    r.add_argument("--export-peft", metavar="ADAPTER", help="no training: write the LoRA ADAPTER (trained on BASE) as a "
                   "PEFT adapter for BASE's export-hf model into --out")
    r.add_argument("--import-peft", metavar="PEFT_DIR", help="no training: a PEFT LoRA adapter for BASE's export-hf model "
                   "-> a tinylm adapter folder in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    # An event file's name holds the host and the time: a pipeline stage leaves it out to rerun bit-identical.
    r.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="no TensorBoard event files (training on --data)")
    t = p.add_argument_group("training (with --resume, these override the run's saved values)")
    for field, (flag, kind, help_text) in TRAIN_FLAGS.items():
        t.add_argument(flag, dest=field, type=kind, default=None, metavar={int: "N", float: "X"}.get(kind, field.upper()),
                       help=help_text)
    p.set_defaults(func=_finetune)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    from tinylm.cli.train import TRAIN_FLAGS

    return {f: getattr(args, f) for f in TRAIN_FLAGS if getattr(args, f) is not None}


def _method_settings(args: argparse.Namespace) -> dict[str, Any]:
    return dict(rank=args.rank, alpha=args.alpha, lora_dropout=args.lora_dropout, targets=args.targets,
                virtual_tokens=args.virtual_tokens, prompt_init=args.prompt_init, reduction=args.reduction,
                placement=args.placement, freeze=args.freeze)


def _recipe(args: argparse.Namespace):
    from tinylm.training.recipe import Recipe, load_recipe

    if args.task and args.recipe:
        raise TinyLMError("give --task or --recipe, not both")
    if args.task:
        recipe = load_recipe(TASK_ALIASES.get(args.task, args.task))
        if recipe.task is None:
            raise TinyLMError(f"{args.task} is not a task's recipe; tasks: code2-thesis, code2-full")
        return recipe
    return load_recipe(args.recipe) if args.recipe else Recipe(name="finetune")


def _data(args: argparse.Namespace, out: Path):
    """The run's data from --data (pairs or text), copied into the run folder for --resume."""
    from tinylm.atomic_files import atomic_write
    from tinylm.data import read_pairs
    from tinylm.training.run import DATA_FOLDER, Pairs, TextFiles

    paths = [Path(p) for p in args.data]
    for path in paths:
        if not path.is_file():
            raise TinyLMError(f"data file not found: {path}")
    pairs = [p.suffix == ".jsonl" for p in paths]
    if any(pairs) and not all(pairs):
        raise TinyLMError("--data takes pairs (.jsonl) or text files, not both")
    if not all(pairs):
        if args.val_data:
            raise TinyLMError("--val-data goes with pairs (.jsonl)")
        return TextFiles(paths, out / DATA_FOLDER), None
    train = [p for path in paths for p in read_pairs(path)]
    if args.val_data:
        val = read_pairs(args.val_data)
    else:
        if len(train) < 2:
            raise TinyLMError("too few pairs to hold some out for validation; give --val-data")
        cut = len(train) - max(1, len(train) // 20)
        train, val = train[:cut], train[cut:]

    def copy() -> None:
        import json

        for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
            with atomic_write(out / DATA_FOLDER / name) as f:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Pairs(train, val), copy


def _finetune(args: argparse.Namespace) -> int:
    if args.merge_adapter or args.export_peft or args.import_peft:
        return _convert(args)
    if not args.out:
        raise TinyLMError("--out DIR is required")
    if args.resume:
        return _resume(args)
    if not args.base:
        raise TinyLMError("give the checkpoint to fine-tune: tinylm finetune BASE --method ... --out DIR")
    return _fresh(args)


def _fresh_hf(args: argparse.Namespace) -> int:
    """BASE is a Hugging Face model folder: fine-tune it through PEFT (tinylm/finetune_hf.py)."""
    import dataclasses

    from tinylm.data import read_pairs
    from tinylm.finetune_hf import HFTrain, finetune_hf

    if args.task or args.recipe or not args.data:
        raise TinyLMError("a Hugging Face model fine-tunes on pairs: --data TRAIN.jsonl [--val-data VAL.jsonl]")
    if not all(str(p).endswith(".jsonl") for p in args.data):
        raise TinyLMError("a Hugging Face model fine-tunes on pairs (.jsonl), not on text files")
    known = {f.name for f in dataclasses.fields(HFTrain)}
    given = _given(args)
    unknown = sorted(set(given) - known)
    if unknown:
        raise TinyLMError(f"not used for a Hugging Face model: {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    train = [p for path in args.data for p in read_pairs(path)]
    val = read_pairs(args.val_data) if args.val_data else train[-max(1, len(train) // 20):]
    if not args.val_data:
        train = train[: len(train) - len(val)] or train
    summary = finetune_hf(args.base, args.method, _method_settings(args), train, val, args.out, HFTrain(**given),
                          merge=args.merge, quiet=args.quiet)
    print(f"{summary['kind']} {args.method}: {summary['trainable_parameters']:,} of {summary['parameters']:,} parameters "
          f"trained; {summary['steps']} steps ({summary['stop_reason']}), val loss {summary['val_loss_before']:.4f} -> "
          f"{summary['val_loss']:.4f}; saved {summary['saved']}")
    return 0


def _fresh(args: argparse.Namespace) -> int:
    import torch

    from tinylm.atomic_files import write_json
    from tinylm.finetune import apply_method, load_base, method_transforms, weights_sha256
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer
    from tinylm.training.run import ensure_new_run, prepare_run, train_config

    from tinylm.finetune_hf import is_hf_folder

    out = Path(args.out)
    ensure_new_run(out, "pass --resume to continue it, or choose another --out", "model", "adapter")
    if is_hf_folder(args.base):
        return _fresh_hf(args)
    settings = _method_settings(args)
    method_transforms(args.method, **settings)  # settings checked before anything is loaded
    recipe = _recipe(args)
    if recipe.task is None and not args.data:
        raise TinyLMError("give the data: --task code2-thesis, --data FILE... or a task's --recipe")
    if recipe.task is not None and (args.data or args.val_data):
        raise TinyLMError(f"{recipe.name} trains on the {recipe.task} task's own data; drop --data")
    if recipe.task is not None:
        import inspect

        from tinylm.tasks import get_plugin

        task_train = get_plugin(recipe.task).train
        if task_train is None or "model" not in inspect.signature(task_train).parameters:
            raise TinyLMError(f"the {recipe.task} task cannot fine-tune a given model; use --data")
    base = Path(args.base)
    model = load_base(base)
    if not (base / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {base} has no {TOKENIZER_FILENAME}")
    tokenizer = load_tokenizer(base / TOKENIZER_FILENAME)
    sha = weights_sha256(model)
    given = _given(args)
    torch.manual_seed(given.get("seed", 1337))  # LoRA's A, the adapters, the virtual tokens
    apply_method(model, args.method, **settings)  # a pattern matching nothing etc. fails here, before any write
    data, copy = (None, None) if recipe.task is not None else _data(args, out)
    cfg = None if recipe.task is not None else train_config(recipe, out, **given,
                                                             **({} if args.tensorboard else {"tensorboard": False}))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if not args.quiet:
        print(f"{args.method}: {trainable:,} of {total:,} parameters trained ({100 * trainable / total:.2f}%)")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, {"base": str(base), "base_sha256": sha, "method": args.method,
                                "transforms": [t.to_config() for t in model.transforms]})
    if recipe.task is not None:
        from tinylm.tasks import get_plugin

        plugin = get_plugin(recipe.task)
        threads = given.pop("num_threads", 0)
        summary = plugin.train(recipe.replace(train=given), out, threads=threads, quiet=args.quiet, model=model,
                               tokenizer=tokenizer)
        chosen = Path(summary.model_dir)
    else:
        if copy is not None:
            copy()
        run = prepare_run(recipe, cfg, data, tokenizer=tokenizer, model=model)
        result = run.trainer(quiet=args.quiet).fit()
        chosen = out / ("best" if result.best_step is not None else "last")
        summary = run.summary(result, chosen)
    return _finish(args, out, chosen, summary)


def _resume(args: argparse.Namespace) -> int:
    from tinylm.training.run import resume_run

    from tinylm.finetune_hf import is_hf_run, resume_hf

    out = Path(args.out)
    if args.base or args.data or args.task or args.recipe:
        raise TinyLMError(f"--resume takes the model and data from {out}; drop BASE, --data, --task, --recipe")
    if is_hf_run(out):
        summary = resume_hf(out, _given(args), merge=args.merge)
        print(f"{summary['kind']} {summary['method']}: resumed to step {summary['steps']} ({summary['stop_reason']}), "
              f"val loss {summary['val_loss']:.4f}; saved {summary['saved']}")
        return 0
    if not (out / RUN_FILE).is_file():
        raise TinyLMError(f"{out} holds no fine-tuning run ({RUN_FILE} missing)")
    run = resume_run(out, **_given(args))
    result = run.trainer(quiet=args.quiet).fit(resume=True)
    chosen = out / ("best" if result.best_step is not None else "last")
    summary = run.summary(result, chosen)
    return _finish(args, out, chosen, summary)


def _finish(args: argparse.Namespace, out: Path, chosen: Path, summary) -> int:
    from tinylm.atomic_files import read_json
    from tinylm.checkpoint import load_model, save_checkpoint
    from tinylm.finetune import ADAPTER_WEIGHTS, fold_mergeable, save_adapter
    from tinylm.tokenizers import load_tokenizer

    info = read_json(out / RUN_FILE)
    model = load_model(chosen)
    adapter = save_adapter(model, out / "adapter", base=info["base"], base_sha256=info["base_sha256"],
                           method=info["method"])
    size = (adapter / ADAPTER_WEIGHTS).stat().st_size
    line = (f"stopped ({summary.stop_reason}) at step {summary.steps} after {summary.train_s:.1f}s; "
            f"checkpoint {chosen}; adapter {adapter} ({size / 1024:.1f} KiB)")
    if args.merge:
        save_checkpoint(out / "merged", fold_mergeable(model), load_tokenizer(chosen))
        line += f"; merged {out / 'merged'}"
    print(line)
    return 0


def _convert(args: argparse.Namespace) -> int:
    """--merge-adapter, --export-peft, --import-peft: one conversion of BASE + an adapter into --out."""
    chosen = [flag for flag, v in (("--merge-adapter", args.merge_adapter), ("--export-peft", args.export_peft),
                                   ("--import-peft", args.import_peft)) if v]
    if len(chosen) > 1:
        raise TinyLMError(f"give one of {', '.join(chosen)}")
    if not args.out or not args.base:
        raise TinyLMError(f"{chosen[0]} needs the base checkpoint and --out: tinylm finetune BASE {chosen[0]} DIR --out DIR")
    if Path(args.out).exists():
        raise TinyLMError(f"{args.out} already exists; choose another --out")
    if args.merge_adapter:
        from tinylm.finetune import merge_adapter

        print(f"merged {merge_adapter(args.base, args.merge_adapter, args.out)}")
    elif args.export_peft:
        from tinylm.interop.peft import export_peft_lora

        print(f"PEFT adapter {export_peft_lora(args.base, args.export_peft, args.out)} "
              f"(for the model `tinylm export-hf {args.base}` writes)")
    else:
        from tinylm.interop.peft import import_peft_lora

        print(f"tinylm adapter {import_peft_lora(args.import_peft, args.base, args.out)}")
    return 0
