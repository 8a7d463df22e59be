"""The model: a decoder-only transformer and its KV cache."""

from tinylm.model.gpt import GPT
from tinylm.model.kv_cache import KVCache

__all__ = ["GPT", "KVCache"]
