"""bench quant's ONNX Runtime int8 row: the float checkpoint exported with int8 weights runs in the
same engine, and its logits are the float model's within int8 rounding."""

from __future__ import annotations

import pytest
import torch

from tinylm.bench.quant import _onnx_int8_engine
from tinylm.checkpoint import save_checkpoint
from tinylm.generation import Engine, GenerationConfig
from tinylm.interop.onnx import OnnxModel
from tinylm.model import GPT
from tinylm.presets import model_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_onnx_int8_engine_decodes_like_the_float_model(tmp_path):
    torch.manual_seed(0)
    cfg = model_config("llama-style-small", vocab_size=64, block_size=32, n_layer=2, n_head=2, n_kv_head=1, n_embd=32)
    model = GPT(cfg).eval()
    save_checkpoint(tmp_path / "fp32", model)
    engine = _onnx_int8_engine(tmp_path / "fp32", tmp_path / "onnx")
    assert engine is not None and (tmp_path / "onnx" / "model.onnx").is_file()
    prompt = [[1, 2, 3, 4]]
    config = GenerationConfig(max_new_tokens=8, temperature=0.0)
    with torch.inference_mode():
        onnx_tokens = engine.generate(prompt, config)
        float_tokens = Engine(model).generate(prompt, config)
        # the graph's first-step logits are the float model's up to int8 weight rounding
        logits_float = model(torch.tensor(prompt))[0][0, -1]
        onnx_model = OnnxModel(tmp_path / "onnx" / "model.onnx", cfg)
        logits_onnx = onnx_model(torch.tensor(prompt))[0][0, -1]
    spread = (logits_float.max() - logits_float.min()).item()
    assert (logits_onnx - logits_float).abs().max().item() < 0.05 * spread
    # the engine really decodes with the graph: its first greedy token is the graph's argmax
    assert onnx_tokens[0].token_ids[0] == int(logits_onnx.argmax())
    assert len(onnx_tokens[0].token_ids) == len(float_tokens[0].token_ids) == 8
