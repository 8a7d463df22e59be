"""Pruning: magnitude masks (a transform) and structured pruning (a smaller GPT).

References, independent of the code under test:
- torch.nn.utils.prune (l1_unstructured, global_unstructured) computes the masks;
- structured pruning against the original model with the removed heads' and channels'
  columns of attn.proj / ffn.down zeroed (written out here, at the original size);
- the KV cache (step by step against one full forward), save/load, Hugging Face Llama and
  ONNX Runtime on the pruned model, as properties (same logits).
"""

from __future__ import annotations

import copy
import importlib
import json

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

import tinylm
from tinylm.checkpoint import WEIGHTS_FILE, load_model, save_checkpoint
from tinylm.cli import prune as prune_cli
from tinylm.cli.main import main
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT, KVCache
from tinylm.tokenizers import CharTokenizer
from tinylm.transforms import merge_all, quantize
from tinylm.transforms.prune import (
    MagnitudePrune,
    MaskedLinear,
    finetune,
    prune,
    shrink,
    sparsity,
    structured_plan,
)

prune_module = importlib.import_module("tinylm.transforms.prune")  # the package exports a function of its name

TEXT = "to be or not to be, that is the question; whether 'tis nobler in the mind to suffer.\n" * 8
TOKENIZER = CharTokenizer.train([TEXT])
V = TOKENIZER.vocab_size

FAMILIES = {
    "gpt2": dict(n_head=4, ffn="gelu", position="learned", norm="layernorm", bias=True),
    "llama-gqa": dict(n_head=4, n_kv_head=2, ffn="swiglu", position="rope", norm="rmsnorm", bias=False),
}


def model(family: str = "llama-gqa", seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"vocab_size": V, "block_size": 64, "n_layer": 2, "n_embd": 32, "ffn_hidden": 64,
                         **FAMILIES[family], **kw})
    m = GPT(cfg).eval()
    with torch.no_grad():  # weights far from init, so heads and channels differ and logits are worth comparing
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


IDS = torch.tensor([TOKENIZER.encode(TEXT[:40]), TOKENIZER.encode(TEXT[40:80])])


def logits(m: GPT, ids: torch.Tensor = IDS) -> torch.Tensor:
    with torch.no_grad():
        return m(ids)[0]


# ----------------------------------------------------------------------------- magnitude

@pytest.mark.parametrize("amount", [0.1, 0.3, 0.5])
def test_per_layer_masks_equal_torchs_l1_unstructured(amount):
    m = model()
    masked = copy.deepcopy(m)
    MagnitudePrune(amount=amount).apply(masked)
    layers = {name: mod for name, mod in m.named_modules() if type(mod) is nn.Linear and name != "lm_head"}
    assert len(layers) == 2 * 5  # qkv, proj, gate, up, down per block; the tied head is left alone
    for name, layer in layers.items():
        torch_prune.l1_unstructured(layer, "weight", amount)
        assert torch.equal(masked.get_submodule(name).mask, layer.weight_mask.bool()), name
    assert sparsity(masked) == pytest.approx(amount, abs=0.01)


def test_global_masks_equal_torchs_global_unstructured():
    m = model(family="gpt2")
    with torch.no_grad():
        m.blocks[0].ffn.up.weight.mul_(0.25)  # one layer of small weights: a global threshold takes most of it
    masked, tiny = copy.deepcopy(m), copy.deepcopy(m)
    MagnitudePrune(amount=0.4, scope="global").apply(masked)
    layers = {name: mod for name, mod in m.named_modules() if type(mod) is nn.Linear and name != "lm_head"}
    torch_prune.global_unstructured([(mod, "weight") for mod in layers.values()], torch_prune.L1Unstructured, amount=0.4)
    for name, layer in layers.items():
        assert torch.equal(masked.get_submodule(name).mask, layer.weight_mask.bool()), name
    assert float((~masked.blocks[0].ffn.up.mask).float().mean()) > 0.8
    assert sparsity(masked) == pytest.approx(0.4, abs=0.01)
    with torch.no_grad():
        tiny.blocks[0].ffn.up.weight.mul_(0.01)
    with pytest.raises(TinyLMError, match="every weight of blocks.0.ffn.up"):
        MagnitudePrune(amount=0.4, scope="global").apply(tiny)


def test_masked_model_computes_with_zeros_merges_and_undoes():
    m = model()
    before = logits(m)
    transform = MagnitudePrune(amount=0.5)
    transform.apply(m)
    reference = copy.deepcopy(m)  # the same masks, applied by hand to plain weights
    transform_ref = reference.transforms[0]
    transform_ref.undo(reference)
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, MaskedLinear):
                reference.get_submodule(name).weight.mul_(mod.mask)
    masked = logits(m)
    assert torch.allclose(masked, logits(reference), atol=1e-5)
    assert not torch.allclose(masked, before, atol=1e-3)
    merged = merge_all(copy.deepcopy(m))
    assert not merged.transforms and all(not isinstance(x, MaskedLinear) for x in merged.modules())
    assert torch.allclose(logits(merged), masked, atol=1e-5)
    assert sparsity(merged) == pytest.approx(0.5, abs=0.01)
    transform.undo(m)
    assert torch.equal(logits(m), before)


def test_finetune_keeps_the_zeros_and_lowers_the_loss():
    m = model(seed=1)
    MagnitudePrune(amount=0.5).apply(m)
    masks = {name: mod.mask.clone() for name, mod in m.named_modules() if isinstance(mod, MaskedLinear)}
    weights = {name: m.get_submodule(name).weight.detach().clone() for name in masks}
    losses = finetune(m, TOKENIZER.encode(TEXT), 15, batch_size=4, lr=3e-3)
    assert losses[-1] < losses[0]
    merge_all(m)
    for name, mask in masks.items():
        w = m.get_submodule(name).weight
        assert torch.all(w[~mask] == 0), name
        assert not torch.equal(w[mask], weights[name][mask]), name  # the kept weights did train


def test_masked_model_saves_and_loads_with_its_masks(tmp_path):
    m = model()
    MagnitudePrune(amount=0.3, scope="global").apply(m)
    save_checkpoint(tmp_path / "ck", m, TOKENIZER)
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["transforms"] == [{"name": "magnitude-prune", "amount": 0.3, "scope": "global", "head": False}]
    loaded = load_model(tmp_path / "ck")
    assert torch.equal(logits(loaded), logits(m))
    assert torch.equal(loaded.blocks[0].attn.qkv.mask, m.blocks[0].attn.qkv.mask)


def test_head_is_pruned_only_when_asked_and_untied():
    untied = model(tie_weights=False)
    MagnitudePrune(amount=0.3, head=True).apply(untied)
    assert isinstance(untied.lm_head, MaskedLinear)
    tied = model()
    MagnitudePrune(amount=0.3, head=True).apply(tied)
    assert type(tied.lm_head) is nn.Linear and tied.lm_head.weight is tied.tok_emb.weight


# ----------------------------------------------------------------------------- structured

def zeroed_reference(m: GPT, plan) -> GPT:
    """The original model with the removed heads' and channels' outputs zeroed, written out
    here from the config (not with the module's index helpers)."""
    cfg = m.config
    ref = copy.deepcopy(m)
    rep, D = cfg.n_head // cfg.kv_heads, cfg.head_dim
    with torch.no_grad():
        for block, groups, channels in zip(ref.blocks, plan.kv_groups, plan.channels):
            for g in set(range(cfg.kv_heads)) - set(groups):
                block.attn.proj.weight[:, g * rep * D:(g + 1) * rep * D] = 0
            for c in set(range(cfg.hidden_dim)) - set(channels):
                block.ffn.down.weight[:, c] = 0
    return ref


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("importance", ["weight", "activation"])
def test_structured_equals_the_original_with_removed_parts_zeroed(family, importance):
    m = model(family)
    plan = structured_plan(m, heads=0.5, ffn=0.25, importance=importance, calibration=IDS)
    small = shrink(m, plan).eval()
    cfg = small.config
    assert cfg.kv_heads == m.config.kv_heads // 2 and cfg.n_head == m.config.n_head // 2
    assert cfg.head_dim == m.config.head_dim and cfg.n_head * cfg.head_dim == 16
    assert cfg.hidden_dim == 48
    assert (cfg.n_kv_head is None) == (m.config.n_kv_head is None)
    got, ref = logits(small), logits(zeroed_reference(m, plan))
    assert (got - ref).abs().max().item() < 1e-5
    assert (got - logits(m)).abs().max().item() > 1e-2  # the pruning did change the model
    assert small.num_params() < m.num_params()


def test_weight_importance_removes_the_weakest_group_and_channels():
    m = model()
    H, Hkv, D = m.config.n_head, m.config.kv_heads, m.config.head_dim
    with torch.no_grad():
        for block in m.blocks:  # group 1's values and FFN channels 0..15 barely matter
            block.attn.qkv.weight[(H + Hkv) * D + D:(H + Hkv) * D + 2 * D] *= 1e-3
            block.ffn.down.weight[:, :16] *= 1e-3
    plan = structured_plan(m, heads=0.5, ffn=0.25)
    assert plan.kv_groups == [[0], [0]]
    assert all(channels == list(range(16, 64)) for channels in plan.channels)


def test_activation_importance_follows_what_the_data_uses():
    m = model(family="gpt2")
    with torch.no_grad():  # channel j of up gets a large negative bias: after GELU it is ~0 on any input
        for block in m.blocks:
            block.ffn.up.bias[:16] = -50.0
            block.ffn.down.weight[:, :16] *= 10  # the weight score would keep them
    weight = structured_plan(m, ffn=0.25)
    activation = structured_plan(m, ffn=0.25, importance="activation", calibration=IDS)
    assert all(set(range(16)) <= set(c) for c in weight.channels)
    assert all(not set(range(16)) & set(c) for c in activation.channels)


def test_pruned_model_decodes_with_the_kv_cache_as_without():
    small = prune(model(), "structured", heads=0.5, ffn=0.5).eval()
    ids = IDS[:1]
    cache = KVCache(small.config, 1, ids.shape[1])
    with torch.no_grad():
        outs = [small(ids[:, :7], cache=cache)[0]]
        outs += [small(ids[:, t:t + 1], cache=cache)[0] for t in range(7, ids.shape[1])]
    assert (torch.cat(outs, 1) - logits(small, ids)).abs().max().item() < 1e-5


def test_pruned_checkpoint_is_smaller_and_loads(tmp_path):
    m = model()
    small = prune(m, "structured", heads=0.5, ffn=0.5)
    save_checkpoint(tmp_path / "full", m, TOKENIZER)
    save_checkpoint(tmp_path / "small", small, TOKENIZER)
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["head_size"] == 8 and config["n_head"] == 2 and config["ffn_hidden"] == 32
    assert config["extra"]["pruned"] == {"from_heads": 4, "from_kv_heads": 2, "from_ffn_hidden": 64}
    full_bytes = (tmp_path / "full" / WEIGHTS_FILE).stat().st_size
    assert (tmp_path / "small" / WEIGHTS_FILE).stat().st_size < 0.9 * full_bytes
    lm = tinylm.load(tmp_path / "small")  # prepared for inference, as every tool opens it
    assert torch.allclose(logits(lm.model), logits(small), atol=1e-5)
    assert isinstance(lm.generate("to be", max_new_tokens=5, temperature=0.0), str)
    # A pruned model quantizes like any other.
    quantized = quantize(copy.deepcopy(small), "int8")
    assert (logits(quantized) - logits(small)).abs().max().item() < 0.5


def test_old_configs_without_head_size_load_and_head_size_is_validated():
    cfg = ModelConfig.from_dict({"n_embd": 64, "n_head": 4})  # as written before head_size existed
    assert cfg.head_size is None and cfg.head_dim == 16
    assert ModelConfig(n_embd=64, n_head=3, head_size=16).head_dim == 16  # no divisibility needed then
    with pytest.raises(TinyLMError, match="head_size"):
        ModelConfig(head_size=0)
    with pytest.raises(TinyLMError, match="divisible"):
        ModelConfig(n_embd=64, n_head=3)


def test_pruned_llama_equals_hugging_face_and_gpt2_export_refuses():
    pytest.importorskip("transformers")
    from tinylm.interop.hf import from_hf, hf_architecture, to_hf

    small = prune(model(), "structured", heads=0.5, ffn=0.25).eval()
    hf = to_hf(small).eval()
    assert hf.config.head_dim == 8 and hf.config.num_attention_heads == 2
    with torch.no_grad():
        assert (hf(IDS).logits - logits(small)).abs().max().item() < 1e-4
    back = from_hf(hf)
    assert back.config.head_size == 8 and torch.allclose(logits(back), logits(small), atol=1e-5)
    gpt2 = prune(model("gpt2"), "structured", heads=0.5)
    with pytest.raises(TinyLMError, match="head_size"):
        hf_architecture(gpt2.config)


def test_pruned_llama_gguf_declares_its_head_size(tmp_path):
    pytest.importorskip("gguf")
    from tinylm.interop.gguf import export_gguf, read_gguf_metadata, read_gguf_tensors

    small = prune(model(), "structured", heads=0.5, ffn=0.25)
    path = export_gguf(save_checkpoint(tmp_path / "small", small, TOKENIZER), tmp_path / "small.gguf")
    md = read_gguf_metadata(path)
    assert md["llama.attention.head_count"] == 2 and md["llama.attention.head_count_kv"] == 1
    # llama.cpp assumes n_embd / n_head (16 here) unless told the key and value sizes.
    assert md["llama.attention.key_length"] == md["llama.attention.value_length"] == 8
    tensors = read_gguf_tensors(path)
    assert tensors["blk.0.attn_q.weight"][1].shape == (16, 32)
    assert tensors["blk.0.attn_output.weight"][1].shape == (32, 16)
    assert tensors["blk.0.ffn_up.weight"][1].shape == (48, 32)


@pytest.mark.slow  # the ONNX export alone takes about 20 s
def test_pruned_model_runs_in_onnx_runtime(tmp_path):
    pytest.importorskip("onnxruntime")
    from tinylm.interop.onnx import export_onnx, load_onnx

    small = prune(model(), "structured", heads=0.5, ffn=0.25).eval()
    save_checkpoint(tmp_path / "small", small, TOKENIZER)
    export_onnx(tmp_path / "small", tmp_path / "onnx")
    onnx_model = load_onnx(tmp_path / "onnx").model
    assert (onnx_model(IDS)[0] - logits(small)).abs().max().item() < 1e-4


# ----------------------------------------------------------------------------- bad input and the CLI

@pytest.mark.parametrize("amount", [0.0, 1.0, -0.2, 1.5])
def test_amount_outside_zero_one_is_refused(amount):
    with pytest.raises(TinyLMError, match="between 0 and 1"):
        prune(model(), "magnitude", amount=amount)
    with pytest.raises(TinyLMError, match="between 0 and 1"):
        prune(model(), "structured", heads=amount)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="structured", heads=0.8), "remove all 2 key/value head groups"),
    (dict(method="structured", heads=0.1), "removes none"),
    (dict(method="structured", ffn=0.999), "remove all 64 FFN channels"),
    (dict(method="structured"), "needs --heads and/or --ffn"),
    (dict(method="magnitude", amount=0.9999), "every weight"),
    (dict(method="sparse"), "unknown pruning method"),
    (dict(method="magnitude", heads=0.5), "--method structured"),
    (dict(method="structured", amount=0.5), "--method magnitude"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    m = model(n_layer=1, ffn_hidden=64, n_embd=32)
    with pytest.raises(TinyLMError, match=message):
        prune(m, **kwargs)


def test_mlp3_ffn_and_transformed_models_are_refused():
    with pytest.raises(TinyLMError, match="mlp3"):
        prune(model("gpt2", ffn="mlp3"), "structured", ffn=0.5)
    quantized = quantize(model(), "int8")
    with pytest.raises(TinyLMError, match="plain float model"):
        prune(quantized, "magnitude", amount=0.3)


def test_cli_constants_equal_the_modules():
    assert prune_cli.METHODS == prune_module.METHODS
    assert prune_cli.SCOPES == prune_module.SCOPES
    assert prune_cli.IMPORTANCE == prune_module.IMPORTANCE


@pytest.fixture
def ckpt(tmp_path):
    return save_checkpoint(tmp_path / "ck", model(), TOKENIZER)


def run_cli(monkeypatch, *argv) -> int:
    monkeypatch.setattr("sys.argv", ["tinylm", *argv])
    return main(list(argv))


def test_cli_structured_and_magnitude(ckpt, tmp_path, monkeypatch, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    assert run_cli(monkeypatch, "prune", str(ckpt), "--method", "structured", "--heads", "0.5", "--ffn", "0.5",
                   "--out", str(tmp_path / "s"), "--text", str(text)) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and "MiB" in out and "perplexity" in out
    assert run_cli(monkeypatch, "prune", str(ckpt), "--method", "magnitude", "--amount", "0.3", "--json",
                   "--out", str(tmp_path / "m"), "--finetune-steps", "3", "--data", str(text)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters_after"] == report["parameters_before"]
    assert report["bytes_after"] == report["bytes_before"]  # dense storage: no gain
    assert report["sparsity"] == pytest.approx(0.3, abs=0.01) and report["finetune_steps"] == 3
    merged = load_model(tmp_path / "m")
    assert not merged.transforms and sparsity(merged) == pytest.approx(0.3, abs=0.01)
    for folder in ("s", "m"):
        lm = tinylm.load(tmp_path / folder)
        assert isinstance(lm.generate("to be", max_new_tokens=4, temperature=0.0), str)


@pytest.mark.parametrize("argv, message", [
    (["--method", "magnitude", "--amount", "1.2"], "between 0 and 1"),
    (["--method", "structured", "--heads", "0.9"], "remove all"),
    (["--method", "lottery"], "unknown pruning method"),
    (["--method", "magnitude", "--scope", "row"], "scope"),
    (["--method", "magnitude", "--finetune-steps", "2"], "--data"),
])
def test_cli_bad_input_exit_2_and_writes_nothing(ckpt, tmp_path, monkeypatch, capsys, argv, message):
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "prune", str(ckpt), *argv, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_an_existing_out_dir(ckpt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli(monkeypatch, "prune", str(ckpt), "--method", "magnitude", "--out", str(out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_cli_fine_tunes_on_the_runs_own_data_and_checks_on_its_validation_split(tmp_path, monkeypatch, capsys):
    """A checkpoint in a run folder (RUN/best beside RUN/data/): no --data, no --text needed."""
    from tinylm.data import prepare_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 30)
    prepare_corpus([corpus], TOKENIZER, tmp_path / "run" / "data", (0.8, 0.2, 0.0))
    save_checkpoint(tmp_path / "run" / "best", model(), TOKENIZER)
    assert run_cli(monkeypatch, "prune", str(tmp_path / "run" / "best"), "--method", "structured", "--ffn", "0.5",
                   "--finetune-steps", "20", "--json", "--out", str(tmp_path / "p")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["check_text"] == "the run's validation split" and report["finetune_steps"] == 20
    # Twenty steps on the very text it is checked on: the pruned model ends better than the
    # random-weight original it came from.
    assert report["perplexity_after"] < report["perplexity_before"]
