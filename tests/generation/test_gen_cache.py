"""Decoding with the KV cache computes the same logits as running the model on the whole
sequence without it, at every step: every position encoding, MHA and GQA, both attention
paths, and batches of left-padded prompts of different lengths in which rows finish (and
leave the batch) at different steps.

The engine's logits are captured by a LogitsProcessor that records what it is shown.
"""

from __future__ import annotations

import pytest
import torch

from tinylm.generation import Engine, GenerationConfig, LogitsProcessor


class Recorder(LogitsProcessor):
    """Records every row's logits; ends row r after stop_after[r] tokens (exercises batch compaction)."""

    def __init__(self, stop_after: dict[int, int] | None = None) -> None:
        self.seen: dict[int, list[torch.Tensor]] = {}
        self.stop_after = stop_after or {}
        self.count: dict[int, int] = {}

    def __call__(self, logits, rows, generated):
        for row, logit in zip(rows, logits):
            self.seen.setdefault(row, []).append(logit.clone())

    def advance(self, row, token_id):
        self.count[row] = self.count.get(row, 0) + 1

    def is_finished(self, row):
        return self.count.get(row, 0) >= self.stop_after.get(row, 10**9)


def _check_against_full_forward(model, prompts, results, recorder):
    for row, (prompt, result) in enumerate(zip(prompts, results)):
        seq = torch.tensor([prompt + result.token_ids])
        with torch.no_grad():
            full, _ = model(seq)
        steps = recorder.seen[row]
        assert len(steps) == len(result.token_ids)
        for t, cached in enumerate(steps):
            reference = full[0, len(prompt) - 1 + t]
            assert torch.allclose(cached, reference, atol=1e-5), f"row {row} step {t}"


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("n_kv_head", [None, 2, 1])
@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_cached_logits_equal_uncached_single_prompt(make_model, position, n_kv_head, attention):
    model = make_model(seed=1, position=position, n_kv_head=n_kv_head, attention=attention)
    prompts = [[3, 14, 15, 9, 26]]
    recorder = Recorder()
    results = Engine(model).generate(prompts, GenerationConfig(temperature=0, max_new_tokens=12), recorder)
    _check_against_full_forward(model, prompts, results, recorder)


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("n_kv_head", [None, 2])
@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_cached_logits_equal_uncached_left_padded_batch(make_model, position, n_kv_head, attention):
    model = make_model(seed=2, position=position, n_kv_head=n_kv_head, attention=attention)
    prompts = [[5, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9], [40], [11, 12, 13, 14]]
    # Rows end after different numbers of tokens, so the batch shrinks mid-generation.
    recorder = Recorder(stop_after={0: 3, 2: 7})
    cfg = GenerationConfig(temperature=1.0, seed=0, max_new_tokens=10)  # sampled: varied tokens
    results = Engine(model).generate(prompts, cfg, recorder)
    assert [len(r.token_ids) for r in results] == [3, 10, 7, 10]
    _check_against_full_forward(model, prompts, results, recorder)


def test_each_row_of_a_batch_equals_the_row_alone(make_model):
    model = make_model(seed=3, position="rope", n_kv_head=2, scale=0.3)
    prompts = [[7, 7, 1], [2, 9, 4, 4, 30, 31, 5], [60]]
    cfg = GenerationConfig(temperature=0, max_new_tokens=15)
    engine = Engine(model)
    batched = engine.generate(prompts, cfg)
    for prompt, result in zip(prompts, batched):
        [alone] = engine.generate([prompt], cfg)
        assert result.token_ids == alone.token_ids


def test_greedy_equals_a_naive_loop_without_cache(make_model):
    model = make_model(seed=4, position="learned", scale=0.3)
    prompt = [1, 2, 3]
    [result] = Engine(model).generate([prompt], GenerationConfig(temperature=0, max_new_tokens=20))
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    assert result.token_ids == seq[len(prompt):]
