"""`tinylm chat` fed through stdin, and `tinylm serve` as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

import tinylm

from serve_toys import make_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tinylm_cli(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinylm.cli.main", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    make_checkpoint(root / "full", seed=0)
    make_checkpoint(root / "compressed", seed=4)
    return root


def test_chat_session(variants):
    session = "\n".join([
        "2",  # the menu lists compressed, full: pick full
        "Hello",
        "/set temperature nope",
        "/set top_p 0.9",
        "/set bogus 1",
        "/settings",
        "ab\\", "cd",
        '"""', "x", "y", '"""',
        "/reset",
        "/help",
        "/quit",
    ]) + "\n"
    r = tinylm_cli("chat", str(variants), "--temperature", "0", "--max-new-tokens", "6", stdin=session)
    assert r.returncode == 0, r.stderr
    lm = tinylm.load(variants / "full")
    out = r.stdout
    assert "1. compressed" in out and "2. full" in out
    # The first turn is the prompt alone; later turns continue the transcript.
    first = lm.generate("Hello", temperature=0.0, max_new_tokens=6)
    assert f"> {first}\n[6 tokens" in out
    second = lm.generate("Hello" + first + "\nab\ncd", temperature=0.0, max_new_tokens=6)
    assert second in out
    third = lm.generate("Hello" + first + "\nab\ncd" + second + "\nx\ny", temperature=0.0, max_new_tokens=6)
    assert third in out
    assert "error: temperature must be a number" in out and "error: unknown setting 'bogus'" in out
    assert "top_p=0.9" in out and "tokens/s" in out and "(transcript cleared)" in out and "/grammar" in out


def test_chat_variant_flag_and_errors(variants, tmp_path):
    r = tinylm_cli("chat", str(variants), "--variant", "full", "--max-new-tokens", "2", stdin="hi\n")
    assert r.returncode == 0 and "holds 2 checkpoints" not in r.stdout
    r = tinylm_cli("chat", str(variants), "--variant", "nope", stdin="")
    assert r.returncode == 2 and r.stderr.startswith("tinylm: error: --variant 'nope'") and "Traceback" not in r.stderr
    r = tinylm_cli("chat", str(tmp_path), stdin="")
    assert r.returncode == 2 and "holds no checkpoint" in r.stderr


def test_chat_grammar(variants):
    pytest.importorskip("xgrammar")
    r = tinylm_cli("chat", str(variants / "full"), "--temperature", "0", "--max-new-tokens", "30",
                   stdin="/grammar json\n{\n/grammar off\n/grammar no-such-grammar\n")
    assert r.returncode == 0, r.stderr
    assert "grammar: json" in r.stdout and "grammar off" in r.stdout and "error: grammar 'no-such-grammar'" in r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command(variants):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tinylm.cli.main", "serve", str(variants / "full"), "--port",
                             str(port), "--api-key", "k"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.2)
        assert health.json()["model"] == "full"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "a", "max_tokens": 3},
                       headers={"Authorization": "Bearer k"}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        # A second server on the same port: one line, exit 2.
        taken = tinylm_cli("serve", str(variants / "full"), "--port", str(port))
        assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr
    finally:
        proc.terminate()
        proc.wait(20)
    r = tinylm_cli("serve", str(variants / "full"), "--port", "70000")
    assert r.returncode == 2 and "--port" in r.stderr
