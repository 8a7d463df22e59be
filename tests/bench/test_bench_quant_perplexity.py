"""bench quant's perplexity through the fused decode step against the PyTorch model's."""

from __future__ import annotations

import pytest
import torch

from tinylm.bench.quant import _perplexity, _step_perplexity
from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.transforms import prepare_for_inference, quantize
from tinylm.transforms.kernels import decode_kernels

pytestmark = pytest.mark.skipif(decode_kernels() is None, reason="tinylm's kernels cannot be built here")


def tiny(method: str | None) -> GPT:
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=64, ffn_hidden=96, position="rope",
                        norm="rmsnorm", ffn="swiglu", bias=False)).eval()
    return prepare_for_inference(quantize(m, method) if method else m)


def test_step_perplexity_equals_the_models_for_fp32_and_is_close_for_int8():
    ids = torch.randint(0, 64, (40,)).tolist()  # windows of 16, 16 and 7 targets: the cache restarts per window
    fp32 = tiny(None)
    assert _step_perplexity(fp32, ids) == pytest.approx(_perplexity(fp32, ids), rel=1e-5)
    int8 = tiny("int8")  # activations quantized per block of 32 in the step: close, not equal
    assert _step_perplexity(int8, ids) == pytest.approx(_perplexity(int8, ids), rel=1e-2)
    gpt2 = prepare_for_inference(GPT(ModelConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32)).eval())
    assert _step_perplexity(gpt2, ids) is None


def test_decode_runs_fit_a_short_context():
    from tinylm.bench.quant import PROMPT_LEN, decode_workload
    from tinylm.presets import model_config

    short = GPT(model_config("llama-style-small", vocab_size=32, block_size=64, n_layer=1, n_embd=32, n_head=2, n_kv_head=1))
    prompts, config = decode_workload(short, quick=False)
    assert config.max_new_tokens == 64 - PROMPT_LEN
    assert [len(p) for p in prompts[8]] == [PROMPT_LEN] * 8
    assert decode_workload(short, quick=True)[1].max_new_tokens == 16
