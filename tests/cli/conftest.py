"""Fixtures shared by the CLI tests of Hugging Face folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def _save_tiny_t5(tokenizer_folder: Path, out: Path, vocab_size: int) -> Path:
    """A one-layer T5 saved to `out`, with the tokenizer files of an exported tinylm model
    (its pad and eos ids become T5's pad, eos and decoder start)."""
    transformers = pytest.importorskip("transformers")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tokenizer_folder)
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=16, num_layers=1, num_heads=2,
        pad_token_id=hf_tok.pad_token_id, eos_token_id=hf_tok.eos_token_id, decoder_start_token_id=hf_tok.pad_token_id))
    t5.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_folder / name, out / name)
    return out


@pytest.fixture(scope="session")
def save_tiny_t5() -> Callable[[Path, Path, int], Path]:
    return _save_tiny_t5
