"""The server driven by the official `openai` client: what it answers equals the offline engine."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import openai
import pytest

import tinylm
from tinylm.generation import Engine, GenerationConfig


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def greedy(lm, prompt, n, **extra):
    return lm.complete([prompt], temperature=0.0, max_new_tokens=n, **extra)[0]


def test_models(client):
    [model] = client.models.list().data
    assert model.id == "tiny" and model.owned_by == "tinylm"
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_greedy_completion_equals_the_offline_engine(client, lm):
    r = client.completions.create(model="tiny", prompt="Hello there", max_tokens=20, temperature=0)
    ref = greedy(lm, "Hello there", 20)
    assert r.choices[0].text == ref.text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == len(lm.tokenizer.encode("Hello there"))
    assert r.usage.completion_tokens == 20 and r.usage.total_tokens == r.usage.prompt_tokens + 20


def test_stream_pieces_add_up_to_the_completion(client, lm):
    chunks = list(client.completions.create(model="tiny", prompt="abc", max_tokens=25, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == greedy(lm, "abc", 25).text
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "length" and all(r is None for r in reasons[:-1])
    assert len(chunks) > 5  # streamed piece by piece, not in one block
    assert chunks[-1].usage.completion_tokens == 25 and not chunks[-1].choices


def test_seeded_choices_are_reproducible_and_equal_the_engine(client, lm):
    kwargs = dict(model="tiny", prompt="xyz", max_tokens=12, temperature=1.2, top_k=30, seed=123, n=3)
    r1 = client.completions.create(**{k: v for k, v in kwargs.items() if k != "top_k"}, extra_body={"top_k": 30})
    r2 = client.completions.create(**{k: v for k, v in kwargs.items() if k != "top_k"}, extra_body={"top_k": 30})
    texts = [c.text for c in sorted(r1.choices, key=lambda c: c.index)]
    assert texts == [c.text for c in sorted(r2.choices, key=lambda c: c.index)]
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.2, top_k=30, seed=123)
    ids = lm.encode_prompts(["xyz"])[0]
    assert texts == [r.text for r in Engine(lm.model, lm.tokenizer).generate([ids] * 3, cfg)]
    assert len(set(texts)) > 1


def test_several_prompts_stop_and_echo(client, lm):
    ref = [greedy(lm, p, 30, stop_strings=("e",)) for p in ("one", "two")]
    r = client.completions.create(model="tiny", prompt=["one", "two"], max_tokens=30, temperature=0, stop="e",
                                  echo=True)
    assert [c.text for c in r.choices] == ["one" + ref[0].text, "two" + ref[1].text]
    assert all("e" not in c.text[3:] for c in r.choices)


def test_requests_arriving_together_are_batched_and_equal_decoding_alone(server, lm):
    prompts = [f"request {i} " + "q" * i for i in range(8)]
    lengths = [20 + 3 * i for i in range(8)]
    results: dict[int, str] = {}
    steps_before = _health(server)["steps"]

    def one(i: int) -> None:
        r = httpx.post(server.url + "/v1/completions", timeout=60,
                       json={"prompt": prompts[i], "max_tokens": lengths[i], "temperature": 0})
        results[i] = r.json()["choices"][0]["text"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(8):
        assert results[i] == greedy(lm, prompts[i], lengths[i]).text, i
    # Decoded together: far fewer steps than the 8 requests' tokens one after another.
    assert _health(server)["steps"] - steps_before < sum(lengths) * 0.75


def test_structured_output(client, lm):
    pytest.importorskip("xgrammar")
    schema = {"type": "string", "enum": ["yes", "no"]}
    r = client.completions.create(model="tiny", prompt="ok?", max_tokens=10, temperature=1.0, seed=1, n=2,
                                  extra_body={"response_format": {"type": "json_schema",
                                                                  "json_schema": {"name": "a", "schema": schema}}})
    assert all(json.loads(c.text) in ("yes", "no") and c.finish_reason == "stop" for c in r.choices)
    r = client.completions.create(model="tiny", prompt="ok?", max_tokens=10, temperature=1.0,
                                  extra_body={"regex": "[ab]{3}"})
    assert re.fullmatch("[ab]{3}", r.choices[0].text)
    r = client.completions.create(model="tiny", prompt="ok?", max_tokens=10, temperature=0,
                                  extra_body={"grammar": 'root ::= "x" [0-9] | "yy"'})
    assert re.fullmatch("x[0-9]|yy", r.choices[0].text)
    with pytest.raises(openai.BadRequestError, match="grammar"):
        client.completions.create(model="tiny", prompt="a", extra_body={"grammar": "root ::= undefined_rule"})


def _health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


def _wait_idle(server, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = _health(server)
        if h["running_rows"] == 0 and h["waiting"] == 0:
            return h
        time.sleep(0.05)
    raise AssertionError(f"the server still decodes: {h}")


def test_a_client_that_disconnects_mid_stream_frees_its_rows(long_server):
    scheduler_stats = lambda: httpx.get(long_server.url + "/health").json()  # noqa: E731
    cancelled = scheduler_stats()["cancelled"]
    body = {"prompt": "a", "max_tokens": 1000, "temperature": 1.0, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", long_server.url + "/v1/completions", json=body, timeout=30) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        assert scheduler_stats()["running_rows"] == 1
    assert _wait_idle(long_server)["cancelled"] == cancelled + 1
    # Non-streaming too: the client gives up (timeout) and the server notices. 32 rows of
    # 1000 tokens take seconds, so the request is still running when the server next looks.
    body |= {"stream": False, "prompt": ["a"] * 32}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(long_server.url + "/v1/completions", json=body, timeout=0.3)
    assert _wait_idle(long_server)["cancelled"] == cancelled + 2


def test_api_key(checkpoint):
    from serve_toys import LiveServer

    from tinylm.serve import create_app

    live = LiveServer(create_app(tinylm.load(checkpoint), model_name="k", api_key="sesame"))
    try:
        good = openai.OpenAI(base_url=live.url + "/v1", api_key="sesame", max_retries=0)
        bad = openai.OpenAI(base_url=live.url + "/v1", api_key="wrong", max_retries=0)
        assert good.completions.create(model="k", prompt="a", max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            bad.completions.create(model="k", prompt="a", max_tokens=2)
        r = httpx.post(live.url + "/v1/completions", json={"prompt": "a"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(live.url + "/health").status_code == 200
    finally:
        live.stop()
