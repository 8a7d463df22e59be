"""Guarantees shared by the char and byte-level BPE tokenizers."""

import json

from hypothesis import given, settings, strategies as st
import pytest

from tinylm.errors import TinyLMError
from tinylm.tokenizers import SPECIAL_TOKENS, load_tokenizer

SPANISH = ["vacía", "dirección", "ñandú", "ALMACÉNALO", "¿Qué pasó? ¡Añádelo al almacén!"]


@pytest.mark.parametrize("text", SPANISH)
def test_spanish_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_round_trip_any_unicode(tok, text):
    assert tok.decode(tok.encode(text)) == text


@given(text=st.text())
def test_token_bytes_concatenate_to_utf8(tok, text):
    ids = tok.encode(text)
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_whitespace_and_control_characters(tok):
    text = "  two leading spaces\r\n\ttab\x00nul\n\n\nthree newlines   "
    assert tok.decode(tok.encode(text)) == text


def test_text_spelling_special_tokens_is_plain_text(tok):
    text = "".join(SPECIAL_TOKENS.values())
    ids = tok.encode(text)
    assert not set(ids) & tok.special_ids
    assert tok.decode(ids) == text


def test_special_tokens(tok):
    ids = [tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id]
    assert len(set(ids)) == 4 and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.special_ids == set(ids)
    assert all(tok.token_bytes(i) == b"" for i in ids)
    encoded = tok.encode("hola", add_bos=True, add_eos=True)
    assert encoded[0] == tok.bos_id and encoded[-1] == tok.eos_id
    assert tok.decode(encoded) == "hola"
    assert tok.decode([tok.sep_id] + encoded, skip_special=False) == "<sep><bos>hola<eos>"


def test_half_a_character_decodes_to_the_replacement_character(tok):
    """A model can emit part of a character: it shows as U+FFFD, never an error, and does not
    swallow what follows it."""
    ids = tok.encode("😀")  # 4 UTF-8 bytes that no training text holds: split into byte tokens
    assert len(ids) > 1
    for k in range(1, len(ids)):
        assert tok.decode(ids[:k]) == "\ufffd"
        assert tok.decode(ids[:k] + tok.encode("ab")) == "\ufffdab"
    assert tok.decode(ids) == "😀" and "\ufffd" not in tok.decode(ids)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_ids_decode_as_their_bytes_read_by_python(tok, data):
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=30))
    raw = b"".join(b"" if i in tok.special_ids else tok.token_bytes(i) for i in ids)
    assert tok.decode(ids) == raw.decode("utf-8", errors="replace")  # Python's decoder is the reference


def test_bad_input_is_a_user_error(tok):
    with pytest.raises(TinyLMError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(TinyLMError, match="not valid Unicode"):
        tok.encode("lone \ud800 surrogate")


def test_save_and_load(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["kind"] == tok.kind
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    assert [loaded.token_bytes(i) for i in range(tok.vocab_size)] == [tok.token_bytes(i) for i in range(tok.vocab_size)]
    text = "".join(SPANISH) + " The quick brown fox"
    assert loaded.encode(text) == tok.encode(text)
    assert not list(tmp_path.glob(".*.tmp"))  # written via atomic_write, nothing left behind
