"""Random (untrained) models and tokenizers for the constrained-decoding tests.

An untrained model is the harshest test of a grammar mask: it has no idea of the
language, so whatever comes out grammatical comes from the mask alone.
"""

from __future__ import annotations

import string

import torch

from tinylm.api import LanguageModel
from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.tokenizers import CharTokenizer, Tokenizer

CHARS = string.printable.replace("\x0b", "").replace("\x0c", "")


def random_lm(tokenizer: Tokenizer, seed: int = 0, vocab_size: int | None = None, block_size: int = 128) -> LanguageModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab_size or tokenizer.vocab_size, block_size=block_size, n_layer=2, n_head=2,
                      n_embd=32)
    return LanguageModel(GPT(cfg).eval(), tokenizer)


def random_llama_lm(tokenizer: Tokenizer, seed: int = 0) -> LanguageModel:
    """A llama-style model prepared for inference: at batch 1 the engine decodes it with the
    fused C++ step (tinylm.transforms.decode_step), and with a grammar on the step's thread."""
    from tinylm.transforms import prepare_for_inference

    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32,
                      position="rope", norm="rmsnorm", ffn="swiglu", bias=False)
    return LanguageModel(prepare_for_inference(GPT(cfg).eval()), tokenizer)


def char_tokenizer() -> CharTokenizer:
    return CharTokenizer(CHARS)


def bpe_tokenizer() -> Tokenizer:
    """Byte-level BPE learned on CODE-2 text, arithmetic and JSON: multi-character tokens."""
    from tinylm.tasks.code2 import generate_examples
    from tinylm.tokenizers import train_tokenizer

    texts = [f"{e.input}\n{e.output}" for e in generate_examples("full", 300, 0)]
    texts += ["(9*15)==(9*10+9*5)==(135*1)", '{"name": "Ada", "age": 36, "tags": ["x"]}']
    return train_tokenizer("bpe", texts, 400)
