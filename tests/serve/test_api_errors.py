"""Raw malformed requests: every one gets a 4xx with a JSON error body, and the server lives on."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OK = {"prompt": "ab", "max_tokens": 3}

BAD_BODIES = [
    ({"max_tokens": 3}, "prompt"),
    ({**OK, "temperature": "0.5"}, "temperature"),
    ({**OK, "temperature": -0.1}, "temperature"),
    ({**OK, "temperature": 2.5}, "temperature"),
    ({**OK, "top_p": 0}, "top_p"),
    ({**OK, "top_p": 1.5}, "top_p"),
    ({**OK, "top_k": 1.5}, "top_k"),
    ({**OK, "top_k": True}, "top_k"),
    ({**OK, "top_k": -2}, "top_k"),
    ({**OK, "min_p": 2}, "min_p"),
    ({**OK, "max_tokens": 0}, "max_tokens"),
    ({**OK, "max_tokens": 10**6}, "max_tokens"),
    ({**OK, "max_tokens": "many"}, "max_tokens"),
    ({**OK, "n": 0}, "n"),
    ({**OK, "n": 100}, "n"),
    ({**OK, "stop": [""]}, "stop"),
    ({**OK, "stop": ["x"] * 20}, "stop"),
    ({**OK, "stop": 5}, "stop"),
    ({**OK, "seed": -1}, "seed"),
    ({**OK, "seed": 1.5}, "seed"),
    ({**OK, "presence_penalty": 3}, "presence_penalty"),
    ({**OK, "frequency_penalty": -3}, "frequency_penalty"),
    ({**OK, "repetition_penalty": 0}, "repetition_penalty"),
    ({**OK, "stream": "yes"}, "stream"),
    ({**OK, "temprature": 1}, "temprature"),
    ({**OK, "logprobs": 2}, "logprobs"),
    ({**OK, "suffix": "x"}, "suffix"),
    ({**OK, "best_of": 3}, "best_of"),
    ({**OK, "stream_options": {"include_usage": True}}, "stream_options"),
    ({**OK, "grammar": 'root ::= "a"', "regex": "a"}, "regex"),
    ({**OK, "response_format": {"type": "xml"}}, "response_format"),
    ({**OK, "response_format": {"type": "json_schema"}}, "response_format"),
    ({"prompt": "x" * 200}, "prompt"),
    ({"prompt": ["a"] * 65}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [1, 2]}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({**OK, "prompt": ["a", "b"], "n": 16, "max_tokens": 2, "best_of": 16}, None),  # 32 rows: over no limit here
]


def post(server, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/v1/completions", timeout=30, **kwargs)


def check_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"]
    return error


@pytest.mark.parametrize("body, param", BAD_BODIES)
def test_bad_parameters_are_400_naming_the_parameter(server, body, param):
    r = post(server, json=body)
    if param is None:
        assert r.status_code == 200, r.text
        return
    error = check_error(r, 400)
    assert param in (error["param"] or "") or param in error["message"], error


@pytest.mark.parametrize("content, headers", [
    (b"{bad json", {"content-type": "application/json"}),
    (b"[1, 2]", {"content-type": "application/json"}),
    (b'"text"', {"content-type": "application/json"}),
    (b"", {"content-type": "application/json"}),
    (b'{"prompt": "a", "temperature": NaN}', {"content-type": "application/json"}),
    (b'{"prompt": "a", "temperature": Infinity}', {"content-type": "application/json"}),
    (json.dumps(OK).encode(), {"content-type": "text/plain"}),
    (b"\xff\xfe\x00", {"content-type": "application/json"}),
])
def test_malformed_bodies(server, content, headers):
    check_error(post(server, content=content, headers=headers), 400)


def test_bodies_over_the_limit_are_413(server):
    big = json.dumps({"prompt": "a" * (100 * 1024)}).encode()
    check_error(post(server, content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b" " * 1024

    check_error(post(server, content=chunks(), headers={"content-type": "application/json"}), 413)


def test_routes_methods_and_models(server):
    check_error(httpx.get(server.url + "/v1/nothing"), 404)
    check_error(httpx.get(server.url + "/v1/completions"), 405)
    error = check_error(post(server, json={**OK, "model": "gpt-4"}), 404)
    assert error["code"] == "model_not_found"
    check_error(httpx.post(server.url + "/v1/code2/translate", json={"text": "Suma r1 y r2"}), 400)  # not CODE-2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(
    st.sampled_from(["prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "stream",
                     "presence_penalty", "echo", "min_p", "x"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70), st.floats(allow_nan=False, allow_infinity=False, width=32),
              st.text(max_size=8), st.lists(st.text(max_size=3), max_size=3)),
    max_size=6,
))
def test_random_bodies_never_crash_the_server(server, body):
    r = post(server, json=body)
    assert r.status_code in (200, 400, 404), (body, r.status_code, r.text)
    if r.status_code != 200:
        check_error(r, r.status_code)


def test_the_server_is_still_healthy_after_all_that(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert post(server, json=OK).json()["choices"][0]["finish_reason"] in ("length", "stop")
