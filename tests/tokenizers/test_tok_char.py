import pytest

from tinylm.errors import TinyLMError
from tinylm.tokenizers import CharTokenizer, train_tokenizer


def test_vocabulary_layout():
    tok = train_tokenizer("char", ["banana", "cab"])
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id) == (0, 1, 2, 3)
    assert tok.chars == ["a", "b", "c", "n"]
    assert tok.encode("cab") == [6, 4, 5]
    assert tok.vocab_size == 4 + 4 + 256


def test_unseen_characters_fall_back_to_bytes():
    tok = train_tokenizer("char", ["abc"])
    ids = tok.encode("añ")
    assert ids == [4, tok.byte_offset + 0xC3, tok.byte_offset + 0xB1]
    assert tok.decode(ids) == "añ"
    assert tok.token_str(ids[1]) == "<0xC3>"


def test_trains_from_files(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("ñu\r\n", encoding="utf-8")
    tok = train_tokenizer("char", [path, "z"])
    assert tok.chars == sorted("ñu\r\nz")  # "\r\n" kept: files are read with newline=""


def test_errors():
    with pytest.raises(TinyLMError, match="empty corpus"):
        train_tokenizer("char", ["", ""])
    with pytest.raises(TinyLMError, match="vocab_size"):
        train_tokenizer("char", ["abc"], vocab_size=100)
    with pytest.raises(TinyLMError, match="twice"):
        CharTokenizer.from_dict({"kind": "char", "chars": "aa"})
