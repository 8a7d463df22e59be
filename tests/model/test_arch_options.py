"""The efficient-architecture options (qk_norm, HybridNorm, CoLA, FAN, CoLA_FAN): shapes,
gradients reaching every parameter, cached decoding equal to the full forward, parameter
counts against the formulas written out by hand, and the defaults building the plain model."""

from __future__ import annotations

import pytest
import torch

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.generation import Engine, GenerationConfig, LogitsProcessor
from tinylm.model import GPT
from tinylm.model.cola import CoLALinear

BASE = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, n_embd=32, position="rope", norm="rmsnorm",
            ffn="swiglu", bias=False)
OPTIONS = {
    "qk_norm": dict(qk_norm=True),
    "hybrid": dict(norm_placement="hybrid"),
    "cola-attn": dict(cola_targets=["attn"]),
    "cola-ffn": dict(cola_targets=["ffn"], cola_rank=4),
    "cola-both": dict(cola_targets=["attn", "ffn"]),
    "fan": dict(fan_input="fan"),
    "cola-fan": dict(fan_input="cola_fan", cola_targets=["attn", "ffn"]),
    "all": dict(fan_input="cola_fan", cola_targets=["attn", "ffn"], norm_placement="hybrid"),
    "gpt2-qk_norm": dict(qk_norm=True, position="learned", norm="layernorm", ffn="gelu", bias=True),
    "gpt2-hybrid-cola": dict(norm_placement="hybrid", position="learned", norm="layernorm", ffn="gelu", bias=True,
                             cola_targets=["ffn"]),
}


def build(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(**{**BASE, **overrides}))


@pytest.mark.parametrize("name", OPTIONS)
def test_shapes_and_every_parameter_gets_a_gradient(name):
    model = build(**OPTIONS[name])
    idx = torch.randint(0, 61, (3, 17))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 17, 61)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


class Recorder(LogitsProcessor):
    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, logits, rows, generated):
        self.seen.append(logits[0].clone())


@pytest.mark.parametrize("name", OPTIONS)
def test_cached_decoding_equals_the_full_forward(name):
    model = build(seed=1, **OPTIONS[name]).eval()
    with torch.no_grad():  # untrained weights at 0.02 give near-uniform logits: make them informative
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    prompt = [3, 14, 15, 9, 26]
    recorder = Recorder()
    (result,) = Engine(model).generate([prompt], GenerationConfig(temperature=0, max_new_tokens=10), recorder)
    with torch.no_grad():
        full, _ = model(torch.tensor([prompt + result.token_ids]))
    assert len(recorder.seen) == len(result.token_ids) == 10
    for t, cached in enumerate(recorder.seen):
        torch.testing.assert_close(cached, full[0, len(prompt) - 1 + t], atol=1e-4, rtol=1e-4)


def _expected_params(cfg: ModelConfig) -> int:
    """The parameter count from the formulas of docs/architectures.md (RMSNorm, no biases)."""
    d, V, L, D, H, Hkv, h = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.head_dim, cfg.n_head, cfg.kv_heads, cfg.hidden_dim
    r = cfg.cola_r

    def linear(target: str, d_in: int, d_out: int) -> int:
        return r * (d_in + d_out) if target in cfg.cola_targets else d_in * d_out

    per_block = linear("attn", d, (H + 2 * Hkv) * D) + linear("attn", d, d) + 3 * linear("ffn", d, h)
    p_dim = int(d * cfg.fan_p)
    rest = d - 2 * p_dim
    if cfg.fan_input == "fan":
        per_block += d * p_dim + d * rest + rest  # W_p, W_b and its bias
    elif cfg.fan_input == "cola_fan":
        per_block += r * (d + p_dim) + r * (d + rest)
    norms = 0
    for layer in range(L):
        hybrid_inner = cfg.norm_placement == "hybrid" and layer > 0
        norms += d * (1 if hybrid_inner else 2)  # a hybrid block past the first has no input norm
        if cfg.norm_placement == "hybrid":
            norms += 3 * D  # q, k, v norms
        elif cfg.qk_norm:
            norms += 2 * D
    return V * d + L * per_block + norms + d  # tied head; + the final norm


@pytest.mark.parametrize("name", ["qk_norm", "hybrid", "cola-attn", "cola-ffn", "cola-both", "fan", "cola-fan", "all"])
def test_parameter_count_matches_the_formulas(name):
    model = build(**OPTIONS[name])
    assert model.num_params() == _expected_params(model.config)


def test_cola_linear_is_b_gelu_a():
    layer = CoLALinear(8, 6, 2, bias=True)
    x = torch.randn(5, 8)
    expected = torch.nn.functional.gelu(x @ layer.A.weight.T) @ layer.B.weight.T + layer.B.bias
    torch.testing.assert_close(layer(x), expected)
    assert sum(p.numel() for p in layer.parameters()) == 2 * (8 + 6) + 6


def test_fan_output_is_cos_sin_and_gelu():
    model = build(fan_input="fan")
    fan = model.blocks[0].attn.fan
    x = torch.randn(2, 3, 32)
    p = x @ fan.periodic.weight.T
    expected = torch.cat([p.cos(), p.sin(), torch.nn.functional.gelu(fan.other(x))], dim=-1)
    torch.testing.assert_close(fan(x), expected)
    assert fan(x).shape == (2, 3, 32) and fan.periodic.out_features == int(32 * 0.15)


def test_qk_norm_bounds_the_attention_logits():
    """With qk_norm the q and k each head sees have RMS 1 (unit norm weights), whatever the input scale."""
    model = build(qk_norm=True, position="learned")
    attn = model.blocks[0].attn
    seen = {}
    attn.q_norm.register_forward_hook(lambda m, i, o: seen.setdefault("q", o))
    attn(torch.randn(1, 4, 32) * 1000, None, None, None)
    rms = seen["q"].pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=1e-3)


def test_defaults_build_the_plain_model_bit_identically():
    """A config without the new fields (an old checkpoint's) gives the same weights and logits
    as one that names their defaults: nothing extra is created or drawn from the RNG."""
    old = build(seed=3)
    new = build(seed=3, qk_norm=False, cola_targets=[], cola_rank=None, fan_input="none", fan_p=0.15)
    assert list(old.state_dict()) == list(new.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    assert ModelConfig(**BASE).extensions() == []


@pytest.mark.parametrize("bad, words", [
    (dict(cola_targets=["attn"], cola_rank=32), "below n_embd"),
    (dict(cola_targets=["attn"], cola_rank=0), "below n_embd"),
    (dict(cola_rank=4), "nothing uses it"),
    (dict(cola_targets=["mlp"]), "cola_targets"),
    (dict(cola_targets=["ffn", "ffn"]), "cola_targets"),
    (dict(norm_placement="hybrid", qk_norm=True), "redundant"),
    (dict(fan_input="fourier"), "fan_input"),
    (dict(fan_input="fan", fan_p=0.5), "fan_p"),
    (dict(fan_input="fan", fan_p=0.01), "no periodic features"),
    (dict(norm_placement="middle"), "norm_placement"),
])
def test_incompatible_options_are_one_line_errors(bad, words):
    with pytest.raises(TinyLMError, match=words) as e:
        ModelConfig(**{**BASE, **bad})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["qk_norm", "hybrid", "cola-both", "fan", "cola-fan"])
def test_exporters_refuse_what_their_formats_cannot_express(tmp_path, name):
    """Hugging Face, ONNX and GGUF have no such layers: one line naming the option, no file written."""
    pytest.importorskip("transformers")
    from tinylm.checkpoint import save_checkpoint
    from tinylm.interop.gguf import export_gguf
    from tinylm.interop.hf import export_hf
    from tinylm.interop.onnx import export_onnx
    from tinylm.tokenizers import train_tokenizer

    tok = train_tokenizer("char", ["the quick brown fox jumps over the lazy dog\n" * 3])
    model = build(**{**OPTIONS[name], "vocab_size": tok.vocab_size})
    ckpt = save_checkpoint(tmp_path / "ckpt", model, tok)
    option = "hybrid" if name == "hybrid" else next(iter(OPTIONS[name]))
    for export, out in ((export_hf, "hf"), (export_onnx, "onnx"), (export_gguf, "m.gguf")):
        with pytest.raises(TinyLMError, match=option) as e:
            export(ckpt, tmp_path / out)
        assert "\n" not in str(e.value) and not (tmp_path / out).exists()


def test_a_checkpoint_saved_before_these_options_loads_as_the_plain_model():
    from pathlib import Path

    from tinylm.checkpoint import load_model
    from tinylm.model.attention import CausalSelfAttention

    legacy = Path(__file__).parents[1] / "legacy_checkpoints" / "code2-line-model"
    model = load_model(legacy)  # strict: every stored weight has a place, and no new one is missing
    assert model.config.extensions() == []
    attn = next(m for m in model.modules() if isinstance(m, CausalSelfAttention))
    assert attn.fan is None and attn.q_norm is None and type(attn.qkv) is torch.nn.Linear
