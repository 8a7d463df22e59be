"""ONNX and GGUF hold plain layers: a transformed checkpoint is merged first, or refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinylm.checkpoint import save_checkpoint
from tinylm.cli.main import main
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.tokenizers import train_tokenizer
from tinylm.transforms.quantize import quantize


@pytest.fixture(scope="module")
def int8_checkpoint(tmp_path_factory) -> Path:
    tok = train_tokenizer("char", ["a quantized model cannot be exported as plain layers"])
    torch.manual_seed(0)
    model = GPT(model_config("llama-style-nano", vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_kv_head=2,
                             n_embd=64, block_size=32))
    return save_checkpoint(tmp_path_factory.mktemp("q") / "int8", quantize(model, "int8"), tok)


@pytest.mark.parametrize("verb, module, out_name", [
    ("export-onnx", "onnx", "out-onnx"),
    ("export-gguf", "gguf", "out.gguf"),
])
def test_a_quantized_checkpoint_is_refused_in_one_line(verb, module, out_name, int8_checkpoint: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture):
    pytest.importorskip(module)
    out = tmp_path / out_name
    assert main([verb, str(int8_checkpoint), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinylm: error: ") and err.count("\n") == 1 and "int8" in err and "cannot be merged" in err
    assert not out.exists() and not list(tmp_path.iterdir())
