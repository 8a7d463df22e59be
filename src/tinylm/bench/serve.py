"""serve: load test of `tinylm serve` on loopback: aggregate tokens/s at 1, 4 and 16 concurrent clients.

The server runs in this process (uvicorn on 127.0.0.1, a free port) with a random-weight
`llama-style-small` model (6 layers, 384 dims, context 512, about 11M parameters; speed does not depend on the
weight values) and a character tokenizer, saved and loaded as a real checkpoint. Each
client is a thread with its own HTTP connection that sends a fixed number of
/v1/completions requests one after another: a 16-character prompt, 64 new tokens sampled
at temperature 0.8 with ignore_eos (every request costs the same). For each concurrency
level: aggregate completion tokens/s over the level's wall time, p50/p99 request latency,
errors (any non-200 or a short completion), and the process's resident memory after it.
The 16-client level is then run a second time: bounded memory does not grow again.

Goal: 16 clients give >= 4x the tokens/s of one (the continuous batch reads the weights
once per step for all rows), 0 errors, and memory that does not grow with the load.
"""

from __future__ import annotations

import random
import string
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

LEVELS = (1, 4, 16)
PROMPT_CHARS = 16


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return round(kb / 1024, 1)
    except (OSError, StopIteration):
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _checkpoint(folder: Path) -> Path:
    from tinylm.checkpoint import save_checkpoint
    from tinylm.model import GPT
    from tinylm.presets import model_config
    from tinylm.tokenizers import CharTokenizer

    tok = CharTokenizer(string.printable)
    torch.manual_seed(0)
    save_checkpoint(folder, GPT(model_config("llama-style-small", vocab_size=tok.vocab_size)), tokenizer=tok)
    return folder


def _level(url: str, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=url, timeout=600) as http:
            start.wait()
            for _ in range(requests):
                prompt = "".join(rng.choice(string.ascii_letters + " ") for _ in range(PROMPT_CHARS))
                body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "ignore_eos": True}
                t0 = time.perf_counter()
                try:
                    r = http.post("/v1/completions", json=body)
                    got = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
                    problem = None if got == max_tokens else f"status {r.status_code}, {got} tokens"
                except Exception as e:  # noqa: BLE001 - counted as an error, never aborts the load test
                    got, problem = 0, f"{type(e).__name__}: {e}"
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    tokens[0] += got
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": clients * requests,
        "tokens": tokens[0],
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens[0] / wall, 1),
        "latency_p50_s": round(_percentile(latencies, 0.5), 3),
        "latency_p99_s": round(_percentile(latencies, 0.99), 3),
        "errors": len(errors),
        "error_examples": errors[:3],
        "rss_mb_after": _rss_mb(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    import tinylm
    from tinylm.serve import create_app

    requests = 2 if quick else 8
    max_tokens = 16 if quick else 64
    rss_start = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        lm = tinylm.load(_checkpoint(Path(tmp) / "model"))
    server = _Server(create_app(lm, model_name="bench"))
    try:
        _level(server.url, 1, 1, 4)  # warm-up: first-call allocations and lazy imports
        rss_warm = _rss_mb()
        levels = [_level(server.url, c, requests, max_tokens) for c in LEVELS]
        # The same load again: memory that is bounded does not grow a second time.
        again = _level(server.url, LEVELS[-1], requests, max_tokens)
        stats = server.app.state.scheduler.stats
        peak_rows = stats.peak_rows
    finally:
        server.stop()
    one = levels[0]["tokens_per_s"]
    return {
        "model": {"preset": "llama-style-small", "parameters": lm.model.num_params(), "tokenizer": "char"},
        "requests_per_client": requests,
        "max_tokens": max_tokens,
        "prompt_chars": PROMPT_CHARS,
        "levels": levels,
        "speedup_16_vs_1": round(levels[-1]["tokens_per_s"] / one, 2) if one else None,
        "errors": sum(level["errors"] for level in [*levels, again]),
        "second_16_round_tokens_per_s": again["tokens_per_s"],
        "peak_batch_rows": peak_rows,
        "rss_mb": {"start": rss_start, "after_warmup": rss_warm, "after_16": levels[-1]["rss_mb_after"],
                   "after_second_16": again["rss_mb_after"]},
        "goal": {"speedup_16_vs_1": ">= 4", "errors": "0", "memory": "bounded: after_second_16 close to after_16"},
        "anchor": "the same server with 1 client, same run",
    }


class _Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
