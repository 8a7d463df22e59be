from hypothesis import given, strategies as st

from tinylm.tokenizers import IncrementalDecoder


def stream(tok, ids, skip_special=True) -> list[str]:
    dec = IncrementalDecoder(tok, skip_special=skip_special)
    return [dec.feed(i) for i in ids] + [dec.finish()]


@given(data=st.data(), skip_special=st.booleans())
def test_stream_equals_decode_for_any_ids(tok, data, skip_special):
    # Arbitrary ids include partial and invalid UTF-8: the stream must still match decode.
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=30))
    assert "".join(stream(tok, ids, skip_special)) == tok.decode(ids, skip_special)


@given(text=st.text())
def test_pieces_are_whole_characters(tok, text):
    pieces = stream(tok, tok.encode(text))
    assert "".join(pieces) == text
    if "\ufffd" not in text:  # no piece is ever a broken half of a character
        assert not any("\ufffd" in p for p in pieces)


def test_waits_for_the_rest_of_a_character(char_tok):
    ids = char_tok.encode("í")  # unseen in training: two byte tokens
    assert len(ids) == 2
    assert stream(char_tok, ids + [char_tok.eos_id], skip_special=False) == ["", "í", "<eos>", ""]


def test_dangling_partial_character_is_flushed(char_tok):
    first_byte = char_tok.encode("í")[0]
    assert stream(char_tok, [first_byte]) == ["", "\ufffd"]
