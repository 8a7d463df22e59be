import math

import pytest

from tinylm.training.schedule import lr_at


def test_warmup_is_linear_and_starts_above_zero():
    lrs = [lr_at(s, lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=10) for s in range(4)]
    assert lrs == pytest.approx([0.2, 0.4, 0.6, 0.8])


def test_cosine_values():
    # No warm-up, lr 1 -> 0 over 4 steps: 0.5 * (1 + cos(pi * k / 4)).
    lrs = [lr_at(s, lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=4) for s in range(5)]
    assert lrs == pytest.approx([1.0, 0.8535533905932737, 0.5, 0.14644660940672624, 0.0], abs=1e-12)


def test_cosine_after_warmup_hits_peak_midpoint_and_floor():
    kw = dict(lr=3e-3, min_lr=3e-4, warmup_steps=10, max_steps=110)
    assert lr_at(10, **kw) == pytest.approx(3e-3)
    assert lr_at(60, **kw) == pytest.approx((3e-3 + 3e-4) / 2)
    assert lr_at(110, **kw) == pytest.approx(3e-4)
    assert lr_at(500, **kw) == pytest.approx(3e-4)  # past the end it stays at the floor


def test_linear_and_constant():
    kw = dict(lr=1.0, min_lr=0.0, warmup_steps=2, max_steps=12)
    assert [lr_at(s, decay="linear", **kw) for s in (2, 7, 12)] == pytest.approx([1.0, 0.5, 0.0])
    assert [lr_at(s, decay="constant", **kw) for s in (0, 2, 7, 12, 100)] == pytest.approx([1 / 3, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_decay_is_monotone(decay):
    lrs = [lr_at(s, lr=1e-3, min_lr=1e-5, warmup_steps=5, max_steps=50, decay=decay) for s in range(5, 60)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert all(1e-5 <= v <= 1e-3 and math.isfinite(v) for v in lrs)


def test_unknown_decay():
    with pytest.raises(ValueError):
        lr_at(5, lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=10, decay="step")


def test_fitted_schedule_keeps_the_warmup_share():
    """A recipe of 8 000 steps with 1 000 warm-up steps, of which 200 fit in the budget:
    warm-up becomes 25 steps (1/8), not 1 000 (the run would end still warming up)."""
    from types import SimpleNamespace

    from tinylm.training.schedule import FitScheduleToBudget

    fit = FitScheduleToBudget(budget_s=100.0, reserve_s=0.0, max_steps=8000, every=10, warmup_steps=1000)
    trainer = SimpleNamespace(progress=SimpleNamespace(step=20, elapsed_s=10.0),
                              cfg=SimpleNamespace(max_steps=8000, warmup_steps=1000))
    fit(trainer, {})
    assert (trainer.cfg.max_steps, trainer.cfg.warmup_steps) == (200, 25)
    plain = SimpleNamespace(progress=SimpleNamespace(step=20, elapsed_s=10.0),
                            cfg=SimpleNamespace(max_steps=8000, warmup_steps=1000))
    FitScheduleToBudget(100.0, 0.0, max_steps=8000, every=10)(plain, {})
    assert (plain.cfg.max_steps, plain.cfg.warmup_steps) == (200, 1000)  # without warmup_steps: untouched
