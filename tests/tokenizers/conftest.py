from pathlib import Path

import pytest

from tinylm.tokenizers import train_tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "../shared/data/tinyshakespeare.txt"

# Plain English with no accents on purpose: Spanish test strings must then go through
# byte fallback (char) or byte-level merges never seen in training (BPE).
ENGLISH = """\
The quick brown fox jumps over the lazy dog. A tokenizer maps text to ids and back again;
the round trip must be exact, spaces, tabs\tand new lines included.
Small models learn from small corpora, one token at a time.
"""


@pytest.fixture(scope="session")
def shakespeare() -> str:
    """The first 100 kB of Tiny Shakespeare: enough to train small tokenizers in a fraction of a second."""
    if not SHAKESPEARE.exists():
        pytest.skip(f"{SHAKESPEARE} not present")
    return SHAKESPEARE.read_text(encoding="utf-8")[:100_000]


@pytest.fixture(scope="session")
def char_tok():
    return train_tokenizer("char", [ENGLISH])


@pytest.fixture(scope="session")
def bpe_tok():
    return train_tokenizer("bpe", [ENGLISH * 3], vocab_size=300)


@pytest.fixture(scope="session", params=["char_tok", "bpe_tok"])
def tok(request):
    """Each tokenizer tinylm trains itself (they share every guarantee)."""
    return request.getfixturevalue(request.param)
