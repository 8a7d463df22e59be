import json

from hypothesis import given, strategies as st
import pytest
from tokenizers import Tokenizer as HFTokenizer

from tinylm.errors import TinyLMError
from tinylm.tokenizers import bpe, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def shakespeare_bpe(shakespeare):
    return train_tokenizer("bpe", [shakespeare], vocab_size=512)


def test_trains_to_the_requested_size_and_compresses(shakespeare_bpe, shakespeare):
    assert shakespeare_bpe.vocab_size == 512
    assert len(shakespeare_bpe.encode(shakespeare)) < 0.5 * len(shakespeare)


def test_byte_table_matches_the_hf_alphabet():
    from tokenizers.pre_tokenizers import ByteLevel

    table = bpe.bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert set(table.values()) == set(ByteLevel.alphabet())


@given(text=st.text())
def test_decode_agrees_with_hf(shakespeare_bpe, text):
    # The HF library's own ByteLevel decoder is an independent reference for token_bytes.
    ids = shakespeare_bpe.encode(text)
    assert shakespeare_bpe.decode(ids) == shakespeare_bpe.hf.decode(ids) == text


def test_saved_file_embeds_a_plain_hf_tokenizer(shakespeare_bpe, tmp_path):
    path = tmp_path / "tokenizer.json"
    shakespeare_bpe.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["special"] == {"pad": 0, "bos": 1, "eos": 2, "sep": 3}
    hf = HFTokenizer.from_str(json.dumps(saved["hf"]))
    text = "To be, or not to be: ¿vacía?"
    assert hf.encode(text).ids == shakespeare_bpe.encode(text)


def test_errors(tmp_path):
    with pytest.raises(TinyLMError, match="at least 260"):
        train_tokenizer("bpe", ["abc"], vocab_size=100)
    with pytest.raises(TinyLMError, match="empty corpus"):
        train_tokenizer("bpe", [""], vocab_size=300)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"kind": "bpe", "hf": {"model": "nonsense"}}))
    with pytest.raises(TinyLMError, match="corrupt") as e:
        load_tokenizer(path)
    assert "\n" not in str(e.value)
