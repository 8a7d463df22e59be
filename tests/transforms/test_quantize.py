"""Quantization transforms: int8, int4 (group-wise) and dynamic int8.

References, all independent of the code under test:
- each layer's output against the float layer, within the bound its quantization step gives
  (weight rounding moves each weight by at most half a step: |y_q - y| <= sum_i |x_i| * step / 2);
- the whole model's logits against a plain float GPT holding weights dequantized by this
  file's own quantizer (a second implementation of the formulas in docs/compression.md);
- save/load, the KV cache and prepare_for_inference as properties (same logits).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

import tinylm
from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.cli.main import main
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT, KVCache
from tinylm.tokenizers import CharTokenizer
from tinylm.transforms import merge_all, prepare_for_inference, quantize
from tinylm.transforms.inference import PreparedLinear
from tinylm.transforms.quantize import (
    METHODS,
    DynamicInt8Linear,
    Int4Linear,
    Int8Linear,
    QuantizedEmbedding,
    TiedQuantizedHead,
    pack_int4,
    quantize_checkpoint,
    unpack_int4,
)

TEXT = "to be or not to be, that is the question; whether 'tis nobler in the mind to suffer.\n" * 8
TOKENIZER = CharTokenizer.train([TEXT])
V = TOKENIZER.vocab_size

# (method, settings) for every variant; weight-only ones have an exact dequantized reference.
VARIANTS = [
    ("int8", {}), ("int8", {"asymmetric": True}),
    ("int4", {"group_size": 32}), ("int4", {"group_size": 64, "asymmetric": True}), ("int4", {"group_size": 128}),
    ("dynamic-int8", {}),
]
IDS = [f"{m}-{'-'.join(f'{k}={v}' for k, v in s.items())}" for m, s in VARIANTS]


@pytest.fixture(params=["kernel", "torch"])
def path(request, monkeypatch):
    """Run a test on tinylm's C++ kernels (when they build here) and on torch's fallback ops."""
    import importlib

    q = importlib.import_module("tinylm.transforms.quantize")  # the module; the package exports a function of its name
    if request.param == "torch":
        monkeypatch.setattr(q, "kernels", lambda: None)
    elif q.kernels() is None:
        pytest.skip("tinylm's quantized kernels cannot be built here")
    return request.param


def config(**kw) -> ModelConfig:
    return ModelConfig(**{"vocab_size": V, "block_size": 64, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 128,
                          "ffn_hidden": 256, "position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "bias": False,
                          "tie_weights": True, **kw})


def model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(config(**kw)).eval()


# ----------------------------------------------------------------------------- reference quantizer

def reference_dequantize(w: torch.Tensor, bits: int, group: int, asymmetric: bool) -> torch.Tensor:
    """The formulas, one group at a time, written plainly (float64)."""
    out = torch.empty_like(w, dtype=torch.float64)
    for r in range(w.shape[0]):
        for c in range(0, w.shape[1], group):
            g = w[r, c:c + group].double()
            if asymmetric:
                levels = 2 ** bits - 1
                lo, hi = min(g.min().item(), 0.0), max(g.max().item(), 0.0)
                scale = (hi - lo) / levels
                qmin = -128 if bits == 8 else 0
                zero = min(max(round(-lo / scale) + qmin, qmin), qmin + levels)
                q = (g / scale).round() + zero
                out[r, c:c + group] = (q.clamp(qmin, qmin + levels) - zero) * scale
            else:
                qmax = 127 if bits == 8 else 7
                scale = g.abs().max().item() / qmax
                out[r, c:c + group] = (g / scale).round().clamp(-qmax, qmax) * scale
    return out.float()


def reference_model(float_model: GPT, method: str, settings: dict) -> GPT:
    """A plain GPT whose block linears and (tied) embedding hold reference-dequantized weights."""
    bits, group = (8, None) if method == "int8" else (4, settings["group_size"])
    ref = copy.deepcopy(float_model)
    with torch.no_grad():
        for name, m in ref.named_modules():
            if (type(m) is nn.Linear and name != "lm_head") or type(m) is nn.Embedding:
                w = m.weight
                w.copy_(reference_dequantize(w, bits, group or w.shape[1], settings.get("asymmetric", False)))
    return ref


@pytest.mark.parametrize(("method", "settings"), [v for v in VARIANTS if v[0] != "dynamic-int8"],
                         ids=[i for i, v in zip(IDS, VARIANTS) if v[0] != "dynamic-int8"])
@torch.inference_mode()
def test_weight_only_logits_equal_reference_dequantized_model(method, settings, path):
    base = model()
    ref = reference_model(base, method, settings)
    q = quantize(copy.deepcopy(base), method, **settings)
    for idx in (torch.randint(0, V, (2, 5)), torch.randint(0, V, (3, 40))):  # few rows (kernel), many rows
        got = q(idx)[0]
        torch.testing.assert_close(got, ref(idx)[0], atol=1e-4, rtol=1e-4)
        # and it is not the float model: the quantization really happened
        assert (got - base(idx)[0]).abs().max() > 1e-4


def _layer_bound(layer: nn.Module, x: torch.Tensor, float_weight: torch.Tensor) -> torch.Tensor:
    """Largest |y_q - y| the quantization step allows, per output (float32 slack added)."""
    if isinstance(layer, Int4Linear):
        step = layer.scale.repeat_interleave(layer.group_size, dim=1)  # (out, in)
    else:
        step = layer.scale[:, None].expand_as(float_weight)
    bound = x.abs() @ (step / 2).T
    if isinstance(layer, DynamicInt8Linear):
        # fbgemm quantizes x to 7 bits over [min(x, 0), max(x, 0)]: half a step on each input too
        x_step = (x.max().clamp(min=0) - x.min().clamp(max=0)) / 127
        bound = bound + x_step / 2 * layer.dequantized().abs().sum(1)
    return bound * 1.001 + 1e-5


@pytest.mark.parametrize(("method", "settings"), VARIANTS, ids=IDS)
@torch.inference_mode()
def test_each_layer_within_its_quantization_step(method, settings, path):
    torch.manual_seed(1)
    linear = nn.Linear(128, 96, bias=True)
    with torch.no_grad():
        linear.weight.mul_(1 + 3 * torch.rand(96, 1))  # rows of different ranges
        linear.weight[:, 5] = 0.9  # an outlier column
    q = {"int8": Int8Linear, "int4": Int4Linear, "dynamic-int8": DynamicInt8Linear}[method]
    layer = q(linear.weight, linear.bias, **settings)
    for x in (torch.randn(7, 128), torch.randn(2, 20, 128)):  # decode rows, prompt rows
        err = (layer(x) - linear(x)).abs()
        assert (err <= _layer_bound(layer, x.reshape(-1, 128), linear.weight).view_as(err)).all()
        assert err.max() > 0  # not a float layer


def test_int4_pack_unpack_round_trip():
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, 16, (5, 64), generator=g, dtype=torch.uint8)
    packed = pack_int4(u)
    assert packed.shape == (5, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), u)
    assert int(packed[0, 0]) == int(u[0, 0]) + 16 * int(u[0, 1])  # low nibble first


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize(("method", "settings"), VARIANTS, ids=IDS)
@torch.inference_mode()
def test_save_load_round_trip_gives_identical_logits(tmp_path, method, settings):
    q = quantize(model(), method, **settings)
    idx = torch.randint(0, V, (2, 30))
    expected = q(idx)[0]
    save_checkpoint(tmp_path / "q", q, TOKENIZER)
    recorded = json.loads((tmp_path / "q" / "config.json").read_text())["transforms"]
    assert recorded == [METHODS[method](**settings).to_config()]
    loaded = load_model(tmp_path / "q")
    assert torch.equal(loaded(idx)[0], expected)
    lm = tinylm.load(tmp_path / "q")  # prepared: the float head takes the prepared path
    torch.testing.assert_close(lm.model(idx)[0], expected, atol=1e-5, rtol=1e-5)
    assert lm.generate("to be", max_new_tokens=5, temperature=0) == lm.generate("to be", max_new_tokens=5, temperature=0)


def _linear_bytes(path) -> int:
    """Bytes of the block linear layers' tensors in a model.safetensors."""
    total = 0
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        for key in f.keys():
            if ".attn." in key or ".ffn." in key:
                t = f.get_tensor(key)
                total += t.numel() * t.element_size()
    return total


@pytest.mark.parametrize(("method", "settings", "ratio"), [
    ("int8", {}, 3.5), ("dynamic-int8", {}, 3.5), ("int4", {"group_size": 32}, 6.0), ("int4", {"group_size": 128}, 6.0)])
def test_file_really_shrinks(tmp_path, method, settings, ratio):
    save_checkpoint(tmp_path / "f", model(), TOKENIZER)
    save_checkpoint(tmp_path / "q", quantize(model(), method, **settings), TOKENIZER)
    assert _linear_bytes(tmp_path / "f") >= ratio * _linear_bytes(tmp_path / "q")
    assert (tmp_path / "q" / "model.safetensors").stat().st_size < (tmp_path / "f" / "model.safetensors").stat().st_size


@pytest.mark.parametrize(("method", "settings"), VARIANTS, ids=IDS)
@torch.inference_mode()
def test_kv_cache_gives_the_logits_of_a_full_forward(method, settings, path):
    q = quantize(model(), method, **settings)
    seq = torch.randint(0, V, (2, 12))
    full = q(seq)[0]
    cache = KVCache(q.config, batch_size=2, max_len=12)
    steps = [q(seq[:, :5], cache=cache)[0]] + [q(seq[:, t:t + 1], cache=cache)[0] for t in range(5, 12)]
    tol = 1e-4 if method != "dynamic-int8" else 0.05  # dynamic: each call quantizes its own activations' range
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=tol, rtol=0)


@torch.inference_mode()
def test_embedding_and_head_options():
    q = quantize(model(), "int8")  # default: the embedding, and the tied head with it
    assert isinstance(q.tok_emb, QuantizedEmbedding) and isinstance(q.lm_head, TiedQuantizedHead)
    assert q.lm_head.embedding is q.tok_emb and not any(k.startswith("lm_head") for k in q.state_dict())
    q = quantize(model(), "int8", embedding=False)
    assert type(q.tok_emb) is nn.Embedding and type(q.lm_head) is nn.Linear
    q = quantize(model(tie_weights=False), "int4", head=True)
    assert isinstance(q.tok_emb, QuantizedEmbedding) and isinstance(q.lm_head, Int4Linear)
    assert type(quantize(model(tie_weights=False), "int8").lm_head) is nn.Linear


@pytest.mark.parametrize("settings", [{"tie_weights": False}, {"tie_weights": True}])
@torch.inference_mode()
def test_untied_and_float_embedding_variants_round_trip(tmp_path, settings):
    for options in ({"head": True}, {"embedding": False}):
        q = quantize(model(**settings), "int4", group_size=32, **options)
        idx = torch.randint(0, V, (1, 7))
        save_checkpoint(tmp_path / "q", q, TOKENIZER)
        assert torch.equal(load_model(tmp_path / "q")(idx)[0], q(idx)[0])


# ----------------------------------------------------------------------------- composition

@pytest.mark.parametrize(("method", "settings"), VARIANTS, ids=IDS)
@torch.inference_mode()
def test_prepare_for_inference_after_quantize_keeps_the_quantized_layers(method, settings):
    q = quantize(model(), method, **settings)
    idx = torch.randint(0, V, (1, 9))
    expected = q(idx)[0]
    prepare_for_inference(q)
    assert [t.name for t in q.transforms] == [method, "prepare_for_inference"]
    assert type(q.blocks[0].ffn).__name__ == "SwiGLU"  # its quantized gate and up are not stacked into floats
    assert not isinstance(q.blocks[0].attn.qkv, PreparedLinear)
    assert isinstance(q.lm_head, TiedQuantizedHead)  # not replaced by a float layout
    torch.testing.assert_close(q(idx)[0], expected, atol=1e-5, rtol=1e-5)


def test_quantizing_a_prepared_or_quantized_model_is_refused():
    with pytest.raises(TinyLMError, match="before other transforms"):
        quantize(prepare_for_inference(model()), "int8")
    with pytest.raises(TinyLMError, match="already quantized"):
        quantize(quantize(model(), "int8"), "int4")


@pytest.mark.parametrize("method", ["int8", "dynamic-int8"])
@torch.inference_mode()
def test_quantized_model_copies_but_cannot_be_merged_for_export(method):
    q = quantize(model(), method)
    twin = copy.deepcopy(q)  # export-hf merges on a copy: copying must work (fbgemm's packed weight too)
    idx = torch.randint(0, V, (1, 6))
    assert torch.equal(twin(idx)[0], q(idx)[0]) and twin.lm_head.embedding is twin.tok_emb
    with pytest.raises(TinyLMError, match=f"{method} cannot be merged"):
        merge_all(twin)


@pytest.mark.parametrize(("method", "settings", "message"), [
    ("int3", {}, "unknown quantization method"),
    ("int4", {"group_size": 48}, "group size must be one of"),
    ("int8", {"group_size": 32}, "applies to int4 only"),
    ("dynamic-int8", {"asymmetric": True}, "symmetric only"),
])
def test_bad_settings_are_one_line_errors(method, settings, message):
    with pytest.raises(TinyLMError, match=message):
        quantize(model(), method, **settings)


def test_group_size_that_does_not_divide_is_refused_before_changing_the_model():
    m = model(n_embd=96, ffn_hidden=192, n_head=4)
    with pytest.raises(TinyLMError, match="does not divide"):
        quantize(m, "int4", group_size=64)
    assert not m.transforms and all(type(x) is not Int4Linear for x in m.modules())


# ----------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("c") / "float", model(), TOKENIZER)


def test_cli_quantize_writes_a_checkpoint_that_loads(ckpt, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    assert main(["quantize", str(ckpt), "--method", "int4", "--group-size", "64", "--out", str(tmp_path / "q"),
                 "--text", str(text)]) == 0
    out = capsys.readouterr().out
    assert "MiB ->" in out and "perplexity" in out
    lm = tinylm.load(tmp_path / "q")
    assert isinstance(lm.model.blocks[0].attn.qkv, Int4Linear)
    info, float_info = lm.info(), tinylm.load(ckpt).info()  # counts the weights the integers stand for
    assert info["parameters"] == float_info["parameters"] and info["transforms"][0]["name"] == "int4"
    assert info["weight_bytes"] * 5 < float_info["weight_bytes"]
    assert main(["info", str(tmp_path / "q")]) == 0
    report = quantize_checkpoint(ckpt, tmp_path / "q8", "int8")
    assert report.bytes_after < report.bytes_before and report.top1_agreement > 0.9
    assert abs(report.perplexity_after / report.perplexity_before - 1) < 0.05


def test_cli_refuses_bad_input_and_writes_nothing(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["quantize", str(ckpt), "--method", "int5", "--out", str(out)]) == 2
    assert main(["quantize", str(ckpt), "--method", "int4", "--group-size", "100", "--out", str(out)]) == 2
    assert main(["quantize", str(tmp_path / "missing"), "--method", "int8", "--out", str(out)]) == 2
    assert not out.exists()
    quantize_checkpoint(ckpt, tmp_path / "q", "int8")
    assert main(["quantize", str(tmp_path / "q"), "--method", "int4", "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("tinylm: error: ") for line in err)
    assert "already quantized" in err[-1]


def test_tampered_quantized_checkpoint_is_refused(ckpt, tmp_path):
    q = tmp_path / "q"
    quantize_checkpoint(ckpt, q, "int8")
    cfg = json.loads((q / "config.json").read_text())
    cfg["transforms"] = [{"name": "int4", "group_size": 32, "asymmetric": False, "head": False}]
    (q / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TinyLMError, match="do not match"):
        load_model(q)
    data = (q / "model.safetensors").read_bytes()
    (q / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(TinyLMError, match="cannot read"):
        load_model(q)


@torch.inference_mode()
def test_prepare_for_inference_prepares_a_float_head_left_by_quantize():
    q = quantize(model(), "int8", embedding=False)
    idx = torch.randint(0, V, (1, 9))
    expected = q(idx)[0]
    prepare_for_inference(q)
    assert isinstance(q.lm_head, PreparedLinear) and isinstance(q.blocks[0].ffn.gate, Int8Linear)
    torch.testing.assert_close(q(idx)[0], expected, atol=1e-5, rtol=1e-5)


def test_server_answers_from_a_quantized_checkpoint(ckpt, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from tinylm.serve import create_app

    quantize_checkpoint(ckpt, tmp_path / "q", "int4")
    lm = tinylm.load(tmp_path / "q")
    expected = lm.generate("to be", max_new_tokens=6, temperature=0)
    with TestClient(create_app(lm)) as client:  # the server's continuous batching over quantized layers
        r = client.post("/v1/completions", json={"prompt": "to be", "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == expected


def test_the_cli_names_the_methods_and_group_sizes_there_are():
    import importlib

    from tinylm.cli import quantize as cli_quantize

    q = importlib.import_module("tinylm.transforms.quantize")
    assert tuple(q.METHODS) == cli_quantize.METHODS and tuple(q.GROUP_SIZES) == cli_quantize.GROUP_SIZES
