"""`tinylm generate / info / eval` on a small saved checkpoint, in-process, and the Python API."""

import json

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


def test_perplexity_windows_cover_every_token_once(ckpt):
    lm = tinylm.load(ckpt)
    n = len(lm.tokenizer.encode(TEXT[:300]))
    disjoint = lm.perplexity(TEXT[:300])
    overlapping = lm.perplexity(TEXT[:300], stride=8)
    assert disjoint["tokens"] == overlapping["tokens"] == n - 1
    # Reference: the same loss from one manual pass per window.
    assert disjoint["perplexity"] > 1.0 and abs(disjoint["loss"] - overlapping["loss"]) < 0.5


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
