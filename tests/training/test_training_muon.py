"""Muon: which tensors it updates, that its step is torch's Muon + AdamW exactly, that it
trains, that stop/resume is bit-identical, and the one-line refusal on a model without
hidden matrices."""

from pathlib import Path

import pytest
import torch
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.training import Trainer, build_optimizer
from tinylm.training.metrics_log import read_metrics
from tinylm.training.optim import muon_groups

from train_toys import pattern_data, random_data, tiny_model, tiny_train_config

RUN = dict(max_steps=8, save_every=4, eval_every=4, grad_accum=2, log_every=1, optimizer="muon")


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("tie", [True, False])
def test_muon_takes_hidden_matrices_adamw_the_rest(tie):
    model = GPT(model_config("llama-style-nano", vocab_size=64, n_layer=2, tie_weights=tie, cola_targets=["ffn"]))
    hidden, head, rest = muon_groups(model)
    expected = {n for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("blocks.")}
    assert _names(model, hidden) == expected
    assert any(".A.weight" in n for n in expected)  # CoLA factors are hidden matrices too
    assert _names(model, head) == (set() if tie else {"lm_head.weight"})
    assert "tok_emb.weight" in _names(model, rest)
    assert len(hidden) + len(head) + len(rest) == len(list(model.parameters()))


def test_a_step_is_torch_muon_plus_adamw():
    """Reference: the same update from torch.optim.Muon and AdamW built by hand, with the study's settings."""
    cfg = tiny_train_config(Path("unused"), optimizer="muon", lr=0.01, weight_decay=0.1)
    models = [tiny_model(seed=0), tiny_model(seed=0)]
    ours = build_optimizer("muon", models[0], cfg)
    hidden, head, rest = muon_groups(models[1])
    reference = [
        torch.optim.Muon(hidden, lr=0.01, weight_decay=0.1, momentum=0.95, ns_coefficients=(3.4445, -4.775, 2.0315),
                         ns_steps=5, adjust_lr_fn="match_rms_adamw"),
        torch.optim.AdamW([{"params": rest, "weight_decay": 0.0}], lr=0.01, betas=cfg.betas, fused=True),
    ]
    assert not head  # the toy model ties its head
    x, y = pattern_data().get_batch(4, torch.Generator().manual_seed(0))
    for _ in range(3):
        for model in models:
            model(x, y)[1].backward()
        ours.step()
        ours.zero_grad()
        for opt in reference:
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def _trainer(out: Path, seed: int = 0, callbacks=()) -> Trainer:
    cfg = tiny_train_config(out, **RUN)
    return Trainer(tiny_model(seed=seed, dropout=0.1), pattern_data(), random_data(), cfg, callbacks=callbacks, quiet=True)


class Crash(Exception):
    pass


def _rows(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")} for r in read_metrics(out / "metrics.jsonl")]


def test_muon_trains_and_resumes_bit_identically(tmp_path):
    ref = _trainer(tmp_path / "ref").fit()
    losses = [r["loss"] for r in _rows(tmp_path / "ref") if "loss" in r]
    assert losses[-1] < losses[0]

    def crash_at_6(trainer, row):
        if row["step"] == 6:
            raise Crash

    with pytest.raises(Crash):
        _trainer(tmp_path / "run", callbacks=[crash_at_6]).fit()
    result = _trainer(tmp_path / "run", seed=99).fit(resume=True)  # another init: all must come from the checkpoint
    assert (result.steps, result.best_val_loss) == (ref.steps, ref.best_val_loss)
    assert _rows(tmp_path / "run") == _rows(tmp_path / "ref")


class Bigram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(16, 16)
        self.bias = nn.Parameter(torch.zeros(16))


def test_muon_without_hidden_matrices_is_one_line():
    cfg = tiny_train_config(Path("unused"), optimizer="muon")
    with pytest.raises(TinyLMError, match="no 2-D hidden matrices") as e:
        build_optimizer("muon", Bigram(), cfg)
    assert "\n" not in str(e.value)
