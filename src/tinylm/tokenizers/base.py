"""The interface every tinylm tokenizer implements.

A tokenizer maps text to integer ids and back. tinylm requires one property of all of
them: `decode(encode(text)) == text` for any text the tokenizer can represent. The
character and byte-level BPE tokenizers represent *every* Unicode string (no
normalization, and a way to fall back to raw UTF-8 bytes), so nothing the user types is
ever lost - "vacía" can never come back as "vaca".

Decoding is defined once, here, in terms of `token_bytes`: the text of a sequence of ids
is the concatenation of the bytes each id contributes, read as UTF-8. The streaming
`IncrementalDecoder` and grammar-constrained decoding (which needs every token's bytes)
therefore agree with `decode` by construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
import os

from tinylm.errors import TinyLMError

# The four special tokens every tinylm tokenizer has, by role. Their strings only show up
# when decoding with skip_special=False; user text spelling "<bos>" is encoded as plain text.
SPECIAL_TOKENS: dict[str, str] = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "sep": "<sep>"}


def check_text(text: str) -> str:
    """Reject strings that are not valid Unicode text (lone surrogates cannot be UTF-8)."""
    if not isinstance(text, str):
        raise TinyLMError(f"expected text (str), got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TinyLMError(f"text is not valid Unicode: {e.reason} at position {e.start}") from None
    return text


class Tokenizer(ABC):
    """Text <-> ids. Subclasses set the attributes below in their constructor."""

    kind: str  # "char" | "bpe" | "sentencepiece": the "kind" field of the saved JSON
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    sep_id: int  # separates prompt and completion in paired data

    @property
    def special_ids(self) -> set[int]:
        """Ids that carry no text (decode drops them unless skip_special=False)."""
        return {self.pad_id, self.bos_id, self.eos_id, self.sep_id}

    @abstractmethod
    def _encode(self, text: str) -> list[int]:
        """Ids of `text` alone, no special tokens."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The exact UTF-8 bytes this token adds to decoded text; b"" for special tokens.

        A single token may hold part of a character (byte fallback), so this is bytes, not str.
        """

    @abstractmethod
    def token_str(self, token_id: int) -> str:
        """A readable name for the token, e.g. "<bos>" for specials (used by decode(skip_special=False))."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as one JSON file that `load_tokenizer` reads back."""

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._encode(check_text(text))
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Concatenate the tokens' bytes and read them as UTF-8.

        Invalid UTF-8 (a model may emit half a character) becomes U+FFFD instead of an
        error, so decoding any id sequence succeeds.
        """
        specials = self.special_ids
        parts: list[bytes] = []
        for i in ids:
            i = self.check_id(i)
            if i in specials:
                if not skip_special:
                    parts.append(self.token_str(i).encode("utf-8"))
            else:
                parts.append(self.token_bytes(i))
        return b"".join(parts).decode("utf-8", errors="replace")

    def check_id(self, token_id: int) -> int:
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise TinyLMError(f"token id {token_id} is outside the vocabulary (size {self.vocab_size})")
        return token_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, vocab_size={self.vocab_size})"
