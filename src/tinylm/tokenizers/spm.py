"""SentencePiece tokenizers: trained here (`train_tokenizer("sentencepiece", ...)`) or loaded
from an existing `.model` (e.g. the educational-GPT study's tokenizer).

Either way the model is wrapped so the rest of the package sees the same `Tokenizer`
interface. The educational-GPT study's models use pad/unk/bos/eos = 0/1/2/3, BPE and
byte_fallback. Roles a loaded model lacks (most models have no separator, some no pad) get
new ids appended after the SentencePiece vocabulary, so `vocab_size` can exceed the
model's piece count; a model trained here has all of them, so its `vocab_size` is exactly
the one asked for.

Round-trip caveat: SentencePiece normalizes text before encoding. With its default rule
(`nmt_nfkc`) "ﬁ" becomes "fi", runs of spaces collapse and newlines become spaces; only a
model trained with `normalization_rule_name="identity"`, `remove_extra_whitespaces=False`
and byte_fallback round-trips arbitrary text - except "▁" (U+2581), which SentencePiece
uses to mean a space. The char and BPE tokenizers have no such caveat.

Training settings (`train_sentencepiece`) and why they differ from the educational-GPT
study's: the study trains with NFKC normalization and `remove_extra_whitespaces=True`
(and notes itself that NFKC "could be avoided" on this corpus). tinylm requires
`decode(encode(text)) == text` of every tokenizer, so it keeps the study's vocabulary
(8000), model type (BPE), special ids (0/1/2/3), `character_coverage=1.0` and
byte_fallback, but trains with identity normalization, no whitespace removal and no
dummy prefix (so a token's bytes are exactly what it adds to the text, as streaming and
grammar masks assume). The newline is a piece of its own (a user-defined symbol):
SentencePiece learns from one line at a time and would otherwise leave every line break
to the byte-fallback token <0x0A>. Training runs in memory on one thread: the same text
gives the same model, byte for byte (a 2-thread training gave a different model than a
1-thread one).

Saved as one JSON: {"kind": "sentencepiece", "special": {...}, "model": <base64 of the .model>}.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
import io
import os
from pathlib import Path

import sentencepiece

from tinylm.errors import TinyLMError
from tinylm.atomic_files import write_json
from tinylm.tokenizers.base import SPECIAL_TOKENS, Tokenizer

_SPACE = "\u2581"  # "▁", SentencePiece's visible space
DEFAULT_VOCAB_SIZE = 8000  # the educational-GPT study's final vocabulary
MODEL_TYPES = ("bpe", "unigram")


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        try:
            self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        except (RuntimeError, TypeError) as e:
            raise TinyLMError(f"not a valid SentencePiece model: {str(e).splitlines()[0]}") from None
        n = self.sp.get_piece_size()
        self.extra_tokens: list[str] = []  # roles the model lacks, as ids n, n+1, ...
        model_ids = {"pad": self.sp.pad_id(), "bos": self.sp.bos_id(), "eos": self.sp.eos_id(), "sep": self._piece_id("<sep>")}
        for role, token_id in model_ids.items():
            if token_id < 0:
                token_id = n + len(self.extra_tokens)
                self.extra_tokens.append(SPECIAL_TOKENS[role])
            setattr(self, f"{role}_id", token_id)
        self.vocab_size = n + len(self.extra_tokens)
        self._special_ids = super().special_ids | {i for i in range(n) if self.sp.is_control(i)}
        self._bytes = [self._piece_bytes(i) for i in range(n)] + [b""] * len(self.extra_tokens)
        # With add_dummy_prefix (the default) "Hi" is encoded as "▁Hi" and decode drops
        # that first space again; detect the option from its effect.
        self.dummy_prefix = self.sp.encode("a", out_type=str)[0].startswith(_SPACE)
        self._space_first = {i for i in range(n) if self.sp.id_to_piece(i).startswith(_SPACE)
                             and not (self.sp.is_byte(i) or self.sp.is_unknown(i) or self.sp.is_control(i))}

    def _piece_id(self, piece: str) -> int:
        i = self.sp.piece_to_id(piece)
        return i if self.sp.id_to_piece(i) == piece else -1  # unknown pieces map to unk_id

    def _piece_bytes(self, i: int) -> bytes:
        if self.sp.is_control(i):
            return b""
        if self.sp.is_byte(i):
            return bytes([int(self.sp.id_to_piece(i)[3:5], 16)])  # "<0xC3>"
        if self.sp.is_unknown(i):
            return self.sp.decode([i]).encode("utf-8")  # " ⁇ " by default
        return self.sp.id_to_piece(i).replace(_SPACE, " ").encode("utf-8")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int | None = None, model_type: str = "bpe") -> "SentencePieceTokenizer":
        """Train a round-tripping SentencePiece model on `texts` (settings: module docstring)."""
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        if model_type not in MODEL_TYPES:
            raise TinyLMError(f"SentencePiece model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        lines = [line for text in texts for line in text.splitlines()]
        if not any(lines):
            raise TinyLMError("cannot train a tokenizer on an empty corpus")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
                character_coverage=1.0, byte_fallback=True,
                normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
                pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                pad_piece=SPECIAL_TOKENS["pad"], bos_piece=SPECIAL_TOKENS["bos"], eos_piece=SPECIAL_TOKENS["eos"],
                control_symbols=[SPECIAL_TOKENS["sep"]], user_defined_symbols=["\n"],
                num_threads=1, minloglevel=2,
            )
        except RuntimeError as e:  # e.g. "Vocabulary size too high (8000). Please set it to a value <= 1234."
            raise TinyLMError(f"SentencePiece training failed: {str(e).splitlines()[0]}") from None
        return cls(model.getvalue())

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SentencePieceTokenizer":
        try:
            return cls(Path(path).read_bytes())
        except FileNotFoundError:
            raise TinyLMError(f"file not found: {path}") from None
        except TinyLMError as e:
            raise TinyLMError(f"{path}: {e}") from None

    @property
    def special_ids(self) -> set[int]:
        """The four roles plus any other control pieces the model defines."""
        return self._special_ids

    def _encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """As SentencePiece decodes: a leading "▁" on the very first piece is not a space."""
        text = super().decode(ids, skip_special)
        shown = (int(i) for i in ids if not (skip_special and int(i) in self._special_ids))
        if self.dummy_prefix and next(shown, None) in self._space_first:
            text = text[1:]
        return text

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[self.check_id(token_id)]

    def token_str(self, token_id: int) -> str:
        token_id = self.check_id(token_id)
        n = self.sp.get_piece_size()
        return self.sp.id_to_piece(token_id) if token_id < n else self.extra_tokens[token_id - n]

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {
            "kind": self.kind,
            "special": {role: getattr(self, f"{role}_id") for role in SPECIAL_TOKENS},
            "model": base64.b64encode(self.model_proto).decode("ascii"),
        })

    @classmethod
    def from_dict(cls, d: dict) -> "SentencePieceTokenizer":
        try:
            return cls(base64.b64decode(d["model"], validate=True))
        except (KeyError, TypeError, binascii.Error):
            raise TinyLMError("sentencepiece tokenizer file has no valid base64 'model'") from None
