"""The scheduler thread survives what requests do to it."""

from __future__ import annotations

import queue
import time

import pytest

from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig, LogitsProcessor
from tinylm.serve.scheduler import Scheduler, ServerBusy


class Broken(LogitsProcessor):
    def __call__(self, logits, rows, generated):
        raise RuntimeError("boom")


def run(scheduler, prompts, config, processor=None, timeout=30):
    """Submit and wait; returns the texts, or the exception the request ended with."""
    q: queue.Queue = queue.Queue()
    scheduler.submit(prompts, config, q.put, processor)
    texts, open_rows = [""] * len(prompts), len(prompts)
    while open_rows:
        item = q.get(timeout=timeout)
        if isinstance(item, BaseException):
            return item
        for e in item:
            texts[e.row] += e.text
            open_rows -= e.finish_reason is not None
    return texts


def test_a_failing_step_fails_its_batch_and_the_loop_goes_on(lm):
    s = Scheduler(lm, max_rows=8)
    try:
        greedy = GenerationConfig(temperature=0, max_new_tokens=5)
        error = run(s, [lm.encode_prompts(["a"])[0]], greedy, Broken())
        assert isinstance(error, RuntimeError) and s.stats.failed == 1
        bad = run(s, [[10**6]], greedy)  # not a token id: refused when admitted
        assert isinstance(bad, TinyLMError)
        assert run(s, [lm.encode_prompts(["hi"])[0]], greedy) == [lm.generate("hi", temperature=0.0, max_new_tokens=5)]
        assert s.alive
    finally:
        s.close()
    assert not s.alive


def test_limits(lm):
    s = Scheduler(lm, max_rows=2, max_waiting=1)
    try:
        with pytest.raises(TinyLMError, match="at most 2"):
            s.submit([[5]] * 3, GenerationConfig(), lambda item: None)
        long = GenerationConfig(max_new_tokens=60, ignore_eos=True)
        s.submit([[5], [6]], long, lambda item: None)  # fills the batch
        deadline = time.monotonic() + 10
        while s.running_rows < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        s.submit([[7], [8]], long, lambda item: None)  # waits for room
        with pytest.raises(ServerBusy, match="already waiting"):
            s.submit([[9], [10]], long, lambda item: None)
    finally:
        s.close()
