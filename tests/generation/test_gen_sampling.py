"""The samplers and penalties, each against a direct NumPy reference computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig
from tinylm.generation.sampling import apply_penalties, min_p, sample, select_tokens, top_k, top_p


def _logits(seed: int, B: int = 4, V: int = 50) -> torch.Tensor:
    return torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * 2.0


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("k", [1, 3, 10, 49])
def test_top_k_keeps_the_k_largest(k):
    logits = _logits(k)
    out = top_k(logits, k)
    for row, filtered in zip(logits.numpy(), out.numpy()):
        keep = set(np.argsort(-row)[:k])
        assert {i for i in range(len(row)) if np.isfinite(filtered[i])} == keep
        assert np.array_equal(filtered[list(keep)], row[list(keep)])


def test_top_k_off_and_oversized_are_identity():
    logits = _logits(0)
    assert torch.equal(top_k(logits, 0), logits)
    assert torch.equal(top_k(logits, 1000), logits)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(p):
    logits = _logits(int(p * 100))
    out = top_p(logits, p)
    for row, filtered in zip(logits.double().numpy(), out.numpy()):
        probs = _softmax(row)
        order = np.argsort(-probs)
        # Reference: grow the set from the most likely token until its mass reaches p.
        mass, keep = 0.0, set()
        for i in order:
            keep.add(i)
            mass += probs[i]
            if mass >= p:
                break
        assert {i for i in range(len(row)) if np.isfinite(filtered[i])} == keep
        # Minimality: without its least likely member, the set's mass is below p.
        assert mass - probs[order[len(keep) - 1]] < p <= mass + 1e-9


def test_top_p_one_is_identity_and_tiny_p_is_argmax():
    logits = _logits(1)
    assert torch.equal(top_p(logits, 1.0), logits)
    kept = torch.isfinite(top_p(logits, 1e-6))
    assert torch.equal(kept.sum(-1), torch.ones(4, dtype=torch.long))
    assert torch.equal(kept.float().argmax(-1), logits.argmax(-1))


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 1.0])
def test_min_p_keeps_tokens_within_a_factor_of_the_best(p):
    logits = _logits(7)
    out = min_p(logits, p)
    for row, filtered in zip(logits.double().numpy(), out.numpy()):
        probs = _softmax(row)
        keep = {i for i in range(len(row)) if probs[i] >= p * probs.max()}
        assert {i for i in range(len(row)) if np.isfinite(filtered[i])} == keep


def test_penalties_match_the_formulas():
    logits = _logits(3, B=2, V=6)
    counts = torch.tensor([[0, 1, 3, 0, 2, 0], [5, 0, 0, 1, 0, 0]], dtype=torch.float32)
    seen = torch.tensor([[1, 1, 1, 0, 1, 0], [1, 0, 1, 1, 0, 0]], dtype=torch.bool)  # prompt tokens too
    out = apply_penalties(logits, counts, repetition=1.3, presence=0.5, frequency=0.25, seen=seen)
    z, c, s = logits.numpy(), counts.numpy(), seen.numpy()
    expected = np.where(s, np.where(z > 0, z / 1.3, z * 1.3), z) - 0.5 * (c > 0) - 0.25 * c
    assert np.allclose(out.numpy(), expected, atol=1e-6)
    # Presence/frequency alone: z_i - presence * [count_i > 0] - frequency * count_i (seed 001).
    out = apply_penalties(logits, counts, presence=0.2, frequency=1.0)
    assert np.allclose(out.numpy(), z - 0.2 * (c > 0) - 1.0 * c, atol=1e-6)
    # Repetition always lowers a seen token's logit, whatever its sign.
    out = apply_penalties(logits, counts, repetition=2.0)
    assert (out[counts > 0] < logits[counts > 0]).all()
    assert torch.equal(out[counts == 0], logits[counts == 0])


def test_temperature_zero_is_argmax():
    logits = _logits(4)
    assert torch.equal(sample(logits, 0.0), logits.argmax(-1))
    assert torch.equal(select_tokens(logits, GenerationConfig(temperature=0, top_k=3, top_p=0.1), None),
                       logits.argmax(-1))


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    logits = torch.zeros(8, 1000)  # uniform: any two seeds agree on 8 draws with probability ~1e-24
    draw = lambda seed: sample(logits, 1.0, torch.Generator().manual_seed(seed))
    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


def test_samples_follow_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    for t in (0.5, 1.0, 2.0):
        draws = sample(logits, t, torch.Generator().manual_seed(0))
        freq = torch.bincount(draws, minlength=4).double() / len(draws)
        expected = torch.softmax(logits[0].double() / t, -1)
        assert torch.allclose(freq, expected, atol=0.015)


def test_select_tokens_tempers_before_filtering():
    # Tempered at T=0.5 the probabilities are ~[.84, .11, .04, .01]: top_p=0.9 keeps two tokens.
    # Untempered ([.64, .24, .09, .03]) it would keep three.
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    draws = select_tokens(logits, GenerationConfig(temperature=0.5, top_p=0.9), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    expected = torch.softmax(torch.tensor([2.0, 1.0]).double() / 0.5, -1)
    assert torch.allclose(freq, torch.cat([expected, torch.zeros(2, dtype=torch.double)]), atol=0.015)


def test_select_tokens_only_draws_from_the_filtered_set():
    logits = _logits(9, B=1, V=100).expand(2000, 100)
    cfg = GenerationConfig(temperature=1.5, top_k=10, top_p=0.5)
    draws = select_tokens(logits, cfg, torch.Generator().manual_seed(1))
    allowed = torch.isfinite(top_p(top_k(logits[:1] / 1.5, 10), 0.5))[0]
    assert allowed[draws].all()
    assert 1 < len(draws.unique()) <= int(allowed.sum())


@pytest.mark.parametrize("bad", [
    dict(max_new_tokens=0), dict(temperature=-1), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5),
    dict(min_p=-0.1), dict(repetition_penalty=0), dict(num_beams=0), dict(temperature=float("nan")),
    dict(stop_strings=("",)), dict(stop_token_ids=(-1,)), dict(seed=1.5), dict(max_new_tokens=True),
    dict(num_beams=2, stop_strings=("x",)),
])
def test_config_rejects_bad_values(bad):
    with pytest.raises(TinyLMError):
        GenerationConfig(**bad)


def test_config_accepts_lists_and_is_hashable():
    cfg = GenerationConfig(stop_token_ids=[1, 2], stop_strings=["\n\n"])
    assert cfg.stop_token_ids == (1, 2) and cfg.stop_strings == ("\n\n",)
    hash(cfg)
