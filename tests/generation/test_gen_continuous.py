"""ContinuousBatch against the offline engine: rows that join a running batch at any step,
with their own settings, must produce what they produce alone."""

from __future__ import annotations

import random

import pytest

from tinylm.generation import ContinuousBatch, Engine, GenerationConfig, LogitsProcessor
from tinylm.tokenizers import CharTokenizer

TOK = CharTokenizer("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.:;!?\n")


@pytest.fixture
def model(make_model):
    return make_model(seed=3, scale=0.3, vocab_size=TOK.vocab_size, block_size=48, position="rope")


def run(model, arrivals: dict[int, list[tuple[list[list[int]], GenerationConfig]]], processors=None):
    """Add each request at its step; return every group's token lists and texts when all are done."""
    batch = ContinuousBatch(model, TOK)
    groups, step = [], 0
    out: dict[int, dict[int, list[int]]] = {}
    while step <= max(arrivals) or batch.num_rows:
        for prompts, cfg in arrivals.get(step, []):
            proc = (processors or {}).get(len(groups))
            groups.append(batch.add(prompts, cfg, proc, owner=len(groups)))
        for group, event in batch.step():
            if event.token_id is not None:
                out.setdefault(group.owner, {}).setdefault(event.row, []).append(event.token_id)
        step += 1
        assert batch._cache is None or batch._cache.length <= model.config.block_size
    return groups, out


def alone(model, prompts, cfg):
    return Engine(model, TOK).generate(prompts, cfg)


def test_greedy_rows_joining_at_any_step_equal_generation_alone(model):
    rng = random.Random(0)
    requests = {}
    for step in (0, 0, 1, 3, 4, 9, 10, 17):
        length = rng.randint(1, 30)
        prompt = [rng.randrange(4, 60) for _ in range(length)]
        cfg = GenerationConfig(temperature=0, max_new_tokens=rng.randint(3, 25))
        requests.setdefault(step, []).append(([prompt], cfg))
    groups, out = run(model, requests)
    flat = [r for step in sorted(requests) for r in requests[step]]
    for g, (prompts, cfg) in enumerate(flat):
        [ref] = alone(model, prompts, cfg)
        assert out[g][0] == ref.token_ids, g
        assert groups[g].rows[0].text.text == ref.text
        assert groups[g].rows[0].finish_reason == ref.finish_reason


def test_a_longer_prompt_shifts_the_rows_already_running(model):
    short = GenerationConfig(temperature=0, max_new_tokens=20)
    requests = {0: [([[5, 6]], short)], 2: [([list(range(10, 40))], short)], 5: [([[7]], short)]}
    _, out = run(model, requests)
    assert out[0][0] == alone(model, [[5, 6]], short)[0].token_ids
    assert out[1][0] == alone(model, [list(range(10, 40))], short)[0].token_ids
    assert out[2][0] == alone(model, [[7]], short)[0].token_ids


def test_each_request_keeps_its_own_sampling_settings(model):
    seeded = GenerationConfig(temperature=1.3, top_k=20, seed=7, max_new_tokens=12)
    penalized = GenerationConfig(temperature=0, presence_penalty=1.5, frequency_penalty=0.5,
                                 repetition_penalty=1.3, max_new_tokens=12)
    stopped = GenerationConfig(temperature=0, stop_strings=("e", "a"), max_new_tokens=30)
    p1, p2, p3 = [[9, 10, 11], [9, 10, 11]], [[20, 21]], [[30, 31, 32, 33]]
    requests = {0: [(p1, seeded), (p2, penalized)], 2: [(p3, stopped)]}
    groups, out = run(model, requests)
    for g, (prompts, cfg) in enumerate([(p1, seeded), (p2, penalized), (p3, stopped)]):
        refs = alone(model, prompts, cfg)
        for row, ref in enumerate(refs):
            assert out[g][row] == ref.token_ids, (g, row)
            assert groups[g].rows[row].text.text == ref.text


class Only(LogitsProcessor):
    """Allow only the given ids; finished after `n` tokens."""

    def __init__(self, ids, n):
        self.ids, self.n, self.count = ids, n, {}

    def __call__(self, logits, rows, generated):
        keep = logits[:, self.ids].clone()
        logits.fill_(float("-inf"))
        logits[:, self.ids] = keep

    def advance(self, row, token):
        self.count[row] = self.count.get(row, 0) + 1

    def is_finished(self, row):
        return self.count.get(row, 0) >= self.n


def test_a_processor_applies_to_its_own_request_only(model):
    cfg = GenerationConfig(temperature=0, max_new_tokens=10)
    requests = {0: [([[12, 13]], cfg), ([[12, 13]], cfg)]}
    groups, out = run(model, requests, processors={1: Only([5, 6], 4)})
    assert out[0][0] == alone(model, [[12, 13]], cfg)[0].token_ids
    assert set(out[1][0]) <= {5, 6} and len(out[1][0]) == 4
    assert groups[1].rows[0].finish_reason == "stop"


def test_cancel_drops_rows_and_memory_stays_bounded(model):
    batch = ContinuousBatch(model, TOK)
    cfg = GenerationConfig(temperature=0, max_new_tokens=40)
    keep = batch.add([[5] * 20], cfg)
    gone = batch.add([[6, 7]], cfg)
    batch.step()
    batch.cancel(gone)
    assert batch.num_rows == 1 and gone.rows[0].finish_reason == "cancelled"
    assert all(group is keep for group, _ in batch.step())
    # Many short requests through one long-lived batch: the cache never outgrows the context.
    peak = 0
    for i in range(60):
        batch.add([[8 + i % 40] * (1 + i % 7)], GenerationConfig(temperature=0, max_new_tokens=5))
        batch.step()
        peak = max(peak, batch.cache_slots)
    while batch.num_rows:
        batch.step()
    assert batch.cache_slots == 0
    assert peak <= 16 * model.config.block_size


def test_prompts_are_checked(model):
    from tinylm.errors import TinyLMError

    batch = ContinuousBatch(model, TOK)
    with pytest.raises(TinyLMError):
        batch.add([list(range(4, 4 + 49))], GenerationConfig())
    with pytest.raises(TinyLMError):
        batch.add([[]], GenerationConfig())
    assert batch.num_rows == 0


class Alternating(LogitsProcessor):
    """Even ids at even lengths, odd ids at odd ones; the allowed ids are computed by `prepare`
    (during the forward pass) or in the call, when nothing was prepared."""

    def __init__(self, fail_at: int | None = None):
        self.ready: dict[tuple[int, int], list[int]] = {}
        self.fail_at, self.prepared = fail_at, 0

    @staticmethod
    def allowed(length):
        return list(range(4 + length % 2, 60, 2))

    def __call__(self, logits, rows, generated):
        for i, (row, tokens) in enumerate(zip(rows, generated)):
            ids = self.ready.pop((row, len(tokens)), None) or self.allowed(len(tokens))
            keep = logits[i, ids].clone()
            logits[i].fill_(float("-inf"))
            logits[i, ids] = keep

    def prepare(self, rows, generated):
        if self.fail_at is not None and len(generated[0]) >= self.fail_at:
            raise ValueError("prepare failed")
        for row, tokens in zip(rows, generated):
            self.ready[(row, len(tokens))] = self.allowed(len(tokens))
        self.prepared += 1


@pytest.fixture
def fused_model(make_model):
    """A llama-style model prepared for inference: one row decodes on the fused C++ step."""
    from tinylm.transforms import prepare_for_inference

    return prepare_for_inference(make_model(seed=3, scale=0.3, vocab_size=TOK.vocab_size, block_size=48, position="rope",
                                            norm="rmsnorm", ffn="swiglu", bias=False))


@pytest.mark.parametrize("prompts", [[[5, 6, 7]], [[5, 6, 7], [8], [9, 10]]], ids=["1-row", "3-rows"])
def test_prepared_masks_give_the_same_tokens_as_masks_made_in_the_step(fused_model, prompts):
    """On the fused step, one row or several, the processor prepares its masks during the forward
    pass (on the step's thread; this processor hands over no bitmask, so its __call__ applies the
    prepared mask); without overlap it masks in the step. Same tokens either way."""
    cfg = GenerationConfig(temperature=1.0, seed=4, max_new_tokens=12)
    runs = {}
    for overlap in (True, False):
        processor = Alternating()
        results = Engine(fused_model, TOK, overlap_masks=overlap).generate(prompts, cfg, processor)
        runs[overlap] = [r.token_ids for r in results]
        assert processor.prepared == (11 if overlap else 0)  # every step after the first
        assert all(t % 2 == j % 2 for ids in runs[overlap] for j, t in enumerate(ids))
    assert runs[True] == runs[False]


def test_an_error_in_prepare_surfaces_and_the_step_thread_stays_usable(fused_model):
    engine = Engine(fused_model, TOK, overlap_masks=True)
    with pytest.raises(ValueError, match="prepare failed"):
        engine.generate([[5, 6]], GenerationConfig(temperature=0, max_new_tokens=10), Alternating(3))
    assert len(engine.generate([[5, 6]], GenerationConfig(temperature=0, max_new_tokens=10), Alternating())[0].token_ids) == 10


def test_masks_overlap_by_default_only_where_a_core_is_free_for_the_step_thread(fused_model, monkeypatch):
    """overlap_masks=None (the default) overlaps when the process may use more cores than
    torch's threads; an explicit True or False is kept whatever the cores."""
    import os

    import torch

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert ContinuousBatch(fused_model, TOK).overlap_masks is True
        assert ContinuousBatch(fused_model, TOK, overlap_masks=False).overlap_masks is False
        torch.set_num_threads(2)
        assert ContinuousBatch(fused_model, TOK).overlap_masks is False
        assert ContinuousBatch(fused_model, TOK, overlap_masks=True).overlap_masks is True
    finally:
        torch.set_num_threads(before)
