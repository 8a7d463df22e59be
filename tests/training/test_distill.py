"""Distillation: the loss against independent computations, and tiny distillation runs (code2 and text)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tinylm
from tinylm.cli.main import main
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.training.distill import DistillationObjective, distill, distillation_loss, mean_kl


def _batch(seed: int = 0, B: int = 3, T: int = 6, V: int = 11):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, T, V, generator=g) * 2
    t = torch.randn(B, T, V, generator=g) * 2
    y = torch.randint(V, (B, T), generator=g)
    y[0, :2] = -100  # a prompt
    y[2, 4:] = -100  # padding
    return s, t, y


def _numpy_kl(teacher: np.ndarray, student: np.ndarray, T: float) -> float:
    """Mean over rows of sum_v p_v (log p_v - log q_v), p = softmax(teacher / T), q = softmax(student / T)."""
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z / T
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    lp, lq = log_softmax(teacher.astype(np.float64)), log_softmax(student.astype(np.float64))
    return float((np.exp(lp) * (lp - lq)).sum(-1).mean())


@pytest.mark.parametrize("alpha, temperature", [(0.5, 2.0), (0.3, 1.0), (0.9, 4.0)])
def test_loss_equals_torch_kl_div_and_cross_entropy(alpha: float, temperature: float):
    s, t, y = _batch()
    keep = y.reshape(-1) != -100
    V = s.shape[-1]
    ce = F.cross_entropy(s.reshape(-1, V), y.reshape(-1), ignore_index=-100)
    kl = F.kl_div(F.log_softmax(s.reshape(-1, V)[keep] / temperature, -1),
                  F.log_softmax(t.reshape(-1, V)[keep] / temperature, -1), log_target=True, reduction="batchmean")
    expected = alpha * ce + (1 - alpha) * temperature**2 * kl
    assert torch.allclose(distillation_loss(s, t, y, alpha, temperature), expected, rtol=1e-5, atol=1e-6)


def test_alpha_one_is_the_models_own_loss():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16))
    x = torch.randint(13, (2, 8))
    y = torch.randint(13, (2, 8))
    y[1, :3] = -100
    logits, loss = model(x, y)
    teacher_logits = torch.randn_like(logits) * 5  # ignored entirely at alpha = 1
    assert torch.allclose(distillation_loss(logits, teacher_logits, y, alpha=1.0, temperature=3.0), loss, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_the_kl_term_is_scaled_by_t_squared(temperature: float):
    s, t, y = _batch(1)
    keep = (y != -100).numpy()
    kl = _numpy_kl(t.numpy()[keep], s.numpy()[keep], temperature)
    got = float(distillation_loss(s, t, y, alpha=0.0, temperature=temperature))
    assert math.isclose(got, temperature**2 * kl, rel_tol=1e-5)
    assert float(distillation_loss(t, t, y, alpha=0.0, temperature=temperature)) == pytest.approx(0.0, abs=1e-6)


def test_ignored_targets_count_in_neither_term():
    s, t, y = _batch(2)
    ignored = y == -100
    s2, t2 = s.clone(), t.clone()
    s2[ignored] += 100 * torch.randn_like(s2[ignored])
    t2[ignored] = -t2[ignored]
    for alpha in (0.0, 0.5, 1.0):
        assert torch.allclose(distillation_loss(s, t, y, alpha), distillation_loss(s2, t2, y, alpha))
    s.requires_grad_(True)
    distillation_loss(s, t, y, 0.5).backward()
    assert s.grad[ignored].abs().max() == 0 and s.grad[~ignored].abs().max() > 0
    # Per target token: a batch's loss is the mean of its rows' losses weighted by their target counts.
    rows = [distillation_loss(s[i], t[i], y[i], 0.5) * (y[i] != -100).sum() for i in range(3)]
    assert torch.allclose(sum(rows) / (~ignored).sum(), distillation_loss(s, t, y, 0.5), atol=1e-6)
    none = torch.full_like(y, -100)
    zero = distillation_loss(s, t, none)
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def test_bad_settings_are_user_errors():
    s, t, y = _batch()
    with pytest.raises(TinyLMError, match="alpha"):
        distillation_loss(s, t, y, alpha=1.5)
    with pytest.raises(TinyLMError, match="temperature"):
        distillation_loss(s, t, y, temperature=0.0)
    with pytest.raises(TinyLMError, match="vocabularies"):
        distillation_loss(s, t[..., :5], y)


def test_labels_only_skips_the_teacher_and_equals_the_loss_formula():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)
    teacher, student = GPT(cfg), GPT(cfg)
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    x, y = torch.randint(13, (2, 8)), torch.randint(13, (2, 8))
    y[0, :3] = -100
    loss = DistillationObjective(teacher, alpha=1.0)(student, x, y)
    assert calls == []  # alpha = 1: the teacher's forward pass would only cost time
    expected = distillation_loss(student(x)[0], teacher(x)[0], y, alpha=1.0)
    assert torch.allclose(loss, expected, atol=1e-6)
    DistillationObjective(teacher, alpha=0.5)(student, x, y)
    assert len(calls) == 2  # the check above, and alpha < 1


def test_the_teacher_is_frozen():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.5)
    teacher, student = GPT(cfg), GPT(cfg)
    objective = DistillationObjective(teacher)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = torch.randint(13, (2, 8))
    objective(student, x, x).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())
    with torch.no_grad():
        first = teacher(x)[0]
    assert torch.equal(first, teacher(x)[0].detach())  # eval mode: dropout off


# --- runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny character model trained for a few steps on a repetitive text (its run folder has data/)."""
    root = tmp_path_factory.mktemp("text")
    text = root / "text.txt"
    text.write_text("the cat sat on the mat. the dog ate the log. " * 200, encoding="utf-8")
    assert main(["train", "--data", str(text), "--preset", "llama-style-nano", "--set", "n_layer=1",
                 "--set", "n_embd=32", "--set", "n_head=2", "--set", "n_kv_head=2", "--set", "block_size=32",
                 "--max-steps", "60", "--batch-size", "16", "--lr", "3e-3", "--samples", "0", "--quiet",
                 "--no-tensorboard", "--out", str(root / "run")]) == 0
    return root / "run" / "last"


def test_distill_brings_a_text_student_closer_to_its_teacher(text_teacher: Path, tmp_path: Path):
    from tinylm.checkpoint import load_model
    from tinylm.data import TextDataset
    from tinylm.presets import model_config
    from tinylm.tokenizers import load_tokenizer
    from tinylm.training.config import TrainConfig

    teacher = load_model(text_teacher)
    tokenizer = load_tokenizer(text_teacher / "tokenizer.json")
    data = text_teacher.parent / "data"
    train, val = TextDataset(data / "train.bin", 32), TextDataset(data / "val.bin", 32)
    held_out = list(val.iter_eval_batches(8, max_batches=2))
    config = model_config("llama-style-nano", n_layer=1, n_embd=16, n_head=2, n_kv_head=2, block_size=32,
                          vocab_size=tokenizer.vocab_size)
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), max_steps=40, batch_size=16, lr=5e-3, min_lr=5e-4,
                      warmup_steps=2, eval_every=0, save_every=0, tensorboard=False)
    torch.manual_seed(cfg.seed)
    before = mean_kl(teacher.eval(), GPT(config), held_out)
    student = distill(teacher, config, train, val, tokenizer=tokenizer, cfg=cfg)
    after = mean_kl(teacher, student, held_out)
    assert after < 0.5 * before
    assert student.num_params() < teacher.num_params()
    assert (tmp_path / "run" / "last").is_dir()


def test_distill_command_on_a_code2_teacher(tiny_code2_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "student"
    assert main(["distill", str(tiny_code2_model), "--student", "llama-style-nano", "--set", "n_layer=1",
                 "--set", "n_embd=16", "--set", "n_head=2", "--task", "code2", "--max-steps", "40",
                 "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "student:" in printed and "held-out KL" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["held_out_kl_after"] < 0.7 * summary["held_out_kl_before"]
    assert summary["student_parameters"] < summary["teacher_parameters"]
    # A normal checkpoint: the teacher's tokenizer, task and prompt format.
    assert (out / "model" / "tokenizer.json").read_bytes() == (tiny_code2_model / "tokenizer.json").read_bytes()
    student, teacher = tinylm.load(out / "model"), tinylm.load(tiny_code2_model)
    extra = student.model.config.extra
    assert extra["task"] == "code2" and extra["code2"] == teacher.model.config.extra["code2"]
    assert student.prompt_format == teacher.prompt_format
    assert student.model.config.block_size == teacher.model.config.block_size
    from tinylm.tasks.code2.translate import translate

    assert isinstance(translate(student, "Suma r1 y r2 y guarda el resultado en r3"), str)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["task"]["name"] == "code2" and recipe["task"]["n"] == 60  # the teacher's dataset


@pytest.mark.parametrize("case", ["vocab", "not-smaller", "unknown-preset", "text-on-code2", "missing-teacher"])
def test_bad_distill_input_is_one_line(case: str, tiny_code2_model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture):
    config = tmp_path / "student.json"
    config.write_text(json.dumps({"preset": "llama-style-nano", "n_layer": 1, "n_embd": 16, "vocab_size": 7}))
    teacher = str(tiny_code2_model)
    student = ["--student", "llama-style-nano", "--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2"]
    args, message = {
        "vocab": ([teacher, "--student", str(config)], "vocabulary"),
        "not-smaller": ([teacher, "--student", "llama-style-nano"], "not smaller"),
        "unknown-preset": ([teacher, "--student", "tiny-style-nano"], "unknown preset"),
        "text-on-code2": ([teacher, *student, "--task", "text"], "--task code2"),
        "missing-teacher": ([str(tmp_path / "none"), *student], "no teacher"),
    }[case]
    out = tmp_path / "out"
    assert main(["distill", *args, "--max-steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()
