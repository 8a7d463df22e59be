"""Stage kinds: what each kind of stage runs, which parameters and inputs it takes.

A kind turns a stage's parameters and inputs into one command line, run by the runner in
a child process whose working folder is the stage's (temporary) output folder. Kinds of
the toolkit's verbs run the `tinylm` command itself (`python -c "...cli.main..."`), so a
stage is exactly what a user would type, and a crash, a leak or a kill -9 stays inside
that child: the runner only sees an exit code and a folder it has not yet adopted.

Adding a kind is one entry in KINDS.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinylm.errors import TinyLMError

TINYLM = [sys.executable, "-c", "import sys; from tinylm.cli.main import main; sys.exit(main())"]
_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    types: tuple[type, ...]
    default: Any = _REQUIRED
    flag: str | None = None  # the verb's flag this parameter becomes (None: the kind handles it)
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    stdout: str | None = None  # a file in the stage folder that receives the child's stdout


Inputs = dict[str, str]  # input name -> path as the child sees it (relative to its folder, or absolute)


@dataclass(frozen=True)
class Kind:
    name: str
    help: str
    params: dict[str, Param]
    inputs: dict[str, bool]  # input name -> required; an empty dict with any_inputs: any names
    build: Callable[[dict[str, Any], Inputs, int], Invocation]
    produces: Callable[[dict[str, Any]], tuple[str, ...]] = lambda p: ()
    any_inputs: bool = False
    validate: Callable[[dict[str, Any], dict[str, Any]], None] | None = None  # checks across parameters

    def check(self, params: dict[str, Any], inputs: dict[str, Any], where: str) -> dict[str, Any]:
        """The parameters with defaults filled in; unknown or mistyped ones are one-line errors."""
        for key in params:
            if key not in self.params:
                raise TinyLMError(f"{where}: unknown parameter {key!r} for kind {self.name!r} "
                                  f"(known: {', '.join(self.params) or 'none'}, threads)")
        out: dict[str, Any] = {}
        for key, spec in self.params.items():
            if key not in params:
                if spec.default is _REQUIRED:
                    raise TinyLMError(f"{where}: kind {self.name!r} needs parameter {key!r}")
                if spec.default is not None:
                    out[key] = spec.default
                continue
            value = params[key]
            ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
            if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                names = " or ".join(t.__name__ for t in spec.types)
                raise TinyLMError(f"{where}: parameter {key!r} must be {names}, got {value!r}")
            if spec.choices and value not in spec.choices:
                raise TinyLMError(f"{where}: parameter {key!r} must be one of {', '.join(spec.choices)}, got {value!r}")
            out[key] = value
        if not self.any_inputs:
            for key in inputs:
                if key not in self.inputs:
                    raise TinyLMError(f"{where}: unknown input {key!r} for kind {self.name!r} "
                                      f"(known: {', '.join(self.inputs) or 'none'})")
        for key, required in self.inputs.items():
            if required and key not in inputs:
                raise TinyLMError(f"{where}: kind {self.name!r} needs input {key!r}")
        if self.validate is not None:
            try:
                self.validate(out, inputs)
            except TinyLMError as e:
                raise TinyLMError(f"{where}: {e}") from None
        return out


def _flags(params: dict[str, Any], specs: dict[str, Param]) -> list[str]:
    """Parameters that map onto a verb's flags: true -> the bare flag, false -> nothing."""
    argv: list[str] = []
    for key, value in params.items():
        flag = specs[key].flag
        if flag is None:
            continue
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


S, I, F, B, L = (str,), (int,), (float,), (bool,), (list,)


# gen-data --------------------------------------------------------------------------------

GEN_DATA = {"preset": Param(S, "thesis", "--preset", ("thesis", "full")), "n": Param(I, None, "--n"),
            "seed": Param(I, None, "--seed"), "style": Param(S, None, "--style", ("templates", "broad"))}


def _gen_data(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    return Invocation([*TINYLM, "code2", "gen-data", "--out", ".", *_flags(p, GEN_DATA)])


# tokenizer -------------------------------------------------------------------------------

TOKENIZER = {"type": Param(S, "char", None, ("char", "bpe", "sentencepiece")), "vocab_size": Param(I, None)}


def _tokenizer(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    code = ("import sys; from tinylm.pipeline.kinds import tokenizer_main; "
            "sys.exit(tokenizer_main(sys.argv[1:]))")
    argv = [sys.executable, "-c", code, p["type"], str(p.get("vocab_size", 0)), inputs["text"]]
    return Invocation(argv)


def tokenizer_main(argv: list[str]) -> int:
    """The tokenizer stage's child: train a tokenizer on a text file, a JSONL file of pairs
    (their inputs and outputs, as `tinylm train --pairs` would) or every such file in a
    folder; write tokenizer.json and a vocabulary summary."""
    from pathlib import Path

    from tinylm.atomic_files import write_json
    from tinylm.data import read_pairs
    from tinylm.tokenizers import TOKENIZER_FILENAME, train_tokenizer

    kind, vocab_size, source = argv[0], int(argv[1]) or None, Path(argv[2])
    files = sorted(f for f in source.rglob("*") if f.suffix in (".txt", ".jsonl")) if source.is_dir() else [source]
    texts: list = []
    for f in files:
        if f.suffix == ".jsonl":
            texts += [f"{p['input']}\n{p['output']}" for p in read_pairs(f)]
        else:
            texts.append(f)
    tok = train_tokenizer(kind, texts, vocab_size)
    tok.save(Path(TOKENIZER_FILENAME))
    write_json("tokenizer_stats.json", {"type": tok.kind, "vocab_size": tok.vocab_size,
                                        "trained_on": [str(f) for f in files]})
    return 0


# train -----------------------------------------------------------------------------------

TRAIN = {
    "task": Param(S, None, None, ("code2",)),  # the task's trainer (tinylm code2 train) on a data folder
    "recipe": Param(S, None, "--recipe"), "preset": Param(S, None, "--preset"),
    "tokenizer": Param(S, None, "--tokenizer", ("char", "bpe", "sentencepiece")), "vocab_size": Param(I, None, "--vocab-size"),
    "set": Param(L, None, "--set"), "shakespeare": Param(B, None, "--shakespeare"),
    "max_steps": Param(I, None, "--max-steps"), "batch_size": Param(I, None, "--batch-size"),
    "grad_accum": Param(I, None, "--grad-accum"), "lr": Param(F, None, "--lr"),
    "min_lr": Param(F, None, "--min-lr"), "warmup_steps": Param(I, None, "--warmup-steps"),
    "decay": Param(S, None, "--decay", ("cosine", "linear", "constant")), "weight_decay": Param(F, None, "--weight-decay"),
    "grad_clip": Param(F, None, "--grad-clip"), "eval_every": Param(I, None, "--eval-every"),
    "eval_batches": Param(I, None, "--eval-batches"), "patience": Param(I, None, "--patience"),
    "log_every": Param(I, None, "--log-every"), "token_budget": Param(I, None, "--token-budget"),
    "seed": Param(I, None, "--seed"), "dtype": Param(S, None, "--dtype", ("float32", "bfloat16")),
    "samples": Param(I, 0, "--samples"),
}
# What `tinylm code2 train` accepts of the above (its recipe carries the rest).
_CODE2_TRAIN = ("recipe", "max_steps")


def _check_train(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    if p.get("task") == "code2":
        extra = sorted(set(p) - {"task", "samples", *_CODE2_TRAIN}) + sorted(set(inputs) - {"data"})
        if extra:
            raise TinyLMError(f"train with task = \"code2\" takes recipe, max_steps and input data "
                              f"(its recipe sets the rest); drop {', '.join(extra)}")
        if "data" not in inputs:
            raise TinyLMError("train with task = \"code2\" needs input data (a gen-data stage's folder)")
    elif sum(k in inputs for k in ("data", "pairs")) + bool(p.get("shakespeare")) != 1:
        raise TinyLMError("train needs one data source: input data (text), input pairs, or shakespeare = true")


def _train(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    if p.get("task") == "code2":
        argv = [*TINYLM, "code2", "train", "--data", inputs["data"], "--out", ".", "--threads", str(threads),
                "--quiet", *_flags({k: v for k, v in p.items() if k in _CODE2_TRAIN}, TRAIN)]
        return Invocation(argv)
    argv = [*TINYLM, "train", "--out", ".", "--threads", str(threads), "--quiet", "--no-tensorboard"]
    if "data" in inputs:
        argv += ["--data", inputs["data"]]
    if "pairs" in inputs:
        argv += ["--pairs", inputs["pairs"]]
    if "val_pairs" in inputs:
        argv += ["--val-pairs", inputs["val_pairs"]]
    if "tokenizer" in inputs:
        argv += ["--tokenizer-file", inputs["tokenizer"]]
    return Invocation(argv + _flags(p, TRAIN))


# quantize, export, eval, eval-task, bench -------------------------------------------------

QUANTIZE = {"method": Param(S, _REQUIRED, "--method", ("int8", "int4", "dynamic-int8")), "group_size": Param(I, None, "--group-size"),
            "asymmetric": Param(B, None, "--asymmetric"), "float_embedding": Param(B, None, "--float-embedding"),
            "head": Param(B, None, "--head")}


def _quantize(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "quantize", inputs["model"], "--out", "model", "--json", *_flags(p, QUANTIZE)]
    if "text" in inputs:
        argv += ["--text", inputs["text"]]
    return Invocation(argv, stdout="quantize.json")


EXPORT = {"format": Param(S, _REQUIRED, None, ("hf", "onnx", "gguf")), "int8": Param(B, None, "--int8"),
          "type": Param(S, None, "--type", ("f32", "f16", "q8_0"))}
_EXPORT_VERBS = {"hf": ("export-hf", "model"), "onnx": ("export-onnx", "model"), "gguf": ("export-gguf", "model.gguf")}


def _check_export(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    for key, fmt in (("int8", "onnx"), ("type", "gguf")):
        if key in p and p["format"] != fmt:
            raise TinyLMError(f"parameter {key!r} applies to format = \"{fmt}\" only")


def _export(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    verb, out = _EXPORT_VERBS[p["format"]]
    flags = _flags({k: v for k, v in p.items() if k != "format"}, EXPORT)
    return Invocation([*TINYLM, verb, inputs["model"], out, *flags])


EVAL = {"stride": Param(I, None, "--stride")}


def _eval(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    return Invocation([*TINYLM, "eval", inputs["model"], inputs["text"], "--json", *_flags(p, EVAL)],
                      stdout="eval.json")


EVAL_TASK = {
    "task": Param(S, None, "--task"), "split": Param(S, "test", "--split"), "preset": Param(S, None, "--preset"),
    "limit": Param(I, None, "--limit"), "batch_size": Param(I, None, "--batch-size"),
    # Latency is a timing: off by default so the report holds only reproducible figures
    # (a bench stage is where speed belongs).
    "latency_examples": Param(I, 0, "--latency-examples"),
    "thesis_decoding": Param(B, None, "--thesis-decoding"), "unconstrained": Param(B, None, "--unconstrained"),
    "max_new_tokens": Param(I, None, "--max-new-tokens"), "temperature": Param(F, None, "--temperature"),
    "top_k": Param(I, None, "--top-k"), "top_p": Param(F, None, "--top-p"),
    "num_beams": Param(I, None, "--num-beams"), "seed": Param(I, None, "--seed"),
}


def _eval_task(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "eval-task", inputs["model"], "--out", ".", "--threads", str(threads), "--quiet"]
    if "data" in inputs:
        argv += ["--data", inputs["data"]]
    return Invocation(argv + _flags(p, EVAL_TASK))


BENCH = {"name": Param(S, _REQUIRED), "quick": Param(B, None, "--quick")}


def _check_bench(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    from tinylm.bench import BENCHMARKS

    if p["name"] not in BENCHMARKS:
        raise TinyLMError(f"unknown benchmark {p['name']!r} (choose from {', '.join(BENCHMARKS)})")


def _bench(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "bench", p["name"], "--json", "--threads", str(threads), *_flags(p, BENCH)]
    if "model" in inputs:
        argv += ["--model", inputs["model"]]
    return Invocation(argv, stdout="bench.json")


# finetune, prune, distill ----------------------------------------------------------------

FINETUNE = {
    "method": Param(S, None, "--method", ("full", "lora", "prompt", "adapter")),
    "rank": Param(I, None, "--rank"), "alpha": Param(F, None, "--alpha"), "lora_dropout": Param(F, None, "--lora-dropout"),
    "targets": Param(S, None, "--targets"), "virtual_tokens": Param(I, None, "--virtual-tokens"),
    "prompt_init": Param(S, None, "--prompt-init", ("vocab", "random")), "reduction": Param(I, None, "--reduction"),
    "placement": Param(S, None, "--placement", ("houlsby", "pfeiffer")), "freeze": Param(S, None, "--freeze"),
    "task": Param(S, None, "--task", ("code2-thesis", "code2-full", "code2")), "recipe": Param(S, None, "--recipe"),
    "merge": Param(B, None, "--merge"),
    "max_steps": Param(I, None, "--max-steps"), "batch_size": Param(I, None, "--batch-size"),
    "grad_accum": Param(I, None, "--grad-accum"), "lr": Param(F, None, "--lr"), "min_lr": Param(F, None, "--min-lr"),
    "warmup_steps": Param(I, None, "--warmup-steps"), "decay": Param(S, None, "--decay", ("cosine", "linear", "constant")),
    "weight_decay": Param(F, None, "--weight-decay"), "grad_clip": Param(F, None, "--grad-clip"),
    "eval_every": Param(I, None, "--eval-every"), "eval_batches": Param(I, None, "--eval-batches"),
    "patience": Param(I, None, "--patience"), "log_every": Param(I, None, "--log-every"),
    "token_budget": Param(I, None, "--token-budget"), "seed": Param(I, None, "--seed"),
    "dtype": Param(S, None, "--dtype", ("float32", "bfloat16")),
}


def _check_finetune(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    if "task" in p and ("recipe" in p or "data" in inputs):
        raise TinyLMError("finetune with a task trains on the task's own data; drop recipe and input data")
    if "task" not in p and "recipe" not in p and "data" not in inputs:
        raise TinyLMError("finetune needs data: task = \"code2-thesis\", a task's recipe, or input data")
    if "val_data" in inputs and "data" not in inputs:
        raise TinyLMError("input val_data goes with input data")


def _finetune(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "finetune", inputs["model"], "--out", ".", "--threads", str(threads), "--quiet", "--no-tensorboard"]
    if "data" in inputs:
        argv += ["--data", inputs["data"]]
    if "val_data" in inputs:
        argv += ["--val-data", inputs["val_data"]]
    return Invocation(argv + _flags(p, FINETUNE))


PRUNE = {
    "method": Param(S, _REQUIRED, "--method", ("magnitude", "structured")), "amount": Param(F, None, "--amount"),
    "scope": Param(S, None, "--scope", ("layer", "global")), "head": Param(B, None, "--head"),
    "heads": Param(F, None, "--heads"), "ffn": Param(F, None, "--ffn"),
    "importance": Param(S, None, "--importance", ("weight", "activation")),
    "finetune_steps": Param(I, None, "--finetune-steps"),
}


def _check_prune(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    if "data" in inputs and not p.get("finetune_steps"):
        raise TinyLMError("input data is prune's fine-tuning text: set finetune_steps too")


def _prune(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "prune", inputs["model"], "--out", "model", "--json", *_flags(p, PRUNE)]
    for name in ("text", "data"):
        if name in inputs:
            argv += [f"--{name}", inputs[name]]
    return Invocation(argv, stdout="prune.json")


DISTILL = {
    "student": Param(S, _REQUIRED, "--student"), "set": Param(L, None, "--set"),
    "task": Param(S, None, "--task", ("code2", "text")), "alpha": Param(F, None, "--alpha"),
    "temperature": Param(F, None, "--temperature"), "max_steps": Param(I, None, "--max-steps"),
    "budget_s": Param(F, None, "--budget-s"), "batch_size": Param(I, None, "--batch-size"),
    "lr": Param(F, None, "--lr"), "seed": Param(I, None, "--seed"), "force": Param(B, None, "--force"),
}


def _check_distill(p: dict[str, Any], inputs: dict[str, Any]) -> None:
    if "max_steps" in p and "budget_s" in p:
        raise TinyLMError("give distill max_steps or budget_s, not both")


def _distill(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    argv = [*TINYLM, "distill", inputs["teacher"], "--out", ".", "--threads", str(threads), "--quiet"]
    if "data" in inputs:
        argv += ["--data", inputs["data"]]
    return Invocation(argv + _flags(p, DISTILL))


# report, shell ----------------------------------------------------------------------------

REPORT = {"title": Param(S, "Pipeline report")}


def _report(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    code = "import sys; from tinylm.pipeline.report import main; sys.exit(main(sys.argv[1:]))"
    return Invocation([sys.executable, "-c", code, p["title"], *[f"{k}={v}" for k, v in inputs.items()]])


SHELL = {"run": Param(S, _REQUIRED)}


def _shell(p: dict[str, Any], inputs: Inputs, threads: int) -> Invocation:
    # Inputs reach the script as environment variables (IN_<name>), set by the runner.
    return Invocation(["bash", "-euo", "pipefail", "-c", p["run"]])


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("gen-data", "tinylm code2 gen-data: the Spanish->CODE-2 dataset", GEN_DATA, {}, _gen_data,
         lambda p: ("train.jsonl", "valid.jsonl", "test.jsonl")),
    Kind("tokenizer", "train a char, BPE or SentencePiece tokenizer on a text file or folder", TOKENIZER, {"text": True},
         _tokenizer, lambda p: ("tokenizer.json", "tokenizer_stats.json")),
    Kind("train", "tinylm train (or a task's trainer, task = \"code2\")", TRAIN,
         {"data": False, "pairs": False, "val_pairs": False, "tokenizer": False}, _train,
         lambda p: ("model",) if p.get("task") == "code2" else ("last", "metrics.jsonl"), validate=_check_train),
    Kind("quantize", "tinylm quantize: an int8/int4/dynamic-int8 checkpoint in model/", QUANTIZE,
         {"model": True, "text": False}, _quantize, lambda p: ("model", "quantize.json")),
    Kind("export", "tinylm export-hf / export-onnx / export-gguf (format = hf|onnx|gguf)", EXPORT,
         {"model": True}, _export,
         lambda p: (_EXPORT_VERBS[p["format"]][1],), validate=_check_export),
    Kind("eval", "tinylm eval: perplexity of a checkpoint on a text file", EVAL,
         {"model": True, "text": True}, _eval, lambda p: ("eval.json",)),
    Kind("eval-task", "tinylm eval-task: a task's metrics (report.json, predictions, charts)", EVAL_TASK,
         {"model": True, "data": False}, _eval_task, lambda p: ("report.json", "report.md")),
    Kind("bench", "tinylm bench NAME --json", BENCH, {"model": False}, _bench, lambda p: ("bench.json",),
         validate=_check_bench),
    Kind("finetune", "tinylm finetune: full, LoRA, prompt tuning or adapters; adapter/ (and merged/ with merge)",
         FINETUNE, {"model": True, "data": False, "val_data": False}, _finetune,
         lambda p: ("adapter", "finetune.json", *(("merged",) if p.get("merge") else ())), validate=_check_finetune),
    Kind("prune", "tinylm prune: a magnitude-pruned or structurally pruned checkpoint in model/", PRUNE,
         {"model": True, "text": False, "data": False}, _prune, lambda p: ("model", "prune.json"),
         validate=_check_prune),
    Kind("distill", "tinylm distill: a smaller student trained from a teacher, in model/", DISTILL,
         {"teacher": True, "data": False}, _distill, lambda p: ("model", "summary.json"), validate=_check_distill),
    Kind("report", "Markdown and PNG plots of the runs given as inputs", REPORT, {}, _report,
         lambda p: ("report.md",), any_inputs=True),
    Kind("shell", "a bash command run in the stage folder (inputs as $IN_<name>)", SHELL, {}, _shell,
         any_inputs=True),
)}


def get_kind(name: Any, where: str) -> Kind:
    if name in KINDS:
        return KINDS[name]
    raise TinyLMError(f"{where}: unknown stage kind {name!r} (available: {', '.join(KINDS)})")
