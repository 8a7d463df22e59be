"""bench code2-compress on the tiny CODE-2 model: every variant is built, evaluated and compared with fp32."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinylm.bench import code2_compress
from tinylm.errors import TinyLMError


def test_every_variant_gets_a_row(tiny_code2_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code2_compress, "QUICK_EXAMPLES", 2)
    # The tiny model has 2 heads: a quarter of them rounds to none, so it loses one of two here.
    variants = dict(code2_compress.VARIANTS)
    variants["structured: 1/4 of heads and FFN channels"] = code2_compress._pruned("structured", heads=0.5, ffn=0.25)
    monkeypatch.setattr(code2_compress, "VARIANTS", variants)
    result = code2_compress.run(quick=True, model=str(tiny_code2_model))
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == list(code2_compress.VARIANTS)
    assert rows["fp32"]["speedup_alone"] == 1.0 and rows["fp32"]["exact_match_drop_points"] == 0.0
    for row in rows.values():
        assert row["examples"] == 2 and 0.0 <= row["exact_match"] <= 1.0 and row["latency_alone_ms"] > 0
    # Sizes come from the files each variant wrote: int4 < int8 < fp32 (the embedding is quantized too).
    assert rows["int4"]["size_mb"] < rows["int8"]["size_mb"] < rows["fp32"]["size_mb"]
    assert rows["onnx int8"]["size_mb"] < rows["onnx fp32"]["size_mb"]
    # Magnitude pruning keeps dense storage (the thesis's finding); structured pruning shrinks the file.
    assert rows["pruned 50 %"]["size_mb"] == rows["fp32"]["size_mb"]
    assert rows["structured: 1/4 of heads and FFN channels"]["size_mb"] < rows["fp32"]["size_mb"]
    assert set(result["met"]) == set(code2_compress.GOAL_VARIANTS)


def test_refuses_a_model_of_another_task(tmp_path: Path) -> None:
    from tinylm.checkpoint import save_checkpoint
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tokenizers import CharTokenizer

    ckpt = save_checkpoint(tmp_path / "text", GPT(ModelConfig(vocab_size=40, n_layer=1, n_embd=16, n_head=2)),
                           CharTokenizer("abc"))
    with pytest.raises(TinyLMError, match="not a CODE-2 model"):
        code2_compress.run(quick=True, model=str(ckpt))
