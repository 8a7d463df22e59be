"""Export to / import from a Hugging Face model folder on disk, by the API and by the CLI."""

import io
import json

import pytest
import sentencepiece as spm
import torch
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models

from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.cli import main as cli
from tinylm.errors import TinyLMError
from tinylm.interop import export_hf, import_hf, read_hf_tokenizer
from tinylm.interop import hf as hf_module
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.tokenizers import load_tokenizer, train_tokenizer

TOL = 1e-4
CORPUS = "The quick brown fox jumps over the lazy dog.\nA small model learns one token at a time.\n" * 4
# Accents the char tokenizer never saw (byte fallback), a spelled special token, tabs, newlines.
TEXT = "vacía ñandú 日本 <bos> x\t y\n\n  , ok"


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer("bpe", [CORPUS], vocab_size=300)


@pytest.fixture(scope="module")
def char():
    return train_tokenizer("char", [CORPUS])


def tiny(family: str, tok, **overrides) -> GPT:
    torch.manual_seed(0)
    size = dict(n_layer=2, n_head=4, n_embd=32, block_size=16)
    return GPT(model_config(f"{family}-nano", vocab_size=tok.vocab_size, **{**size, **overrides}))


def run_cli(monkeypatch, *argv) -> int:
    # Only this module's commands: others in the tree may be mid-edit and must not break these tests.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["tinylm.cli.export_hf"])
    return cli.main([str(a) for a in argv])


@pytest.mark.parametrize("family, tok_name, overrides", [
    # Non-default values, so a field left to HF's default cannot come back unchanged.
    ("gpt2-style", "bpe", {"norm_eps": 1e-6, "ffn_hidden": 48, "dropout": 0.1}),
    ("llama-style", "char", {"tie_weights": False, "n_kv_head": 2, "rope_theta": 500.0, "bias": True}),
])
def test_export_then_import_keeps_weights_and_tokenizer(tmp_path, family, tok_name, overrides, request, randomize):
    tok = request.getfixturevalue(tok_name)
    model = randomize(tiny(family, tok, **overrides))
    export_hf((model, tok), tmp_path / "hf")
    back, back_tok = import_hf(tmp_path / "hf")
    assert {**back.config.to_dict(), "extra": None} == {**model.config.to_dict(), "extra": None}
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert back_tok.kind == tok.kind and back_tok.vocab_size == tok.vocab_size
    assert back_tok.encode(TEXT) == tok.encode(TEXT) and back_tok.decode(tok.encode(TEXT)) == TEXT


@pytest.mark.parametrize("family, tok_name", [("gpt2-style", "bpe"), ("llama-style", "char")])
def test_exported_folder_loads_with_auto_classes(tmp_path, family, tok_name, request, randomize):
    tok = request.getfixturevalue(tok_name)
    model = randomize(tiny(family, tok))
    out = export_hf((model, tok), tmp_path / "hf")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {f.name for f in out.iterdir()}
    assert all(f.stat().st_mode & 0o044 for f in [out, *out.iterdir()])  # readable by a server running as another user
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel" if family == "gpt2-style" else "LlamaForCausalLM"]
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (tok.bos_id, tok.eos_id, tok.pad_id)

    hf = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = hf_tok(TEXT, return_tensors="pt").input_ids
    assert ids[0].tolist() == tok.encode(TEXT)
    assert hf_tok.decode(ids[0]) == TEXT
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    x = ids[:, : model.config.block_size]
    with torch.no_grad():
        assert (model(x)[0] - hf(x).logits).abs().max().item() <= TOL


def test_cli_export_and_import(tmp_path, monkeypatch, capsys, bpe, randomize):
    model = randomize(tiny("llama-style", bpe))
    save_checkpoint(tmp_path / "ckpt", model, bpe)
    assert run_cli(monkeypatch, "export-hf", tmp_path / "ckpt", tmp_path / "hf") == 0
    out = capsys.readouterr()
    assert "LlamaForCausalLM" in out.out and out.err == ""  # no progress bars
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    x = torch.tensor([bpe.encode("the lazy dog")])
    with torch.no_grad():
        assert (model(x)[0] - hf(x).logits).abs().max().item() <= TOL

    assert run_cli(monkeypatch, "import-hf", tmp_path / "hf", tmp_path / "back") == 0
    back = load_model(tmp_path / "back")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    assert load_tokenizer(tmp_path / "back").encode(TEXT) == bpe.encode(TEXT)


def test_cli_replaces_only_model_folders_and_only_with_force(tmp_path, monkeypatch, capsys, bpe):
    save_checkpoint(tmp_path / "ckpt", tiny("gpt2-style", bpe), bpe)
    assert run_cli(monkeypatch, "export-hf", tmp_path / "ckpt", tmp_path / "hf") == 0
    assert run_cli(monkeypatch, "export-hf", tmp_path / "ckpt", tmp_path / "hf") == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "hf" / "notes.txt").write_text("mine")
    assert run_cli(monkeypatch, "export-hf", tmp_path / "ckpt", tmp_path / "hf", "--force") == 0
    assert not (tmp_path / "hf" / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "hf"]  # no temporary folders left

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    for argv, message in [
        (("export-hf", tmp_path / "ckpt", tmp_path / "docs", "--force"), "not a model folder"),
        (("export-hf", tmp_path / "ckpt", tmp_path / "ckpt", "--force"), "would replace the input"),
        (("import-hf", tmp_path / "hf", tmp_path, "--force"), "would replace the input"),
    ]:
        capsys.readouterr()
        assert run_cli(monkeypatch, *argv) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "docs" / "notes.txt").exists() and load_model(tmp_path / "ckpt")


def test_import_without_usable_tokenizer(tmp_path, monkeypatch, capsys, randomize):
    # OpenAI-GPT-2-like: a tokenizer without tinylm's special tokens cannot come along.
    hf = randomize(transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_positions=8, n_embd=16, n_layer=1, n_head=2, activation_function="gelu")))
    hf.save_pretrained(tmp_path / "hf")
    HFTokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp_path / "hf" / "tokenizer.json"))
    model, tok = import_hf(tmp_path / "hf")
    assert tok is None and model.config.vocab_size == 50
    with pytest.raises(TinyLMError, match="not a byte-level BPE or char tokenizer"):
        read_hf_tokenizer(tmp_path / "hf")
    assert run_cli(monkeypatch, "import-hf", tmp_path / "hf", tmp_path / "ckpt") == 0
    assert "no tokenizer saved" in capsys.readouterr().err
    assert not (tmp_path / "ckpt" / "tokenizer.json").exists()


def test_failed_export_leaves_nothing(tmp_path, monkeypatch, bpe):
    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(hf_module, "_save_hf_tokenizer", boom)
    with pytest.raises(OSError):
        export_hf((tiny("gpt2-style", bpe), bpe), tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_sentencepiece_tokenizer_is_not_exported_but_the_model_can_be(tmp_path):
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()), model_writer=proto, vocab_size=300,
        model_type="bpe", byte_fallback=True, minloglevel=2,
    )
    (tmp_path / "sp.model").write_bytes(proto.getvalue())
    sp = load_tokenizer(tmp_path / "sp.model")
    with pytest.raises(TinyLMError, match="--no-tokenizer"):
        export_hf((tiny("gpt2-style", sp), sp), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    out = export_hf((tiny("gpt2-style", sp), sp), tmp_path / "hf", tokenizer=False)
    assert not (out / "tokenizer.json").exists() and (out / "model.safetensors").exists()


def write_config(folder, **fields):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(fields))
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing", "checkpoint not found"),
    ("post-norm", "cannot export this model"),
])
def test_cli_export_bad_input_one_line(tmp_path, monkeypatch, capsys, bpe, case, message):
    if case == "post-norm":
        save_checkpoint(tmp_path / "missing", tiny("gpt2-style", bpe, norm_placement="post"))
    assert run_cli(monkeypatch, "export-hf", tmp_path / "missing", tmp_path / "hf") == 2
    err = capsys.readouterr().err
    assert err.startswith("tinylm: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "hf").exists()


def test_cli_import_bad_input_one_line(tmp_path, monkeypatch, capsys):
    tiny_gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=20, n_positions=8, n_embd=16, n_layer=1, n_head=2))
    tiny_gpt2.save_pretrained(tmp_path / "gelu_new")
    no_weights = write_config(tmp_path / "no_weights", **transformers.LlamaConfig(
        vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2).to_dict())
    (tmp_path / "a_file").write_text("x")
    save_checkpoint(tmp_path / "ckpt", GPT(model_config("gpt2-style-nano", vocab_size=20, n_layer=1)))
    tiny_gpt2.config.activation_function = "gelu"
    for name in ("partial", "corrupt"):
        tiny_gpt2.save_pretrained(tmp_path / name)
    weights = load_file(str(tmp_path / "partial" / "model.safetensors"))
    del weights["transformer.h.0.mlp.c_fc.weight"]
    save_file(weights, str(tmp_path / "partial" / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"not safetensors")
    cases = {
        tmp_path / "nowhere": "not a folder",
        tmp_path / "a_file": "not a folder",
        tmp_path: "no config.json",
        tmp_path / "ckpt": "is a tinylm checkpoint",
        write_config(tmp_path / "bert", model_type="bert", architectures=["BertForMaskedLM"]): "unsupported architecture ['BertForMaskedLM']",
        tmp_path / "gelu_new": "activation_function='gelu_new'",
        no_weights: "cannot load",
        tmp_path / "partial": "weights missing or of the wrong shape: transformer.h.0.mlp.c_fc.weight",
        tmp_path / "corrupt": "cannot load",
    }
    for folder, message in cases.items():
        assert run_cli(monkeypatch, "import-hf", folder, tmp_path / "out") == 2, folder
        err = capsys.readouterr().err
        assert err.startswith("tinylm: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
