"""SentencePiece models trained by tinylm (`train_tokenizer("sentencepiece", ...)`): checked
against the sentencepiece library's own encode/decode of the same model."""

from pathlib import Path

from hypothesis import given, settings, strategies as st
import pytest

from tinylm.errors import TinyLMError
from tinylm.tokenizers import IncrementalDecoder, load_tokenizer, train_tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "../shared/data/tinyshakespeare.txt"  # as conftest.py


@pytest.fixture(scope="module")
def spm_tok(shakespeare):
    return train_tokenizer("sentencepiece", [shakespeare], vocab_size=1000, model_type="bpe")


def test_round_trip_on_shakespeare(spm_tok, shakespeare):
    ids = spm_tok.encode(shakespeare)
    assert spm_tok.decode(ids) == spm_tok.sp.decode(ids) == shakespeare
    assert ids == spm_tok.sp.encode(shakespeare)  # the wrapper adds nothing to the library's encoding
    assert len(ids) < len(shakespeare) / 2.5  # it did learn merges: not one token a character


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_characters="\u2581")))
def test_round_trip_of_any_text(spm_tok, text):
    # "▁" is excluded: SentencePiece reads it as a space (the documented caveat).
    ids = spm_tok.encode(text)
    assert spm_tok.decode(ids) == text
    dec = IncrementalDecoder(spm_tok)
    assert "".join(dec.feed(i) for i in ids) + dec.finish() == text


def test_vocabulary_and_special_ids(spm_tok):
    tok = spm_tok
    assert tok.vocab_size == tok.sp.get_piece_size() == 1000  # <sep> is in the model, nothing appended
    assert (tok.pad_id, tok.sp.unk_id(), tok.bos_id, tok.eos_id) == (0, 1, 2, 3)  # the study's ids
    assert tok.token_str(tok.sep_id) == "<sep>" and tok.sep_id in tok.special_ids
    assert tok.encode("\n\n") == [tok.sp.piece_to_id("\n")] * 2  # a newline is one token, not a byte
    assert tok.encode("a", add_bos=True, add_eos=True) == [2, tok.sp.piece_to_id("a"), 3]


def test_study_vocabulary_on_the_whole_corpus():
    if not SHAKESPEARE.exists():
        pytest.skip(f"{SHAKESPEARE} not present")
    tok = train_tokenizer("sentencepiece", [SHAKESPEARE])  # a Path: read as a file; default vocabulary
    assert tok.vocab_size == 8000
    text = SHAKESPEARE.read_text(encoding="utf-8")
    assert tok.decode(tok.encode(text[:20_000])) == text[:20_000]


def test_deterministic(shakespeare, spm_tok):
    again = train_tokenizer("sentencepiece", [shakespeare], vocab_size=1000)
    assert again.model_proto == spm_tok.model_proto
    other = train_tokenizer("sentencepiece", [shakespeare[:50_000]], vocab_size=1000)
    assert other.model_proto != spm_tok.model_proto  # the bytes do depend on the text


def test_unigram(shakespeare):
    tok = train_tokenizer("sentencepiece", [shakespeare[:30_000]], vocab_size=500, model_type="unigram")
    assert tok.sp.get_piece_size() == 500 and tok.decode(tok.encode(shakespeare[:5000])) == shakespeare[:5000]


def test_save_and_load(spm_tok, tmp_path):
    spm_tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path)
    assert loaded.kind == "sentencepiece" and loaded.model_proto == spm_tok.model_proto
    text = "To be, or not to be: ¿dirección?\n"
    assert loaded.encode(text) == spm_tok.encode(text) and loaded.decode(loaded.encode(text)) == text
    assert list(tmp_path.iterdir()) == [tmp_path / "tokenizer.json"]  # training and saving left no other file


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 100_000}, "Vocabulary size too high"),
    ({"vocab_size": 10}, "SentencePiece training failed"),
    ({"model_type": "wordpiece"}, "model_type 'wordpiece'"),
])
def test_bad_settings_give_one_line(kwargs, message):
    with pytest.raises(TinyLMError, match=message) as e:
        train_tokenizer("sentencepiece", ["To be, or not to be.\n" * 50], **kwargs)
    assert "\n" not in str(e.value)


def test_model_type_is_for_sentencepiece_only():
    with pytest.raises(TinyLMError, match="model_type applies to sentencepiece"):
        train_tokenizer("bpe", ["abc"], model_type="bpe")
    with pytest.raises(TinyLMError, match="empty corpus"):
        train_tokenizer("sentencepiece", ["", "\n"])
