"""Tokenizers: character-level, byte-level BPE and SentencePiece (trained or loaded).

    tok = train_tokenizer("bpe", [Path("input.txt")], vocab_size=512)
    tok = train_tokenizer("sentencepiece", [Path("input.txt")], vocab_size=8000, model_type="bpe")
    tok.save(folder / TOKENIZER_FILENAME)
    tok = load_tokenizer(folder)              # or the .json file, or a SentencePiece .model
    assert tok.decode(tok.encode(text)) == text
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import json
import os
from pathlib import Path

from tinylm.errors import TinyLMError
from tinylm.tokenizers.base import SPECIAL_TOKENS, Tokenizer
from tinylm.tokenizers.bpe import BPETokenizer
from tinylm.tokenizers.char import CharTokenizer
from tinylm.tokenizers.incremental import IncrementalDecoder
from tinylm.tokenizers.spm import SentencePieceTokenizer

__all__ = [
    "TOKENIZER_FILENAME", "SPECIAL_TOKENS", "Tokenizer", "CharTokenizer", "BPETokenizer",
    "SentencePieceTokenizer", "IncrementalDecoder", "train_tokenizer", "load_tokenizer", "read_text",
]

TOKENIZER_FILENAME = "tokenizer.json"  # its name inside checkpoint and dataset folders

_KINDS = {"char": CharTokenizer, "bpe": BPETokenizer, "sentencepiece": SentencePieceTokenizer}


def read_text(path: str | os.PathLike) -> str:
    """A whole UTF-8 text file, with user-facing errors. newline="" keeps "\\r\\n" as is."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise TinyLMError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise TinyLMError(f"expected a text file, got a folder: {path}") from None
    except UnicodeDecodeError as e:
        raise TinyLMError(f"{path} is not UTF-8 text (byte {e.start})") from None


def _texts(texts: Iterable[str | os.PathLike]) -> Iterator[str]:
    # A Path is a file to read, a str is the text itself: "input.txt" as a str is 9 characters.
    if isinstance(texts, (str, os.PathLike)):
        raise TinyLMError("train_tokenizer takes a list of texts or paths, not a single one")
    for t in texts:
        yield read_text(t) if isinstance(t, os.PathLike) else t


def train_tokenizer(
    kind: str, texts: Iterable[str | os.PathLike], vocab_size: int | None = None, model_type: str | None = None,
) -> Tokenizer:
    """Train a "char", "bpe" or "sentencepiece" tokenizer on texts (str) and/or files (pathlib.Path).

    vocab_size is for "bpe" (default 1024, at least 260: 4 specials + 256 bytes) and
    "sentencepiece" (default 8000, the educational-GPT study's); the char vocabulary is
    whatever characters the texts contain. model_type is SentencePiece's: "bpe" (default)
    or "unigram".
    """
    if model_type is not None and kind != "sentencepiece":
        raise TinyLMError("model_type applies to sentencepiece tokenizers")
    if kind == "char":
        if vocab_size is not None:
            raise TinyLMError("vocab_size applies to bpe and sentencepiece tokenizers; a char vocabulary is the characters seen")
        return CharTokenizer.train(_texts(texts))
    if kind == "bpe":
        return BPETokenizer.train(_texts(texts), vocab_size)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(_texts(texts), vocab_size, model_type or "bpe")
    raise TinyLMError(f"unknown tokenizer kind {kind!r} (choose from {', '.join(_KINDS)})")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by tinylm (a JSON file, or a folder holding tokenizer.json),
    or a SentencePiece .model file."""
    path = Path(path)
    if path.is_dir():
        path = path / TOKENIZER_FILENAME
    if path.suffix == ".model":
        return SentencePieceTokenizer.from_file(path)
    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise TinyLMError(f"tokenizer file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinyLMError(f"tokenizer file {path} is not valid JSON: {e}") from None
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise TinyLMError(f"tokenizer file {path} has unknown kind {kind!r} (expected one of {', '.join(_KINDS)})")
    try:
        return _KINDS[kind].from_dict(d)
    except TinyLMError as e:
        raise TinyLMError(f"{path}: {e}") from None
