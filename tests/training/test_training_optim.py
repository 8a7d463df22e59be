import json

import pytest
import torch

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.presets import model_config
from tinylm.training import OPTIMIZERS, TrainConfig, Trainer, build_optimizer, param_groups

from train_toys import pattern_data, tiny_model, tiny_train_config


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def _expected_decay(model):
    # Independent rule, by parameter name: matrices of attention/FFN (and an untied head).
    return {
        n for n, p in model.named_parameters()
        if p.dim() == 2 and not n.startswith(("tok_emb.", "pos_emb."))
    }


@pytest.mark.parametrize("preset", ["gpt2-style-nano", "llama-style-nano"])
@pytest.mark.parametrize("tie", [True, False])
def test_param_groups_exclude_norms_biases_embeddings(preset, tie):
    model = GPT(model_config(preset, vocab_size=64, n_layer=2, tie_weights=tie))
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decay_names, no_decay_names = _names(model, decay), _names(model, no_decay)
    assert decay_names == _expected_decay(model)
    assert not any("norm" in n or n.endswith(".bias") or "emb" in n for n in decay_names)
    assert "tok_emb.weight" in no_decay_names
    assert ("lm_head.weight" in decay_names) == (not tie)
    # Every parameter exactly once (a tied head is the embedding, listed once).
    all_params = list(model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == len(all_params)
    assert len({id(p) for p in decay["params"] + no_decay["params"]}) == len(all_params)


def test_build_optimizer_adamw_and_unknown():
    model = tiny_model()
    cfg = TrainConfig(lr=2e-3, betas=(0.8, 0.9), weight_decay=0.05)
    opt = build_optimizer("adamw", model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 2e-3 and tuple(g["betas"]) == (0.8, 0.9) for g in opt.param_groups)
    with pytest.raises(TinyLMError, match="unknown optimizer"):
        build_optimizer("adamq", model, cfg)


def test_optimizer_registry_is_pluggable(monkeypatch, tmp_path):
    """A new optimizer is one registry entry; the trainer schedules each group's own lr."""
    def sgd(model, cfg):
        return torch.optim.SGD([
            {"params": [p for n, p in model.named_parameters() if p.dim() >= 2], "lr": cfg.lr},
            {"params": [p for n, p in model.named_parameters() if p.dim() < 2], "lr": cfg.lr / 10},
        ])

    monkeypatch.setitem(OPTIMIZERS, "sgd", sgd)
    cfg = tiny_train_config(tmp_path, optimizer="sgd", max_steps=4, warmup_steps=0, decay="constant")
    trainer = Trainer(tiny_model(), pattern_data(), None, cfg, quiet=True)
    result = trainer.fit()
    assert result.steps == 4
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([cfg.lr, cfg.lr / 10])
    # ...and it resumes through the same generic state format.
    trainer2 = Trainer(tiny_model(seed=1), pattern_data(), None, cfg, quiet=True)
    assert trainer2.resume() == 4


@pytest.mark.parametrize("bad", [
    dict(max_steps=0), dict(batch_size=-1), dict(grad_accum=1.5), dict(lr=0), dict(lr=1e-3, min_lr=1e-2),
    dict(decay="step"), dict(dtype="float16"), dict(optimizer="lion"), dict(betas=(0.9,)),
    dict(betas=(0.9, 1.0)), dict(eval_every=-1), dict(weight_decay=-0.1), dict(seed=True),
])
def test_train_config_validation(bad):
    with pytest.raises(TinyLMError, match="train config"):
        TrainConfig(**bad)


def test_train_config_json_round_trip():
    cfg = TrainConfig(out_dir="x", max_steps=7, betas=(0.8, 0.99), dtype="bfloat16", patience=3)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(TinyLMError, match="unknown field"):
        TrainConfig.from_dict({**cfg.to_dict(), "max_iters": 5})
