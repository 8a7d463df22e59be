"""Byte-level BPE (the GPT-2 scheme), trained and run by the Hugging Face `tokenizers` library.

Byte-level means the text is first turned into UTF-8 bytes, each byte shown as one of 256
printable stand-in characters (GPT-2's `bytes_to_unicode` table), and BPE merges are
learned over those. Every string is a sequence of bytes and all 256 bytes are in the
initial alphabet, so there is no unknown token; with no normalizer configured, decoding
gives back exactly the input.

The saved file is one JSON: {"kind": "bpe", "special": {...}, "hf": <the tokenizers
library's own tokenizer.json>}, so the HF part can be copied out and used on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
import json
import os

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.tokenizers.base import SPECIAL_TOKENS, Tokenizer

DEFAULT_VOCAB_SIZE = 1024
_MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + 256  # specials + one token per byte


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> stand-in character table, as used by the ByteLevel pre-tokenizer.

    Printable Latin-1 bytes stand for themselves; the others (control characters, space...)
    are shifted to code points 256+ so every token is a visible string.
    """
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        # Without this, user text that spells "<bos>" would be encoded as the special token
        # and lost by decode(skip_special=True). Not stored in the HF JSON, so set it here.
        self.hf.encode_special_tokens = True
        for role, token in SPECIAL_TOKENS.items():
            token_id = hf.token_to_id(token)
            if token_id is None:
                raise TinyLMError(f"BPE tokenizer has no {token} token")
            setattr(self, f"{role}_id", token_id)
        self.vocab_size = hf.get_vocab_size()
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        self._bytes: list[bytes] = []
        for token_id in range(self.vocab_size):
            token = hf.id_to_token(token_id)
            if token_id in self.special_ids:
                self._bytes.append(b"")
            elif token is None or any(c not in byte_of for c in token):
                raise TinyLMError(f"BPE token {token_id} ({token!r}) is not a byte-level token")
            else:
                self._bytes.append(bytes(byte_of[c] for c in token))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int | None = None) -> "BPETokenizer":
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        if vocab_size < _MIN_VOCAB_SIZE:
            raise TinyLMError(f"a byte-level BPE vocabulary needs at least {_MIN_VOCAB_SIZE} tokens, got {vocab_size}")
        texts = list(texts)
        if not any(texts):
            raise TinyLMError("cannot train a tokenizer on an empty corpus")
        hf = HFTokenizer(models.BPE())
        # No normalizer: normalization (NFKC, lowercasing...) is what breaks exact round trips.
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer)
        return cls(hf)

    def _encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[self.check_id(token_id)]

    def token_str(self, token_id: int) -> str:
        return self.hf.id_to_token(self.check_id(token_id))

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {
            "kind": self.kind,
            "special": {role: getattr(self, f"{role}_id") for role in SPECIAL_TOKENS},
            "hf": json.loads(self.hf.to_str()),
        })

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        if not isinstance(d.get("hf"), dict):
            raise TinyLMError("BPE tokenizer file has no 'hf' tokenizer")
        try:
            hf = HFTokenizer.from_str(json.dumps(d["hf"]))
        except Exception as e:  # the Rust library reports all parse errors as plain Exception
            raise TinyLMError(f"BPE tokenizer file is corrupt: {str(e).splitlines()[0]}") from None
        return cls(hf)
