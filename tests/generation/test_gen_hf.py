"""Greedy and beam search against Hugging Face `generate` on the same weights (a llama-style
tinylm model copied into LlamaForCausalLM): an independent implementation of both."""

from __future__ import annotations

import pytest
import torch

from tinylm.generation import Engine, GenerationConfig

transformers = pytest.importorskip("transformers")


def to_hf(model):
    cfg = model.config
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.block_size, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta}, pad_token_id=0,
        bos_token_id=None, eos_token_id=None,
    )).eval()
    q, kv = cfg.n_head * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    state = {"model.embed_tokens.weight": model.tok_emb.weight, "model.norm.weight": model.norm_f.weight}
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        wq, wk, wv = block.attn.qkv.weight.split([q, kv, kv])
        state |= {
            p + "self_attn.q_proj.weight": wq, p + "self_attn.k_proj.weight": wk, p + "self_attn.v_proj.weight": wv,
            p + "self_attn.o_proj.weight": block.attn.proj.weight,
            p + "mlp.gate_proj.weight": block.ffn.gate.weight, p + "mlp.up_proj.weight": block.ffn.up.weight,
            p + "mlp.down_proj.weight": block.ffn.down.weight,
            p + "input_layernorm.weight": block.norm1.weight, p + "post_attention_layernorm.weight": block.norm2.weight,
        }
    missing, _ = hf.load_state_dict(state, strict=False)
    assert set(missing) <= {"lm_head.weight"}  # tied to the embedding
    return hf


@pytest.fixture
def models(make_model):
    ours = make_model(seed=30, vocab_size=40, block_size=64, n_head=4, n_kv_head=2, position="rope",
                       norm="rmsnorm", ffn="swiglu", bias=False, scale=0.3)
    return ours, to_hf(ours)


def hf_generate(hf, prompt, **kw):
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      do_sample=False, return_dict_in_generate=True, output_scores=True, **kw)
    return out.sequences[0, len(prompt):].tolist(), out


def test_same_logits(models):
    ours, hf = models
    idx = torch.tensor([[1, 5, 9, 2, 33, 7]])
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5)


def test_greedy_matches_hf(models):
    ours, hf = models
    prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13]]
    results = Engine(ours).generate(prompts, GenerationConfig(temperature=0, max_new_tokens=20))
    for prompt, result in zip(prompts, results):
        assert result.token_ids == hf_generate(hf, prompt, max_new_tokens=20)[0]


@pytest.mark.parametrize("stop,lp", [((), 1.0), ((5, 17), 1.0), ((5, 17), 0.5), ((17,), 2.0)])
def test_beam_search_matches_hf(models, stop, lp):
    ours, hf = models
    prompts = [[1, 2, 3], [20, 21], [4, 6, 8, 10, 12]]
    cfg = GenerationConfig(num_beams=4, max_new_tokens=10, stop_token_ids=stop, length_penalty=lp)
    results = Engine(ours).generate(prompts, cfg)
    for prompt, result in zip(prompts, results):
        tokens, out = hf_generate(hf, prompt, max_new_tokens=10, num_beams=4, length_penalty=lp,
                                  eos_token_id=list(stop) or None, early_stopping=False)
        # HF pads a hypothesis that stopped early; cut after its stop token.
        for i, t in enumerate(tokens):
            if t in stop:
                tokens = tokens[: i + 1]
                break
        assert result.token_ids == tokens
        assert result.score == pytest.approx(out.sequences_scores[0].item(), abs=1e-4)
