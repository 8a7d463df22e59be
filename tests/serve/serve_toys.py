"""A tiny random-weight checkpoint (char tokenizer) and a live server on a loopback port.

Weights are redrawn with std 0.3 so greedy decoding has clear winners (an untrained model
at std 0.02 is almost uniform: argmax ties would make batched-vs-alone comparisons flaky).
The output rows of the special and byte-fallback ids are zeroed: their logit is then 0
while some character's is almost surely positive, so greedy text is printable characters
(what a browser test can read back exactly).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

from tinylm.checkpoint import save_checkpoint
from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.tokenizers import CharTokenizer

TEXT = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.:;!?\n"
CODE2_EXTRA = {"task": "code2", "code2": {"data_preset": "thesis", "unit": "line"}}


def build_model(vocab_size: int, seed: int = 0, block_size: int = 64, extra: dict | None = None) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=4, n_embd=32,
                      position="rope", norm="rmsnorm", ffn="swiglu", bias=False, tie_weights=False,
                      extra=extra or {})
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
        model.lm_head.weight[:4] = 0.0
        model.lm_head.weight[4 + len(set(TEXT)) :] = 0.0
    return model


def make_checkpoint(folder: Path, seed: int = 0, block_size: int = 64, extra: dict | None = None) -> Path:
    tok = CharTokenizer(TEXT)
    save_checkpoint(folder, build_model(tok.vocab_size, seed, block_size, extra), tokenizer=tok)
    return folder


class LiveServer:
    """uvicorn in a background thread on 127.0.0.1, port chosen by the OS."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)

