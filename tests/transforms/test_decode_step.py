"""The fused C++ decode step against the PyTorch model (the reference) on tiny models."""

from __future__ import annotations

import copy

import pytest
import torch

from tinylm.config import ModelConfig
from tinylm.generation import Engine, GenerationConfig
from tinylm.generation.continuous import ContinuousBatch
from tinylm.model import GPT, KVCache
from tinylm.transforms import prepare_for_inference, quantize
from tinylm.transforms.decode_step import fused_decode_step
from tinylm.transforms.kernels import decode_kernels

pytestmark = pytest.mark.skipif(decode_kernels() is None, reason="tinylm's kernels cannot be built here")

V = 97


def config(**kw) -> ModelConfig:
    # Odd sizes (head_dim 10, hidden 72, vocab 97): every loop's vector tail runs too.
    return ModelConfig(**{"vocab_size": V, "block_size": 40, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 40,
                          "ffn_hidden": 72, "position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "bias": False,
                          "tie_weights": True, **kw})


def model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(config(**kw)).eval()


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


VARIANTS = {
    "fp32": ({}, None, 1e-5),
    "fp32-untied-mha": ({"tie_weights": False, "n_kv_head": 4}, None, 1e-5),
    "int8": ({}, {"method": "int8"}, 1e-4),  # the tolerance tests/transforms/test_quantize.py uses for int8
    "int8-float-embedding": ({"tie_weights": False}, {"method": "int8", "embedding": False, "head": True}, 1e-4),
}


@pytest.mark.parametrize("variant", VARIANTS)
@torch.inference_mode()
def test_fused_steps_give_the_reference_logits_and_cache(variant, threads):
    kw, quant, tol = VARIANTS[variant]
    reference = model(**kw)
    if quant:
        quantize(reference, **quant)
    fused_model = prepare_for_inference(copy.deepcopy(reference))
    fused = fused_decode_step(fused_model)
    assert fused is not None
    prompt = torch.randint(0, V, (1, 7))
    ours, theirs = KVCache(reference.config, 1, 30), KVCache(reference.config, 1, 30)
    logits = reference(prompt, cache=theirs, last_only=True)[0][:, -1]
    fused_model(prompt, cache=ours, last_only=True)
    for _ in range(20):
        token = int(logits.argmax())
        logits = reference(torch.tensor([[token]]), cache=theirs, last_only=True)[0][:, -1]
        torch.testing.assert_close(fused.step(token, ours), logits, atol=tol, rtol=0)
    assert ours.length == theirs.length == 27
    torch.testing.assert_close(ours.k, theirs.k, atol=tol, rtol=0)
    torch.testing.assert_close(ours.v, theirs.v, atol=tol, rtol=0)


def test_the_engine_gives_the_reference_tokens_and_uses_the_fused_step(monkeypatch):
    reference = model(1)
    prepared = prepare_for_inference(copy.deepcopy(reference))
    config = GenerationConfig(max_new_tokens=25, temperature=0.0)
    prompt = [[3, 1, 4, 1, 5, 9, 2, 6]]
    expected = Engine(reference).generate(prompt, config)[0].token_ids
    steps = []
    original = ContinuousBatch.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        assert self._fused is not None
        step = self._fused.step
        self._fused.step = lambda *a: steps.append(1) or step(*a)

    monkeypatch.setattr(ContinuousBatch, "__init__", spy)
    assert Engine(prepared).generate(prompt, config)[0].token_ids == expected
    assert len(steps) == 24  # every step after the prefill; the last token is drawn, not fed back
    # Two rows run the PyTorch model (the fused step is for one row); the tokens agree all the same.
    both = Engine(prepared).generate(prompt * 2, config)
    assert [r.token_ids for r in both] == [expected, expected]
    assert len(steps) == 24


def test_the_context_limit_holds():
    prepared = prepare_for_inference(model())
    fused = fused_decode_step(prepared)
    cache = KVCache(prepared.config, 1, prepared.config.block_size)
    with torch.inference_mode():
        prepared(torch.zeros(1, prepared.config.block_size, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="exceeds the context"):
            fused.step(0, cache)


@pytest.mark.parametrize("case", ["not prepared", "gpt2-style", "int4", "int8 asymmetric"])
def test_models_it_does_not_cover_run_the_pytorch_model(case):
    if case == "gpt2-style":
        m = prepare_for_inference(model(position="learned", norm="layernorm", ffn="gelu", bias=True))
    elif case == "int4":
        m = prepare_for_inference(quantize(model(n_embd=64, ffn_hidden=64), "int4", group_size=32))
    elif case == "int8 asymmetric":
        m = prepare_for_inference(quantize(model(), "int8", asymmetric=True))
    else:
        m = model()
    assert fused_decode_step(m) is None


@pytest.mark.parametrize("options", [{"qk_norm": True}, {"fan_input": "fan"}, {"cola_targets": ["attn"]},
                                     {"head_size": 8}], ids=["qk-norm", "fan", "cola", "narrow-heads"])
def test_layers_the_step_does_not_compute_run_the_pytorch_model(options):
    # The C++ step would skip these layers and give other logits: the engine must not use it.
    m = prepare_for_inference(model(**options))
    assert fused_decode_step(m) is None
    prompt = [[1, 2, 3]]
    config = GenerationConfig(max_new_tokens=5, temperature=0)
    with torch.inference_mode():
        expected = int(m(torch.tensor(prompt))[0][0, -1].argmax())
    assert Engine(m).generate(prompt, config)[0].token_ids[0] == expected
