"""Session-wide tokenizers for the constrained-decoding tests (constrain_models.py builds them)."""

from __future__ import annotations

import pytest

import constrain_models


@pytest.fixture(scope="session")
def char_tokenizer():
    return constrain_models.char_tokenizer()


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return constrain_models.bpe_tokenizer()
