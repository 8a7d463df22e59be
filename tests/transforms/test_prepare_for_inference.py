"""prepare_for_inference must compute the plain model's numbers, and leave no trace once undone.

The reference is the same model before the transform (plain nn.Linear layers): logits with and
without the KV cache, for every architecture option, at the row counts that pick each layout
(1 row, a few rows, many rows).
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import tinylm
from tinylm.checkpoint import load_model, model_state, save_checkpoint
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT, KVCache
from tinylm.tokenizers import CharTokenizer
from tinylm.transforms import PrepareForInference, prepare_for_inference, prepared_for_inference
from tinylm.transforms.inference import SMALL_ROWS, PreparedLinear, PreparedSwiGLU

V = 53


def config(**kw) -> ModelConfig:
    return ModelConfig(**{"vocab_size": V, "block_size": 48, "n_layer": 2, "n_head": 4, "n_embd": 32, **kw})


def randomized(model: GPT, seed: int = 0) -> GPT:
    """Random values everywhere (biases and norm scales too), so no tensor can be ignored unseen."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g) + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


# Every option the model has: positions x ffn x attention heads, with norms, tying, biases,
# norm placement and the attention kernel varied along.
OPTIONS = [
    dict(position=pos, ffn=ffn, n_kv_head=kv, norm=["layernorm", "rmsnorm"][i % 2], tie_weights=i % 3 != 0,
         bias=i % 4 != 1, norm_placement="post" if i % 5 == 4 else "pre", attention=["sdpa", "explicit"][i % 7 == 3])
    for i, (pos, ffn, kv) in enumerate(itertools.product(
        ["learned", "sinusoidal", "rope"], ["gelu", "relu", "swiglu", "mlp3"], [None, 2, 1]))
]


def _decode(model: GPT, prompts: torch.Tensor, steps: torch.Tensor) -> list[torch.Tensor]:
    """Logits of a prefill, then of one decode step per column of `steps`, through the KV cache."""
    cache = KVCache(model.config, batch_size=prompts.shape[0], max_len=prompts.shape[1] + steps.shape[1])
    out = [model(prompts, cache=cache)[0]]
    for t in range(steps.shape[1]):
        out.append(model(steps[:, t : t + 1], cache=cache)[0])
    return out


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
@torch.inference_mode()
def test_prepared_logits_equal_plain_logits(options):
    torch.manual_seed(0)
    model = randomized(GPT(config(**options)))
    batches = {rows: torch.randint(0, V, (rows, 1)) for rows in (1, 3, SMALL_ROWS, SMALL_ROWS + 4)}
    whole = torch.randint(0, V, (2, 30))
    prompts, steps = {}, {}
    for batch in (1, 3):
        prompts[batch], steps[batch] = torch.randint(0, V, (batch, 5)), torch.randint(0, V, (batch, 6))
    plain = {rows: model(idx)[0] for rows, idx in batches.items()}
    plain_whole = model(whole)[0]
    plain_cached = {b: _decode(model, prompts[b], steps[b]) for b in prompts}

    prepare_for_inference(model)
    # The transform really swapped the layers: no plain nn.Linear is left to compute anything.
    computing = [m for name, m in model.named_modules() if not name.endswith(("ffn.gate", "ffn.up"))]
    assert not any(type(m) is nn.Linear for m in computing)
    assert sum(type(m) is PreparedLinear for m in computing) >= 2 * 2 + 1

    for rows, idx in batches.items():
        torch.testing.assert_close(model(idx)[0], plain[rows], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(whole)[0], plain_whole, atol=1e-5, rtol=1e-5)
    for b in prompts:
        for got, want in zip(_decode(model, prompts[b], steps[b]), plain_cached[b]):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 5, SMALL_ROWS, SMALL_ROWS + 1, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_every_layout_matches_linear(rows: int, bias: bool) -> None:
    torch.manual_seed(0)
    gate, up = nn.Linear(48, 70, bias=bias), nn.Linear(48, 70, bias=bias)  # 140 outputs: not whole blocks
    x = torch.randn(rows, 1, 48)
    expected = torch.cat([F.linear(x, gate.weight, gate.bias), F.linear(x, up.weight, up.bias)], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(PreparedLinear.stacking(gate, up)(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(PreparedLinear.stacking(gate)(x), expected[..., :70], atol=1e-5, rtol=1e-5)


def test_undo_restores_the_exact_modules_and_parameters():
    torch.manual_seed(1)
    model = randomized(GPT(config(position="rope", ffn="swiglu", n_kv_head=2, tie_weights=True)))
    modules, buffers = dict(model.named_modules()), dict(model.named_buffers())
    params = dict(model.named_parameters(remove_duplicate=False))
    values = {name: p.detach().clone() for name, p in params.items()}
    transform = PrepareForInference()
    transform.apply(model)
    assert model.transforms == [transform] and isinstance(model.blocks[0].ffn, PreparedSwiGLU)
    # Prepared modules hold the very parameters (a tied head stays tied to the embedding).
    assert dict(model.named_parameters(remove_duplicate=False)).keys() == params.keys()
    assert all(p is params[name] for name, p in model.named_parameters(remove_duplicate=False))
    transform.undo(model)
    assert model.transforms == []
    after = dict(model.named_modules())
    assert after.keys() == modules.keys() and all(after[name] is m for name, m in modules.items())
    assert all(p is params[name] for name, p in model.named_parameters(remove_duplicate=False))
    assert all(torch.equal(p, values[name]) for name, p in model.named_parameters(remove_duplicate=False))
    assert model.lm_head.weight is model.tok_emb.weight
    assert dict(model.named_buffers()) == buffers  # the layouts went with the prepared modules


def test_training_after_undo_works_and_a_prepared_model_refuses_to_train():
    torch.manual_seed(2)
    model = GPT(config(ffn="swiglu", position="rope"))
    prepare_for_inference(model)
    with pytest.raises(TinyLMError, match="prepared for inference"):
        model.train()
    model.transforms[0].undo(model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    idx = torch.randint(0, V, (4, 16))
    losses = []
    for _ in range(5):
        _, loss = model(idx, idx)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_context_manager_prepares_then_gives_back_the_training_model():
    torch.manual_seed(3)
    model = GPT(config(ffn="swiglu")).train()
    qkv = model.blocks[0].attn.qkv
    with prepared_for_inference(model) as prepared:
        assert prepared is model and not model.training
        assert isinstance(model.blocks[0].attn.qkv, PreparedLinear)
    assert model.training and model.transforms == [] and model.blocks[0].attn.qkv is qkv
    with pytest.raises(RuntimeError, match="boom"), prepared_for_inference(model):
        raise RuntimeError("boom")
    assert model.training and model.transforms == [] and model.blocks[0].attn.qkv is qkv


@torch.inference_mode()
def test_loading_weights_into_a_prepared_model_rebuilds_its_layouts():
    torch.manual_seed(4)
    model = prepare_for_inference(GPT(config(ffn="swiglu", bias=True)))
    other = randomized(GPT(config(ffn="swiglu", bias=True)), seed=9)
    model.load_state_dict(other.state_dict())
    idx = torch.randint(0, V, (3, 1))
    torch.testing.assert_close(model(idx)[0], other(idx)[0], atol=1e-5, rtol=1e-5)


def test_saving_a_prepared_model_writes_the_plain_weights(tmp_path):
    torch.manual_seed(5)
    model = randomized(GPT(config(ffn="swiglu", position="rope", tie_weights=True)))
    plain = {k: v.clone() for k, v in model_state(model).items()}
    prepare_for_inference(model)
    save_checkpoint(tmp_path / "ckpt", model)
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert saved.keys() == plain.keys()
    assert all(torch.equal(saved[k], plain[k]) for k in plain)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["transforms"] == []
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.transforms == [] and type(loaded.blocks[0].attn.qkv) is nn.Linear


def test_tinylm_load_prepares_the_model(tmp_path):
    tok = CharTokenizer.train("abcdefgh ")
    save_checkpoint(tmp_path / "m", GPT(config(vocab_size=tok.vocab_size)), tokenizer=tok)
    lm = tinylm.load(tmp_path / "m")
    assert [t.name for t in lm.model.transforms] == ["prepare_for_inference"]
    prepare_for_inference(lm.model)  # a second call changes nothing
    assert len(lm.model.transforms) == 1
    assert isinstance(lm.generate("abc", max_new_tokens=4, temperature=0), str)
