"""bench code2-compress on the tiny CODE-2 model: every variant is built, evaluated and compared with fp32."""

from __future__ import annotations

import dataclasses
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
    result = code2_compress.run(quick=True, model=str(tiny_code2_model), budget_s=1.0)
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
    assert set(result["met"]) == {*code2_compress.GOAL_VARIANTS, "distilled"}


def test_the_distilled_row_has_a_student_of_half_the_parameters(tiny_code2_model: Path) -> None:
    from tinylm.checkpoint import load_model

    teacher = load_model(tiny_code2_model).num_params()
    result = code2_compress.run(quick=True, model=str(tiny_code2_model), variants=["fp32,distilled"], budget_s=1.0)
    assert [r["variant"] for r in result["rows"]] == ["fp32", "distilled"]
    row = result["rows"][1]
    assert row["teacher_parameters"] == teacher and 0 < row["parameters"] <= teacher / 2
    assert row["train_steps"] > 0 and row["alpha"] == 0.5 and row["size_mb"] < result["rows"][0]["size_mb"]
    assert row["best_val_loss"] > 0  # the student's own cross-entropy on the validation labels
    # Distillation moved the student towards its teacher (a fresh student is far from it).
    assert row["held_out_kl_after"] < row["held_out_kl_before"]
    assert result["met"]["distilled"]["parameters"] is True
    assert result["goals"]["distilled"] == {"exact_match_drop_points": 2.0, "parameters_ratio": 0.5}


def test_student_config_halves_the_parameters_of_the_demo_sized_teacher() -> None:
    from tinylm.model import GPT
    from tinylm.presets import model_config

    # The shape of the demo's CODE-2 thesis model (869 504 parameters).
    teacher = model_config("llama-style-nano", vocab_size=512, block_size=256, n_layer=4, n_embd=128, n_head=4)
    student = code2_compress.student_config(teacher)
    assert (student.n_layer, student.n_head) == (2, 4) and student.n_embd % (2 * student.n_head) == 0
    n_teacher, n_student = GPT(teacher).num_params(), GPT(student).num_params()
    assert n_student <= n_teacher / 2
    # The widest such student: one step wider is over half.
    wider = dataclasses.replace(student, n_embd=student.n_embd + 2 * student.n_head)
    assert GPT(wider).num_params() > n_teacher / 2


def test_unknown_variant_is_a_user_error(tiny_code2_model: Path) -> None:
    with pytest.raises(TinyLMError, match="unknown code2-compress variant 'distiled'"):
        code2_compress.run(quick=True, model=str(tiny_code2_model), variants=["fp32", "distiled"])


def test_refuses_a_model_of_another_task(tmp_path: Path) -> None:
    from tinylm.checkpoint import save_checkpoint
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tokenizers import CharTokenizer

    ckpt = save_checkpoint(tmp_path / "text", GPT(ModelConfig(vocab_size=40, n_layer=1, n_embd=16, n_head=2)),
                           CharTokenizer("abc"))
    with pytest.raises(TinyLMError, match="not a CODE-2 model"):
        code2_compress.run(quick=True, model=str(ckpt))
