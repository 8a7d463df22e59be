import json
from pathlib import Path

import pytest

from tinylm.errors import TinyLMError
from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer, train_tokenizer


def test_loads_from_a_checkpoint_folder(char_tok, tmp_path):
    char_tok.save(tmp_path / TOKENIZER_FILENAME)
    assert load_tokenizer(tmp_path).chars == char_tok.chars


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "unknown kind None"),
    (json.dumps({"kind": "wordpiece"}).encode(), "unknown kind 'wordpiece'"),
    (json.dumps({"kind": "char"}).encode(), "no 'chars'"),
    (json.dumps({"kind": "bpe", "hf": "x"}).encode(), "no 'hf'"),
    (json.dumps({"kind": "sentencepiece", "model": "%%%"}).encode(), "base64"),
    (json.dumps({"kind": "sentencepiece", "model": "AAAA"}).encode(), "not a valid SentencePiece model"),
])
def test_corrupt_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TinyLMError, match=message) as e:
        load_tokenizer(path)
    assert "\n" not in str(e.value)


def test_train_tokenizer_arguments():
    with pytest.raises(TinyLMError, match="unknown tokenizer kind"):
        train_tokenizer("wordpiece", ["abc"])
    with pytest.raises(TinyLMError, match="not a single one"):
        train_tokenizer("char", "abc")
    with pytest.raises(TinyLMError, match="file not found"):
        train_tokenizer("char", [Path("/nonexistent/corpus.txt")])
