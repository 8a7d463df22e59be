"""`tinylm finetune` on a tiny saved base: each method trains, saves only its tensors, loads back
onto the base, merges; resume continues exactly; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tinylm
from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.cli.main import main
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.tokenizers import train_tokenizer

PAIRS = [{"input": f"suma {a} y {b}", "output": f"{a + b}"} for a in range(8) for b in range(8)]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    tok = train_tokenizer("char", [f"{p['input']}\n{p['output']}" for p in PAIRS])
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32, ffn="swiglu",
                      position="rope", norm="rmsnorm", bias=False)
    return save_checkpoint(tmp_path_factory.mktemp("b") / "base", GPT(cfg), tok)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("d") / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return path


FAST = ["--batch-size", "8", "--eval-every", "3", "--eval-batches", "1", "--log-every", "1", "--quiet",
        "--lr", "1e-2", "--warmup-steps", "1"]


def finetune(base: Path, pairs: Path, out: Path, *extra: str, steps: int = 6) -> int:
    return main(["finetune", str(base), "--data", str(pairs), "--out", str(out), "--max-steps", str(steps), *FAST, *extra])


def logits(lm, text: str = "suma 3 y 4", framing=None) -> torch.Tensor:
    ids = torch.tensor([(framing or lm).encode_prompts([text])[0]])
    with torch.no_grad():
        return lm.model(ids)[0]


def test_lora_saves_a_few_kb_loads_onto_the_base_and_merges(base, pairs, tmp_path, capsys) -> None:
    out = tmp_path / "lora"
    assert finetune(base, pairs, out, "--method", "lora", "--rank", "2", "--merge") == 0
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert weights and all("lora_" in k for k in weights)
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_size < 8 * 1024
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["method"] == "lora" and len(config["base"]["sha256"]) == 64
    run_model = tinylm.load(out / "best")
    on_base = tinylm.load(base, adapter=out / "adapter")
    merged = tinylm.load(out / "merged")
    assert merged.model.transforms[-1].name == "prepare_for_inference" and len(merged.model.transforms) == 1
    torch.testing.assert_close(logits(on_base), logits(run_model), atol=0, rtol=0)
    torch.testing.assert_close(logits(merged), logits(run_model), atol=1e-5, rtol=1e-5)
    base_lm = tinylm.load(base)
    assert not torch.allclose(logits(base_lm, framing=run_model), logits(run_model))  # it did train
    # Only A and B moved: the base weights inside the run's model are the base's.
    best = load_file(str(out / "best" / "model.safetensors"))
    plain = load_file(str(base / "model.safetensors"))
    assert torch.equal(best["blocks.0.attn.qkv.base.weight"], plain["blocks.0.attn.qkv.weight"])
    assert torch.equal(best["blocks.0.ffn.up.weight"], plain["blocks.0.ffn.up.weight"])


@pytest.mark.parametrize("method,flags", [("adapter", ["--reduction", "8", "--placement", "pfeiffer"]),
                                          ("prompt", ["--virtual-tokens", "4"]),
                                          ("full", ["--freeze", "tok_emb,blocks.0"])])
def test_other_methods_train_and_reload(base, pairs, tmp_path, method, flags) -> None:
    out = tmp_path / method
    assert finetune(base, pairs, out, "--method", method, *flags) == 0
    run_model = tinylm.load(out / "best")
    on_base = tinylm.load(base, adapter=out / "adapter")
    torch.testing.assert_close(logits(on_base), logits(run_model), atol=0, rtol=0)
    saved = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    if method == "prompt":
        assert list(saved) == ["tok_emb.prompt"] and on_base.encode_prompts(["x"])[0][:4] == [
            on_base.model.config.vocab_size + i for i in range(4)]
        assert isinstance(on_base.generate("suma 1 y 2", max_new_tokens=4, temperature=0), str)
    if method == "full":
        assert not any(k.startswith(("tok_emb", "blocks.0.")) for k in saved) and "blocks.1.attn.qkv.weight" in saved


def test_resume_of_a_lora_run_continues_exactly(base, pairs, tmp_path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    flags = ["--method", "lora", "--rank", "2", "--lora-dropout", "0.1", "--decay", "constant"]  # one lr schedule for both
    assert finetune(base, pairs, whole, *flags, steps=8) == 0
    assert finetune(base, pairs, cut, *flags, steps=4) == 0
    assert main(["finetune", "--resume", "--out", str(cut), "--max-steps", "8", "--quiet"]) == 0
    a, b = load_file(str(whole / "last" / "model.safetensors")), load_file(str(cut / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input_is_one_line_and_writes_nothing(base, pairs, tmp_path, capsys) -> None:
    cases = [(["--method", "lora", "--targets", "attn.nothing"], "match no linear layer"),
             (["--method", "lora", "--rank", "100"], "larger than"),
             (["--method", "full", "--freeze", "nope"], "matches no parameter"),
             (["--method", "lora", "--freeze", "tok_emb"], "--freeze goes with --method full")]
    for flags, message in cases:
        out = tmp_path / "bad"
        assert finetune(base, pairs, out, *flags) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert not out.exists()


def test_adapter_onto_a_different_base_is_refused(base, pairs, tmp_path, capsys) -> None:
    out = tmp_path / "ft"
    assert finetune(base, pairs, out, "--method", "lora", "--rank", "2", steps=2) == 0
    other = load_model(base)
    with torch.no_grad():
        other.blocks[1].ffn.up.weight.add_(1e-3)
    save_checkpoint(tmp_path / "other", other, tinylm.load(base).tokenizer)
    with pytest.raises(TinyLMError, match="different base weights"):
        tinylm.load(tmp_path / "other", adapter=out / "adapter")
    torch.manual_seed(0)
    wider = GPT(ModelConfig(**{**load_model(base).config.to_dict(), "n_embd": 64, "extra": {}}))
    save_checkpoint(tmp_path / "wider", wider, tinylm.load(base).tokenizer)
    capsys.readouterr()
    assert main(["finetune", str(tmp_path / "wider"), "--merge-adapter", str(out / "adapter"), "--out",
                 str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err.strip()
    assert "different base model (n_embd: 32 there, 64 here)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "merged").exists()


def test_task_finetune_then_eval_task_and_translate(tiny_code2_model, tmp_path, capsys) -> None:
    """--recipe of a task trains on the task's data; eval-task and code2 translate run on OUT/model."""
    from tiny_code2 import tiny_code2_recipe

    recipe = tiny_code2_recipe().replace(train={"max_steps": 4}, settings={"em_blocks": 2, "final_blocks": 2})
    recipe_file = tmp_path / "tiny.json"
    recipe_file.write_text(json.dumps(recipe.to_dict()))
    out = tmp_path / "ft"
    assert main(["finetune", str(tiny_code2_model), "--method", "lora", "--rank", "2", "--recipe", str(recipe_file),
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "model" / "config.json").read_text())["transforms"][0]["name"] == "lora"
    capsys.readouterr()
    assert main(["eval-task", str(out / "model"), "--limit", "3", "--latency-examples", "0", "--quiet",
                 "--out", str(tmp_path / "eval")]) == 0
    assert "exact" in capsys.readouterr().out.lower()
    assert main(["code2", "translate", str(out / "model"), "Suma r1 y r2 y guarda el resultado en r3"]) == 0
