"""Character-level tokenizer: one id per character, the simplest tokenizer that works.

Vocabulary layout (ids in this order):
  0..3               <pad> <bos> <eos> <sep>
  4..4+C-1           the C distinct characters seen in training, sorted by code point
  4+C..4+C+255       the 256 byte values (byte fallback)

A character that was not in the training text is encoded as its UTF-8 bytes, one byte
token each. Decoding concatenates bytes, so the bytes of an unseen "ñ" (0xC3 0xB1) come
back as "ñ": any Unicode text round-trips exactly, whatever the training text was. The
cost is 256 ids that a model trained on plain English rarely sees.
"""

from __future__ import annotations

from collections.abc import Iterable
import os

from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.tokenizers.base import SPECIAL_TOKENS, Tokenizer

_SPECIAL_ORDER = ("pad", "bos", "eos", "sep")


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise TinyLMError("a char tokenizer's vocabulary must be single characters")
        self.chars = chars
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = range(len(_SPECIAL_ORDER))
        first_char = len(_SPECIAL_ORDER)
        self.byte_offset = first_char + len(chars)  # id of byte 0x00
        self.vocab_size = self.byte_offset + 256
        self._char_to_id = {c: first_char + i for i, c in enumerate(chars)}
        self._bytes = [b""] * first_char + [c.encode("utf-8") for c in chars] + [bytes([b]) for b in range(256)]

    @classmethod
    def train(cls, texts: Iterable[str]) -> "CharTokenizer":
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise TinyLMError("cannot train a tokenizer on an empty corpus")
        return cls(chars)

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for c in text:
            i = self._char_to_id.get(c)
            if i is not None:
                ids.append(i)
            else:
                ids.extend(self.byte_offset + b for b in c.encode("utf-8"))
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[self.check_id(token_id)]

    def token_str(self, token_id: int) -> str:
        token_id = self.check_id(token_id)
        if token_id < len(_SPECIAL_ORDER):
            return SPECIAL_TOKENS[_SPECIAL_ORDER[token_id]]
        if token_id >= self.byte_offset:
            return f"<0x{token_id - self.byte_offset:02X}>"
        return self.chars[token_id - len(_SPECIAL_ORDER)]

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {
            "kind": self.kind,
            "special": {role: getattr(self, f"{role}_id") for role in _SPECIAL_ORDER},
            "chars": "".join(self.chars),
        })

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        chars = d.get("chars")
        if not isinstance(chars, str):
            raise TinyLMError("char tokenizer file has no 'chars' string")
        if len(set(chars)) != len(chars):
            raise TinyLMError("char tokenizer file lists a character twice")
        return cls(chars)
