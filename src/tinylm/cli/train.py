"""`tinylm train`: train a model on text files, Tiny Shakespeare or prompt/completion pairs, or run a recipe.

    tinylm train --shakespeare --tokenizer char --preset gpt2-style-nano --out runs/shk
    tinylm train --shakespeare --recipe shakespeare-char --out runs/shk      # a measured recipe
    tinylm train --data a.txt b.txt --tokenizer bpe --vocab-size 2048 --preset llama-style-micro --out runs/ab
    tinylm train --shakespeare --tokenizer sentencepiece --vocab-size 8000 --out runs/shk-spm  # SentencePiece BPE
    tinylm train --pairs train.jsonl --val-pairs val.jsonl --set block_size=128 --out runs/pairs
    tinylm train --recipe code2-thesis --out runs/code2    # a task's recipe: the task's data and training
    tinylm train --recipe my-recipe.toml --data a.txt --out runs/mine       # a recipe file (JSON or TOML)
    tinylm train --out runs/shk --resume --max-steps 4000     # continue (here: for longer)
    tinylm train --nproc 2 --shakespeare --batch-size 32 --out runs/shk2   # 2 processes (DDP), 32 rows each

A recipe (tinylm.training.recipe) sets the preset, model overrides, tokenizer, vocabulary
size and training settings; flags given explicitly win over it. A task's recipe
(code2-thesis, code2-full, arithmetic) trains on the task's own data, the way its own
command does (`tinylm code2 train`), so it takes no data flags. Every run goes through the
one run set-up (tinylm.training.run).

The run folder holds everything needed to resume: data/ (the tokenized corpus or copied
pairs, and the tokenizer), recipe.json, train_config.json, last/ and best/ checkpoints,
metrics.jsonl, tensorboard/, loss.png and summary.json. With --resume, the model,
tokenizer, data and training config come from that folder; training flags given on the
command line override the saved ones.

--nproc N runs the same command in N processes through torchrun (DDP on gloo, or FSDP with
--fsdp; the same as `torchrun --standalone --nproc-per-node N -m tinylm train ...`):
--batch-size is then per process, and rank 0 alone prepares the data and writes the run folder.
docs/distributed.md: the command on a multi-node cluster, and FSDP.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError

# TrainConfig field -> (flag, type, help). Defaults are None so a resumed run can tell
# which flags were given (and override only those); the help shows TrainConfig's defaults.
TRAIN_FLAGS: dict[str, tuple[str, type, str]] = {
    "max_steps": ("--max-steps", int, "optimizer steps"),
    "batch_size": ("--batch-size", int, "sequences per micro-batch"),
    "grad_accum": ("--grad-accum", int, "micro-batches per optimizer step"),
    "lr": ("--lr", float, "peak learning rate"),
    "min_lr": ("--min-lr", float, "learning rate at the end of the decay"),
    "warmup_steps": ("--warmup-steps", int, "linear warm-up steps"),
    "decay": ("--decay", str, "lr decay: cosine, linear or constant"),
    "weight_decay": ("--weight-decay", float, "AdamW weight decay on weight matrices"),
    "grad_clip": ("--grad-clip", float, "max gradient norm, 0 = off"),
    "eval_every": ("--eval-every", int, "steps between evaluations, 0 = at the end only"),
    "eval_batches": ("--eval-batches", int, "batches per evaluation"),
    "patience": ("--patience", int, "early stopping after N evaluations without improvement, 0 = off"),
    "save_every": ("--save-every", int, "steps between last/ checkpoints, 0 = at the end only"),
    "log_every": ("--log-every", int, "steps between metric rows"),
    "time_budget_s": ("--time-budget", float, "stop after this many seconds, 0 = no limit"),
    "token_budget": ("--token-budget", int, "stop after this many training tokens, 0 = no limit"),
    "seed": ("--seed", int, "random seed"),
    "dtype": ("--dtype", str, "float32, or bfloat16 (CPU autocast)"),
    "num_threads": ("--threads", int, "torch CPU threads, 0 = torch's choice"),
    "optimizer": ("--optimizer", str, "adamw, or muon (Muon on hidden matrices, AdamW on the rest)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on a text corpus or prompt/completion pairs",
        description="Train a model (tokenizer, data preparation, training, checkpoints, samples) into --out; "
                    "--resume continues an interrupted or finished run from OUT/last.",
    )
    data = p.add_argument_group("data (one of --data, --shakespeare, --pairs; none with --resume)")
    data.add_argument("--data", nargs="+", metavar="FILE", help="UTF-8 text files (split 90/5/5 into train/val/test)")
    data.add_argument("--shakespeare", action="store_true", help="Tiny Shakespeare (downloaded once, or --shakespeare-path)")
    data.add_argument("--shakespeare-path", metavar="PATH", help="a local copy of Tiny Shakespeare")
    data.add_argument("--pairs", metavar="TRAIN.jsonl", help='prompt/completion pairs, one {"input", "output"} object a line')
    data.add_argument("--val-pairs", metavar="VAL.jsonl", help="validation pairs (with --pairs; without them, no evaluation)")
    model = p.add_argument_group("model and tokenizer")
    model.add_argument("--tokenizer", choices=("char", "bpe", "sentencepiece"),
                       help="tokenizer to train on the data (default char; sentencepiece: SentencePiece BPE)")
    model.add_argument("--tokenizer-file", metavar="FILE",
                       help="use this trained tokenizer (tokenizer.json) instead of training one on the data")
    model.add_argument("--vocab-size", type=int, metavar="N",
                       help="vocabulary size of bpe (default 1024) or sentencepiece (default 8000)")
    model.add_argument("--preset", metavar="NAME", help="model preset (default gpt2-style-nano); see tinylm.presets")
    model.add_argument("--recipe", metavar="NAME|FILE", help="a measured recipe (shakespeare-char, nanogpt-shakespeare-char, "
                       "or a task's: code2-thesis, code2-full, arithmetic) or a FILE.json / FILE.toml: preset, tokenizer "
                       "and training settings (flags given explicitly still win)")
    model.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override a model config field, e.g. --set n_layer=2 --set dropout=0.1 (repeatable)")
    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, metavar="DIR", help="run folder")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    run.add_argument("--samples", type=int, default=1, metavar="N", help="samples to print at the end (default 1)")
    run.add_argument("--sample-tokens", type=int, default=200, metavar="N", help="tokens per sample (default 200)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    run.add_argument("--nproc", type=int, metavar="N", help="train in N processes on this machine (torchrun, DDP); "
                     "--batch-size is per process")
    run.add_argument("--force", action="store_true", help="allow --nproc above the number of CPU cores")
    import dataclasses

    from tinylm.training.config import TrainConfig  # a plain dataclass: no torch import

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    train = p.add_argument_group("training (with --resume, these override the run's saved values)")
    for field, (flag, kind, help_text) in TRAIN_FLAGS.items():
        metavar = {int: "N", float: "X"}.get(kind, field.upper())
        train.add_argument(flag, dest=field, type=kind, default=None, metavar=metavar,
                           help=f"{help_text} (default {defaults[field]})")
    train.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    train.add_argument("--fsdp", action="store_true", default=None,
                       help="with --nproc: shard the model, gradients and optimizer state over the processes (FSDP) "
                            "instead of copying them (DDP)")
    train.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
                       help="do not write TensorBoard events")
    p.set_defaults(func=_train)


def _given_train_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = [*TRAIN_FLAGS, "compile", "fsdp", "tensorboard"]
    return {f: getattr(args, f) for f in fields if getattr(args, f) is not None}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["n_layer=2", "position=rope"] -> {"n_layer": 2, "position": "rope"} (values read as JSON, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TinyLMError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def recipe_from_flags(args: argparse.Namespace):
    """The run's recipe: --recipe (or the defaults), with the model and tokenizer flags applied."""
    from tinylm.training.recipe import Recipe, load_recipe

    recipe = load_recipe(args.recipe) if args.recipe else Recipe(name="command-line")
    overrides = parse_overrides(args.overrides)
    if "vocab_size" in overrides:
        raise TinyLMError("vocab_size comes from the tokenizer; use --vocab-size N with --tokenizer bpe or sentencepiece")
    changes: dict[str, Any] = {"model": overrides}
    if args.tokenizer is not None:
        changes.update(tokenizer=args.tokenizer, vocab_size=None)
    if args.vocab_size is not None:
        changes["vocab_size"] = args.vocab_size
    if args.preset is not None:
        changes["preset"] = args.preset
    return recipe.replace(**changes)


def _data_flags(args: argparse.Namespace) -> list[str]:
    return [flag for flag, used in (("--data", args.data), ("--shakespeare", args.shakespeare or args.shakespeare_path),
                                    ("--pairs", args.pairs), ("--val-pairs", args.val_pairs)) if used]


def _fresh_run(args: argparse.Namespace, recipe):
    """The run set-up for a new run of a text or pairs recipe."""
    from tinylm.data import read_pairs, tinyshakespeare_path
    from tinylm.atomic_files import atomic_write
    from tinylm.tokenizers import read_text
    from tinylm.training.run import DATA_FOLDER, Pairs, TextFiles, prepare_run, train_config

    out = Path(args.out)
    sources = [bool(args.data), args.shakespeare or bool(args.shakespeare_path), bool(args.pairs)]
    if sum(sources) != 1:
        raise TinyLMError("give exactly one data source: --data FILE..., --shakespeare or --pairs TRAIN.jsonl")
    if args.val_pairs and not args.pairs:
        raise TinyLMError("--val-pairs goes with --pairs")
    cfg = train_config(recipe, out, **_given_train_fields(args))  # validated before the slow steps
    data_dir = out / DATA_FOLDER
    if args.pairs:
        data = Pairs(read_pairs(args.pairs), read_pairs(args.val_pairs) if args.val_pairs else None)
        for name, path in (("train.jsonl", args.pairs), ("val.jsonl", args.val_pairs)):
            if path:  # a copy, so the run folder alone is enough to resume
                with atomic_write(data_dir / name, "wb") as f:
                    f.write(Path(path).read_bytes())
    else:
        paths = [Path(p) for p in args.data] if args.data else [tinyshakespeare_path(args.shakespeare_path)]
        for path in paths:
            if not read_text(path):
                raise TinyLMError(f"corpus file is empty: {path}")
        data = TextFiles(paths, data_dir)
    tokenizer = None
    if args.tokenizer_file:
        from tinylm.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer_file)
    run = prepare_run(recipe, cfg, data, tokenizer=tokenizer)
    if args.pairs:
        from tinylm.tokenizers import TOKENIZER_FILENAME

        run.tokenizer.save(data_dir / TOKENIZER_FILENAME)
    return run


def _resumed_run(args: argparse.Namespace):
    """The run in --out, with the training flags given now applied on top."""
    from tinylm.training.run import resume_run

    given = _data_flags(args) + [flag for flag, used in (
        ("--tokenizer", args.tokenizer), ("--tokenizer-file", args.tokenizer_file), ("--vocab-size", args.vocab_size), ("--preset", args.preset),
        ("--recipe", args.recipe), ("--set", args.overrides)) if used]
    if given:
        raise TinyLMError(f"--resume takes the model and data from {args.out}; drop {', '.join(given)}")
    return resume_run(args.out, **_given_train_fields(args))


def _train_task(args: argparse.Namespace, recipe) -> int:
    """A task's recipe: the task's own data and training (its plug-in's `train`)."""
    from tinylm.tasks import get_plugin

    if _data_flags(args):
        raise TinyLMError(f"recipe {recipe.name} trains on the {recipe.task} task's own data; "
                          f"drop {', '.join(_data_flags(args))}")
    if args.tokenizer_file:
        raise TinyLMError(f"recipe {recipe.name} trains its task's own tokenizer; drop --tokenizer-file")
    given = _given_train_fields(args)
    threads = given.pop("num_threads", 0)
    summary = get_plugin(recipe.task).train(recipe.replace(train=given), args.out, threads=threads, quiet=args.quiet)
    print(f"model: {summary.model_dir} ({summary.parameters:,} parameters, {summary.tokenizer} tokenizer); "
          f"{summary.steps} steps, stopped ({summary.stop_reason}) after {summary.train_s:.1f}s of training")
    return 0


def _print_samples(model, tokenizer, data, n: int, n_tokens: int, seed: int) -> None:
    """Sample from the model: answers to the first prompts of paired data, or fresh text."""
    from tinylm.data import PairedDataset
    from tinylm.generation import Engine, GenerationConfig
    from tinylm.transforms import prepared_for_inference

    if n <= 0 or n_tokens <= 0:
        return
    paired = isinstance(data, PairedDataset)
    if paired:
        prompts = [ids[:prompt_len] for ids, prompt_len in data.examples[:n]]
    else:
        # eos ends every document in the corpus, so what follows it is the start of a new one.
        prompts = [[tokenizer.eos_id]] * n
    # Samples stop at the model's context length (the engine does not slide its window).
    config = GenerationConfig(max_new_tokens=n_tokens, temperature=0.8, seed=seed)
    with prepared_for_inference(model):
        results = Engine(model, tokenizer).generate(prompts, config)
    for i, (prompt, result) in enumerate(zip(prompts, results), 1):
        shown = f" {tokenizer.decode(prompt)!r} ->" if paired else ""
        print(f"--- sample {i}:{shown}\n{result.text}")


def _without_launch_flags(argv: list[str]) -> list[str]:
    """The command line minus --nproc N and --force: what each torchrun process runs."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif item != "--force" and not item.startswith("--nproc="):
            out.append(item)
    return out


def _follower_run(args: argparse.Namespace, recipe):
    """The run in a process other than rank 0: the data and tokenizer rank 0 prepared in --out."""
    from tinylm.data import read_pairs
    from tinylm.tokenizers import load_tokenizer
    from tinylm.training.run import DATA_FOLDER, Corpus, Pairs, prepare_run, train_config

    data_dir = Path(args.out) / DATA_FOLDER
    cfg = train_config(recipe, args.out, **_given_train_fields(args))
    if args.pairs:
        data: Corpus | Pairs = Pairs(read_pairs(data_dir / "train.jsonl"),
                                     read_pairs(data_dir / "val.jsonl") if args.val_pairs else None)
    else:
        data = Corpus(data_dir)
    return prepare_run(recipe, cfg, data, tokenizer=load_tokenizer(data_dir))


def _budget_fit(cfg) -> list:
    """With a time budget, the lr schedule (warm-up included) shrinks to what fits in it, so
    the cosine decay ends when the time does instead of the budget cutting it off at a high
    learning rate (3 % of the budget kept for the final evaluation and checkpoint)."""
    from tinylm.training.schedule import FitScheduleToBudget

    if not cfg.time_budget_s:
        return []
    return [FitScheduleToBudget(cfg.time_budget_s, 0.03 * cfg.time_budget_s, cfg.max_steps,
                                warmup_steps=cfg.warmup_steps)]


def _train(args: argparse.Namespace) -> int:
    from tinylm.training import distributed
    from tinylm.training.run import ensure_new_run

    under_torchrun = distributed.init_from_env()  # started by --nproc, or by torchrun ... -m tinylm train
    if args.nproc is not None and not under_torchrun:
        distributed.check_nproc(args.nproc, args.force)
        if not args.resume:  # the mistakes one line can tell, before N processes each report them
            ensure_new_run(args.out, "pass --resume to continue it, or choose another --out")
            recipe = recipe_from_flags(args)
            if recipe.task is not None:
                raise TinyLMError(f"recipe {recipe.name} trains the {recipe.task} task in one process; drop --nproc")
        return distributed.launch(args.nproc, _without_launch_flags(args.argv))
    try:
        return _train_here(args)
    finally:
        distributed.teardown()


def _train_here(args: argparse.Namespace) -> int:
    from tinylm.training import distributed
    from tinylm.training.run import ensure_new_run

    if args.samples < 0 or args.sample_tokens < 0:
        raise TinyLMError("--samples and --sample-tokens must be >= 0")
    main = distributed.is_main()
    if not main:
        args.quiet, args.samples = True, 0
    if args.resume:
        # Rank 0 first: opening the run may repair a save a crash cut short.
        run = _resumed_run(args) if main else None
        distributed.barrier()
        run = run or _resumed_run(args)
    else:
        ensure_new_run(args.out, "pass --resume to continue it, or choose another --out")
        recipe = recipe_from_flags(args)
        if recipe.task is not None:
            if distributed.world_size() > 1:
                raise TinyLMError(f"recipe {recipe.name} trains the {recipe.task} task in one process; drop --nproc")
            return _train_task(args, recipe)
        run = _fresh_run(args, recipe) if main else None
        distributed.barrier()
        run = run or _follower_run(args, recipe)
    if not args.quiet:
        print(run.describe())
    result = run.trainer(quiet=args.quiet, callbacks=_budget_fit(run.cfg)).fit(resume=args.resume)
    if not main:
        return 0
    out = Path(result.out_dir)
    chosen = out / ("best" if result.best_step is not None else "last")
    run.summary(result, chosen)
    best = ""
    if result.best_val_loss is not None:
        best = f", best val loss {result.best_val_loss:.4f} at step {result.best_step} ({out / 'best'})"
    print(f"stopped ({result.stop_reason}) at step {result.steps}, {result.tokens:,} tokens, "
          f"{result.elapsed_s:.1f}s; checkpoint {out / 'last'}{best}")
    model = run.model
    if result.best_step is not None and args.samples:
        from tinylm.checkpoint import load_model

        model = load_model(out / "best")
        print(f"samples from {out / 'best'} (step {result.best_step}):")
    elif distributed.sharded(model) and args.samples:  # rank 0 holds only its shards: sample from the saved whole
        from tinylm.checkpoint import load_model

        model = load_model(out / "last")
    data = run.val_data if run.val_data is not None else run.train_data
    _print_samples(model, run.tokenizer, data, args.samples, args.sample_tokens, run.cfg.seed)
    return 0
