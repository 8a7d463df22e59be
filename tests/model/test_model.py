"""The model's options, checked against independent references.

- every option builds, runs forward and backward;
- the explicit attention path and the fused SDPA path agree;
- our LayerNorm/RMSNorm match torch's reference layers;
- a left-padded row gives the same logits as the row alone;
- attention with n_kv_head == n_head is multi-head attention written out by hand, and GQA is
  MHA with each key/value head repeated for its group of query heads;
- num_params matches a hand count from the config, and config validation rejects bad values.
"""

import itertools
import math

import pytest
import torch

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT, KVCache
from tinylm.model.norms import LayerNorm, RMSNorm
from tinylm.presets import model_config, preset_names

OPTIONS = list(itertools.product(["learned", "sinusoidal", "rope"], ["layernorm", "rmsnorm"], ["pre", "post"],
                                 ["relu", "gelu", "swiglu", "mlp3"]))


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=61, block_size=24, n_layer=2, n_head=4, n_embd=32)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("position,norm,placement,ffn", OPTIONS)
def test_every_option_trains_one_step(position, norm, placement, ffn):
    torch.manual_seed(0)
    cfg = tiny(position=position, norm=norm, norm_placement=placement, ffn=ffn, dropout=0.1)
    model = GPT(cfg)
    assert model.num_params() == hand_count(cfg)
    idx = torch.randint(0, 61, (3, 24))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 24, 61)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # Untrained, the loss is near log(vocab): the initialization is sane.
    assert abs(loss.item() - torch.log(torch.tensor(61.0)).item()) < 1.0


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("n_kv_head", [None, 2, 1])
def test_explicit_attention_equals_sdpa(position, n_kv_head):
    torch.manual_seed(1)
    fused = GPT(tiny(position=position, n_kv_head=n_kv_head)).eval()
    explicit = GPT(tiny(position=position, n_kv_head=n_kv_head, attention="explicit")).eval()
    explicit.load_state_dict(fused.state_dict())
    idx = torch.randint(0, 61, (2, 24))
    assert torch.allclose(fused(idx)[0], explicit(idx)[0], atol=1e-5)


def test_causality_future_tokens_do_not_change_the_past():
    torch.manual_seed(2)
    model = GPT(tiny(position="rope", n_kv_head=2)).eval()
    a = torch.randint(0, 61, (1, 24))
    b = a.clone()
    b[0, 12:] = torch.randint(0, 61, (12,))
    assert torch.allclose(model(a)[0][0, :12], model(b)[0][0, :12], atol=1e-6)


def test_norms_match_torch_reference():
    x = torch.randn(4, 7, 32)
    ours = LayerNorm(32, eps=1e-5)
    ref = torch.nn.LayerNorm(32, eps=1e-5)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)
    rms = RMSNorm(32, eps=1e-6)
    ref_rms = torch.nn.RMSNorm(32, eps=1e-6)
    assert torch.allclose(rms(x), ref_rms(x), atol=1e-6)


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
def test_left_padding_is_invisible(position):
    torch.manual_seed(3)
    cfg = tiny(position=position, n_kv_head=2)
    model = GPT(cfg).eval()
    row = torch.randint(0, 61, (1, 9))
    alone = model(row)[0]
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), row], dim=1)
    cache = KVCache(cfg, 1, 24, pad=torch.tensor([5]))
    assert torch.allclose(model(padded, cache=cache)[0][:, 5:], alone, atol=1e-5)


def _mha_by_hand(x: torch.Tensor, attn) -> torch.Tensor:
    """Multi-head causal attention written out: per head, softmax(q k^T / sqrt(d) + causal) v."""
    B, T, C = x.shape
    H, D = attn.n_head, C // attn.n_head
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(C, dim=-1)
    heads = []
    for h in range(H):
        qh, kh, vh = (t[..., h * D:(h + 1) * D] for t in (q, k, v))
        scores = qh @ kh.transpose(1, 2) / math.sqrt(D)
        scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ vh)
    return torch.cat(heads, dim=-1) @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_gqa_with_all_heads_is_mha(attention):
    torch.manual_seed(4)
    model = GPT(tiny(n_kv_head=4, attention=attention)).eval()
    attn = model.blocks[0].attn
    with torch.no_grad():
        for p in attn.parameters():  # random biases too: a dropped bias must show
            p.normal_(0, 0.3)
        x = torch.randn(2, 10, 32)
        torch.testing.assert_close(attn(x, None, None, None), _mha_by_hand(x, attn), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_gqa_is_mha_with_each_kv_head_repeated_for_its_group(attention):
    torch.manual_seed(5)
    gqa = GPT(tiny(position="rope", n_kv_head=2, attention=attention)).eval()
    mha = GPT(tiny(position="rope", attention=attention)).eval()
    H, H_kv, D = 4, 2, 8
    state = gqa.state_dict()
    for i in range(2):
        key = f"blocks.{i}.attn.qkv"
        for part in ("weight", "bias"):
            q, k, v = state[f"{key}.{part}"].split([H * D, H_kv * D, H_kv * D])
            # query heads 0,1 read kv head 0; 2,3 read kv head 1 (consecutive groups)
            k, v = (t.view(H_kv, D, *t.shape[1:]).repeat_interleave(H // H_kv, dim=0).reshape(H * D, *t.shape[1:])
                    for t in (k, v))
            state[f"{key}.{part}"] = torch.cat([q, k, v])
    mha.load_state_dict(state)
    idx = torch.randint(0, 61, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(gqa(idx)[0], mha(idx)[0], atol=1e-5, rtol=1e-5)


def hand_count(cfg: ModelConfig) -> int:
    """Parameters of a GPT with `cfg`, counted from the architecture (tied head counted once)."""
    d, V, L, h, b = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.hidden_dim, int(cfg.bias)
    linear = lambda i, o: i * o + b * o  # noqa: E731
    norm = 2 * d if cfg.norm == "layernorm" and cfg.bias else d
    attn = linear(d, (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_dim) + linear(d, d)
    ffn = {"swiglu": 2 * linear(d, h) + linear(h, d), "mlp3": linear(d, h) + linear(h, h) + linear(h, d)}.get(
        cfg.ffn, linear(d, h) + linear(h, d))
    positions = cfg.block_size * d if cfg.position == "learned" else 0  # sinusoidal/RoPE: tables, not weights
    final_norm = norm if cfg.norm_placement == "pre" else 0
    head = 0 if cfg.tie_weights else V * d
    return V * d + positions + L * (2 * norm + attn + ffn) + final_norm + head


def test_num_params_by_hand():
    cfg = tiny(bias=True, tie_weights=True, ffn="gelu", position="learned")
    d, V, T, L = cfg.n_embd, cfg.vocab_size, cfg.block_size, cfg.n_layer
    per_block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
    assert GPT(cfg).num_params() == V * d + T * d + L * per_block + 2 * d == hand_count(cfg)
    untied = GPT(tiny(tie_weights=False))
    assert untied.num_params() == GPT(cfg).num_params() + V * d
    assert GPT(cfg).flops_per_token(seq_len=1) >= 2 * GPT(cfg).num_params(exclude_embeddings=True)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("bias,tie_weights,n_kv_head", list(itertools.product([True, False], [True, False], [None, 2])))
def test_num_params_matches_the_hand_count(norm, bias, tie_weights, n_kv_head):
    cfg = tiny(norm=norm, bias=bias, tie_weights=tie_weights, n_kv_head=n_kv_head, ffn="swiglu")
    assert GPT(cfg).num_params() == hand_count(cfg)


def test_weight_tying_shares_the_tensor():
    model = GPT(tiny(tie_weights=True))
    assert model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()


def test_residual_projections_start_smaller():
    model = GPT(tiny(n_layer=8))
    std = model.blocks[0].attn.proj.weight.std().item()
    assert 0.5 * 0.02 / 4 < std < 1.5 * 0.02 / 4


@pytest.mark.parametrize("bad", [dict(position="alibi"), dict(n_embd=30), dict(n_kv_head=3), dict(dropout=1.5),
                                 dict(n_layer=0), dict(norm="batchnorm")])
def test_bad_config_values_are_user_errors(bad):
    with pytest.raises(TinyLMError):
        tiny(**bad)


def test_unknown_config_field_is_a_user_error():
    with pytest.raises(TinyLMError, match="unknown field"):
        ModelConfig.from_dict({"vocab_size": 10, "n_layers": 3})


def test_presets_build():
    for name in preset_names():
        cfg = model_config(name, vocab_size=100, block_size=16)
        assert GPT(cfg).num_params() == hand_count(cfg), name
    assert model_config("llama-style-nano").kv_heads < model_config("llama-style-nano").n_head
    with pytest.raises(TinyLMError, match="unknown preset"):
        model_config("gpt5")


@pytest.mark.parametrize("rows", [[2, 0, 0, 1], [3, 1]])  # beams reshuffled (same size); rows dropped
def test_kv_cache_reorder_keeps_the_chosen_rows_filled_slots(rows):
    cfg = ModelConfig(vocab_size=16, n_layer=2, n_head=2, n_embd=8, block_size=16)
    cache = KVCache(cfg, batch_size=4, max_len=10)
    keys, values = torch.randn(2, 4, cfg.kv_heads, 6, cfg.head_dim), torch.randn(2, 4, cfg.kv_heads, 6, cfg.head_dim)
    for layer in range(2):
        cache.update(layer, keys[layer], values[layer])
    cache.advance(6)
    cache.reorder(torch.tensor(rows))
    assert cache.batch_size == len(rows)
    keys, values = keys[:, rows], values[:, rows]
    if len(rows) == 4:  # again: the same-size path swaps between two buffers
        cache.reorder(torch.tensor([1, 3, 3, 0]))
        keys, values = keys[:, [1, 3, 3, 0]], values[:, [1, 3, 3, 0]]
    for layer in range(2):
        k, v = cache.update(layer, keys[layer, :, :, :1], values[layer, :, :, :1])  # a 7th slot
        assert torch.equal(k[:, :, :6], keys[layer]) and torch.equal(v[:, :, :6], values[layer])
