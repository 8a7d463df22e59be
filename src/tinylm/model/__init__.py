"""The model: a decoder-only transformer and its KV cache, and the LSTM baseline."""

from __future__ import annotations

from tinylm.config import ModelConfig
from tinylm.model.gpt import GPT
from tinylm.model.kv_cache import KVCache
from tinylm.model.lstm import LSTMLM, LSTMState


def build_model(cfg: ModelConfig) -> GPT | LSTMLM:
    """The model a config describes: the transformer, or the LSTM baseline (arch="lstm")."""
    return LSTMLM(cfg) if cfg.arch == "lstm" else GPT(cfg)


__all__ = ["GPT", "KVCache", "LSTMLM", "LSTMState", "build_model"]
