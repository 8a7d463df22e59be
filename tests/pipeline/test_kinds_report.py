"""Stage kinds build command lines the real `tinylm` parser accepts; the report stage draws
the toolkit's files into Markdown and PNGs, the same bytes each time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tinylm.cli.main import build_parser
from tinylm.errors import TinyLMError
from tinylm.pipeline.kinds import KINDS, TINYLM
from tinylm.pipeline.report import write_report

SAMPLE = {str: "x", int: 3, float: 0.5, bool: True, list: ["n_layer=2"]}


def _every_param(kind) -> dict:
    params = {}
    for name, p in kind.params.items():
        params[name] = p.choices[0] if p.choices else SAMPLE[p.types[0]]
    return params


@pytest.mark.parametrize("name", [k for k in KINDS if k not in ("shell", "report", "tokenizer")])
def test_every_parameter_becomes_a_flag_the_verb_accepts(name: str) -> None:
    kind = KINDS[name]
    params = _every_param(kind)
    if name == "train":  # the generic trainer (code2's takes fewer flags, tested below)
        del params["task"]
    if name == "bench":
        params["name"] = "kv-cache"
    if name == "distill":  # a budget or a step count, not both (the verb's flags exclude each other)
        del params["budget_s"]
    if name == "export":  # one format's flags at a time, each checked against its verb
        for fmt, only in (("hf", {}), ("onnx", {"int8": True}), ("gguf", {"type": "q8_0"})):
            inv = kind.build({"format": fmt, **only}, {"model": "m"}, 1)
            build_parser().parse_args(inv.argv[len(TINYLM):])
        return
    inputs = {k: f"../in/{k}" for k in kind.inputs}
    inv = kind.build(params, inputs, 1)
    assert inv.argv[:len(TINYLM)] == TINYLM
    args = build_parser().parse_args(inv.argv[len(TINYLM):])  # exits (SystemExit) on an unknown flag
    for key, value in params.items():
        dest = {"set": "overrides", "name": "name"}.get(key, key)
        if kind.params[key].flag is not None and hasattr(args, dest):
            assert getattr(args, dest) in (value, [value], value[0] if isinstance(value, list) else None), key


def test_code2_training_takes_its_recipe_and_steps() -> None:
    inv = KINDS["train"].build({"task": "code2", "recipe": "code2-thesis", "max_steps": 5}, {"data": "../data"}, 2)
    args = build_parser().parse_args(inv.argv[len(TINYLM):])
    assert (args.data, args.recipe, args.max_steps, args.threads, args.out) == ("../data", "code2-thesis", 5, 2, ".")


def test_distill_prune_finetune_pass_their_inputs_to_the_verb() -> None:
    def parsed(kind: str, params: dict, inputs: dict):
        checked = KINDS[kind].check(params, inputs, "stage")
        return build_parser().parse_args(KINDS[kind].build(checked, inputs, 2).argv[len(TINYLM):])

    args = parsed("distill", {"student": "llama-style-nano", "set": ["n_layer=1"], "budget_s": 30},
                  {"teacher": "../train/model", "data": "../data"})
    assert (args.teacher, args.data, args.budget_s, args.max_steps, args.overrides, args.out, args.threads) == \
        ("../train/model", ["../data"], 30.0, None, ["n_layer=1"], ".", 2)
    args = parsed("prune", {"method": "structured", "ffn": 0.25, "finetune_steps": 5},
                  {"model": "../train/model", "text": "../v.txt", "data": "../t.txt"})
    assert (args.checkpoint, args.method, args.ffn, args.text, args.data, args.out, args.json) == \
        ("../train/model", "structured", 0.25, "../v.txt", "../t.txt", "model", True)
    args = parsed("finetune", {"method": "lora", "rank": 4, "max_steps": 3}, {"model": "../m", "data": "../p.jsonl"})
    assert (args.base, args.method, args.rank, args.max_steps, args.data, args.tensorboard) == \
        ("../m", "lora", 4, 3, ["../p.jsonl"], False)
    assert KINDS["finetune"].produces({"merge": True}) == ("adapter", "finetune.json", "merged")


@pytest.mark.parametrize("kind, params, inputs, message", [
    ("distill", {"student": "s", "max_steps": 2, "budget_s": 9.0}, {"teacher": "t"}, "max_steps or budget_s, not both"),
    ("distill", {"student": "s"}, {}, "needs input 'teacher'"),
    ("prune", {"method": "magnitude"}, {"model": "m", "data": "d"}, "set finetune_steps too"),
    ("finetune", {"method": "lora"}, {"model": "m"}, "finetune needs data"),
    ("finetune", {"task": "code2-thesis"}, {"model": "m", "data": "d"}, "the task's own data"),
    ("finetune", {"recipe": "r"}, {"model": "m", "val_data": "v"}, "val_data goes with input data"),
])
def test_bad_distill_prune_finetune_stages_are_one_line(kind: str, params: dict, inputs: dict, message: str) -> None:
    with pytest.raises(TinyLMError, match=message):
        KINDS[kind].check(params, inputs, "stage 'x'")


def test_report_draws_runs_evaluations_and_benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "train"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 1, "loss": 3.0, "elapsed": 0.1}, {"step": 2, "loss": 2.5, "elapsed": 0.2},
        {"step": 2, "val_loss": 2.7, "val_ppl": 14.9})))
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "report.json").write_text(json.dumps({
        "examples": 4, "metrics": {"exact_match": 0.25}, "scores": {"exec_equal": 0.5},
        "by_length": [{"length": 1, "examples": 2, "exact_match": 0.5}, {"length": 2, "examples": 2, "exact_match": 0.0}]}))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"benchmark": "kv-cache", "rows": [
        {"new_tokens": 64, "with_cache_s": 1.0, "without_cache_s": 2.0, "speedup": 2.0}], "machine": {"cores": 2},
        "variants": {"fp32": {"tokens_per_s": 40.0}, "int8": {"tokens_per_s": 90.5}}}))
    inputs = [("training", run), ("test", ev), ("kv", bench)]
    outputs = {}
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        folder.mkdir()
        monkeypatch.chdir(folder)
        write_report("T", inputs)
        outputs[attempt] = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert outputs["a"] == outputs["b"]  # same inputs, same bytes (PNGs included)
    assert set(outputs["a"]) == {"report.md", "loss.png", "accuracy_by_length.png", "bench_0.png"}
    md = outputs["a"]["report.md"].decode()
    assert "| training | 2 | 2.5 | 2.7 |" in md
    assert "| test | 4 | 0.25 | 0.5 |" in md
    assert "| 64 | 1 | 2 | 2 |" in md and "machine: cores 2" in md
    assert "| fp32 | 40 |" in md and "| int8 | 90.5 |" in md  # named rows become a table
    for png in ("loss.png", "accuracy_by_length.png", "bench_0.png"):
        assert outputs["a"][png][:8] == b"\x89PNG\r\n\x1a\n"
