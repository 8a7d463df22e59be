"""`tinylm generate / info / eval` on a small saved checkpoint, in-process, and the Python API."""

import json
import math

import pytest
import torch

import tinylm
from tinylm.checkpoint import save_checkpoint
from tinylm.cli.main import main
from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.tokenizers import train_tokenizer

TEXT = "to be or not to be, that is the question. vacía, dirección, ñandú.\n" * 20


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    tok = train_tokenizer("char", [TEXT])
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    return save_checkpoint(tmp_path_factory.mktemp("c") / "ckpt", model, tok)


def test_api_generate_is_seeded_and_batched(ckpt):
    lm = tinylm.load(ckpt)
    a = lm.generate("to be", max_new_tokens=8, temperature=1.0, seed=3)
    assert a == lm.generate("to be", max_new_tokens=8, temperature=1.0, seed=3)
    greedy = lm.generate(["to be", "vacía"], max_new_tokens=6, temperature=0)
    assert greedy == [lm.generate("to be", max_new_tokens=6, temperature=0), lm.generate("vacía", max_new_tokens=6, temperature=0)]
    assert "".join(lm.stream("to be", max_new_tokens=8, temperature=1.0, seed=3)) == a


def reference_loss(lm, ids: list[int], stride: int) -> tuple[float, int]:
    """Mean next-token loss computed token by token, from the definition of the windows.

    Target ids[t] lies in the window that scores positions (start, start + stride], start a
    multiple of the stride; that window begins `context` tokens before its end (at 0 for the
    first), so ids[t] is predicted from ids[begin:t]. Each prediction is its own forward pass
    of exactly that prefix: no batching, no masking, nothing shared with the windowed code."""
    context = lm.model.config.block_size
    total = 0.0
    for t in range(1, len(ids)):
        start = (t - 1) // stride * stride
        begin = max(0, start + stride - context) if start else 0
        with torch.no_grad():
            logits, _ = lm.model(torch.tensor([ids[begin:t]]))
        total -= torch.log_softmax(logits[0, -1].double(), dim=-1)[ids[t]].item()
    return total / (len(ids) - 1), len(ids) - 1


@pytest.mark.parametrize("stride", [None, 8, 1])
def test_perplexity_equals_a_token_by_token_reference(ckpt, stride):
    lm = tinylm.load(ckpt)
    ids = lm.tokenizer.encode(TEXT[:300])
    figures = lm.perplexity(TEXT[:300], stride=stride)
    loss, count = reference_loss(lm, ids, stride or lm.model.config.block_size)
    assert figures["tokens"] == count == len(ids) - 1  # every token but the first, once
    assert figures["loss"] == pytest.approx(loss, abs=1e-5)
    assert figures["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)


def test_more_context_per_token_changes_the_loss(ckpt):
    """Windows of stride 8 give most tokens more context than disjoint ones: the figures differ."""
    lm = tinylm.load(ckpt)
    assert lm.perplexity(TEXT[:300], stride=8)["loss"] != pytest.approx(lm.perplexity(TEXT[:300])["loss"], abs=1e-4)


def test_generate_info_eval_cli(ckpt, tmp_path, capsys):
    assert main(["generate", str(ckpt), "to be", "--max-new-tokens", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("to be")
    assert main(["info", str(ckpt)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == GPT(ModelConfig(**info["config"])).num_params()
    text = tmp_path / "t.txt"
    text.write_text(TEXT[:200], encoding="utf-8")
    assert main(["eval", str(ckpt), str(text), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 199


@pytest.mark.parametrize("argv,message", [
    (["generate", "/nonexistent/ckpt", "x"], "checkpoint not found"),
    (["generate", "{ckpt}", "x" * 100], "more than the model's context"),
    (["generate", "{ckpt}", "x", "--temperature", "-1"], "temperature"),
    (["eval", "{ckpt}", "/nonexistent.txt"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(ckpt, capsys, argv, message):
    argv = [a.replace("{ckpt}", str(ckpt)) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed before the error
    err = captured.err.strip()
    assert err.startswith("tinylm: error:") and message in err and "\n" not in err
