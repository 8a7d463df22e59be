"""Numerical oracles: the same weights in tinylm and in Hugging Face transformers give the same logits."""

import pytest
import torch
transformers = pytest.importorskip("transformers")

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.interop import from_hf, to_hf
from tinylm.model import GPT
from tinylm.presets import model_config

TOL = 1e-4  # fp32; the measured differences are ~1e-6 (eager) and 0 (sdpa)
V = 61

CONFIGS = {
    "gpt2-tied": model_config("gpt2-style-nano", vocab_size=V, n_layer=2, n_embd=32, block_size=24),
    "gpt2-untied-relu-sinusoidal": model_config(
        "gpt2-style-nano", vocab_size=V, n_layer=2, n_embd=32, block_size=24, tie_weights=False,
        ffn="relu", position="sinusoidal", ffn_hidden=48, norm_eps=1e-6,
    ),
    "llama-gqa-tied": model_config("llama-style-nano", vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, block_size=24),
    "llama-untied-bias-mha": model_config(
        "llama-style-nano", vocab_size=V, n_layer=2, n_head=4, n_kv_head=None, n_embd=32, block_size=24,
        tie_weights=False, bias=True, rope_theta=500.0, ffn_hidden=40,
    ),
}


def tokens(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", CONFIGS)
def test_tinylm_to_hf_same_logits(name, attn, randomize):
    cfg = CONFIGS[name]
    model = randomize(GPT(cfg))
    hf = to_hf(model)
    assert type(hf).__name__ == ("GPT2LMHeadModel" if name.startswith("gpt2") else "LlamaForCausalLM")
    # "eager" is HF's textbook softmax attention: a path independent of tinylm's SDPA call.
    hf.set_attn_implementation(attn)
    x = tokens(cfg)
    with torch.no_grad():
        ours, theirs = model(x)[0], hf(x).logits
    assert (ours - theirs).abs().max().item() <= TOL
    assert ours.abs().max().item() > 1.0  # the logits are not trivially small
    # Tying survives: one matrix in HF too, or two different ones.
    tied = hf.lm_head.weight is hf.get_input_embeddings().weight
    assert tied == cfg.tie_weights


def test_oracle_detects_a_wrong_weight(randomize):
    """The comparison can fail: a small change to one HF tensor shows far above the tolerance."""
    cfg = CONFIGS["llama-gqa-tied"]
    model = randomize(GPT(cfg))
    hf = to_hf(model)
    with torch.no_grad():
        hf.model.layers[1].self_attn.k_proj.weight[0, 0] += 0.05
        diff = (model(tokens(cfg))[0] - hf(tokens(cfg)).logits).abs().max().item()
    assert diff > 10 * TOL


def hf_gpt2(tie: bool) -> transformers.PreTrainedModel:
    cfg = transformers.GPT2Config(
        vocab_size=V, n_positions=20, n_embd=32, n_layer=2, n_head=4, activation_function="gelu",
        tie_word_embeddings=tie, layer_norm_epsilon=1e-5, bos_token_id=None, eos_token_id=None,
    )
    return transformers.GPT2LMHeadModel(cfg)


def hf_llama(tie: bool) -> transformers.PreTrainedModel:
    cfg = transformers.LlamaConfig(
        vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=20, rms_norm_eps=1e-6, tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )
    return transformers.LlamaForCausalLM(cfg)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("build", [hf_gpt2, hf_llama])
def test_hf_to_tinylm_same_logits(build, tie, randomize):
    torch.manual_seed(0)
    hf = randomize(build(tie))
    hf.set_attn_implementation("eager")
    model = from_hf(hf)
    assert model.config.tie_weights == tie
    x = torch.randint(0, V, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (model(x)[0] - hf(x).logits).abs().max().item()
    assert diff <= TOL


def test_hf_config_fields_map_to_tinylm():
    cfg = from_hf(hf_llama(tie=True)).config
    assert (cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.ffn_hidden) == (6, 2, 8, 80)
    assert (cfg.rope_theta, cfg.norm_eps, cfg.block_size, cfg.bias) == (1000.0, 1e-6, 20, False)
    cfg = from_hf(hf_gpt2(tie=False)).config
    assert (cfg.position, cfg.norm, cfg.ffn, cfg.ffn_hidden, cfg.bias, cfg.tie_weights) == ("learned", "layernorm", "gelu", None, True, False)


@pytest.mark.parametrize("name", ["gpt2-tied", "llama-gqa-tied"])
def test_hf_greedy_generate_matches_tinylm(name, randomize):
    cfg = CONFIGS[name]
    model = randomize(GPT(cfg))
    hf = to_hf(model)
    prompt = tokens(cfg, batch=1)[:, :5]
    out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False, pad_token_id=0)
    # Reference: argmax over a full forward pass at every step (no cache involved).
    ids = prompt
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, model(ids)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out.tolist() == ids.tolist()


@pytest.mark.parametrize("overrides, fields", [
    (dict(norm_placement="post"), ["norm_placement"]),
    (dict(ffn="mlp3"), ["ffn"]),
    (dict(position="rope", norm="layernorm", ffn="gelu"), ["position", "norm"]),  # fits neither family
    (dict(bias=False), ["bias=True"]),
    (dict(n_kv_head=2), ["n_kv_head"]),
])
def test_unexportable_config_is_refused_naming_the_field(overrides, fields):
    cfg = model_config("gpt2-style-nano", vocab_size=V, n_layer=1, n_embd=32, block_size=8, **overrides)
    with pytest.raises(TinyLMError) as e:
        to_hf(GPT(cfg))
    message = str(e.value)
    assert "\n" not in message and "GPT2LMHeadModel" in message and "LlamaForCausalLM" in message
    assert all(f in message for f in fields)


def test_unsupported_hf_models_are_refused():
    gelu_new = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=V, n_positions=8, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(TinyLMError, match="activation_function='gelu_new'"):
        from_hf(gelu_new)
    scaled = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
    ))
    with pytest.raises(TinyLMError, match="rope_type 'linear'"):
        from_hf(scaled)
    with pytest.raises(TinyLMError, match="cannot import GPT2Model"):
        from_hf(transformers.GPT2Model(transformers.GPT2Config(n_positions=8, n_embd=16, n_layer=1, n_head=2)))
