"""SentencePiece models are trained here with the sentencepiece library itself, so the
wrapper is checked against the library's own encode/decode."""

import io

from hypothesis import given, strategies as st
import pytest
import sentencepiece as spm

from tinylm.errors import TinyLMError
from tinylm.tokenizers import IncrementalDecoder, SentencePieceTokenizer, load_tokenizer

CORPUS = "The quick brown fox jumps over the lazy dog.\nSmall models learn from small corpora.\n" * 20
SPANISH = ["vacía", "dirección", "ñandú", "ALMACÉNALO", "  dos  espacios\ny salto "]


def train_sp(**options) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()), model_writer=model, vocab_size=300,
        model_type="bpe", byte_fallback=True, minloglevel=2, **options,
    )
    return model.getvalue()


@pytest.fixture(scope="module")
def thesis_model(tmp_path_factory) -> SentencePieceTokenizer:
    """The educational-GPT study's settings (pad/unk/bos/eos = 0/1/2/3, BPE, byte_fallback), with
    identity normalization so the round trip can be exact."""
    proto = train_sp(pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                     normalization_rule_name="identity", remove_extra_whitespaces=False)
    path = tmp_path_factory.mktemp("sp") / "thesis.model"
    path.write_bytes(proto)
    return load_tokenizer(path)


def test_special_ids(thesis_model):
    tok = thesis_model
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 2, 3)
    assert tok.sep_id == tok.sp.get_piece_size() == tok.vocab_size - 1  # no <sep> in the model: appended
    assert tok.decode([tok.sep_id, 2], skip_special=False) == "<sep><s>"


@pytest.mark.parametrize("text", SPANISH)
def test_spanish_round_trip(thesis_model, text):
    ids = thesis_model.encode(text, add_bos=True, add_eos=True)
    assert ids[1:-1] == thesis_model.sp.encode(text)
    assert thesis_model.decode(ids) == thesis_model.sp.decode(ids) == text


@given(text=st.text(st.characters(codec="utf-8", exclude_characters="\u2581")))
def test_round_trip_with_identity_normalization(thesis_model, text):
    # "▁" is excluded: SentencePiece reads it as a space (documented caveat).
    ids = thesis_model.encode(text)
    assert thesis_model.decode(ids) == thesis_model.sp.decode(ids) == text


def test_streaming_keeps_the_dummy_prefix_space(thesis_model):
    ids = thesis_model.encode("hola mundo")
    dec = IncrementalDecoder(thesis_model)
    assert "".join(dec.feed(i) for i in ids) + dec.finish() == " hola mundo"


def test_default_normalization_is_lossy():
    """The caveat in the docs: SentencePiece's default nmt_nfkc rule rewrites text."""
    tok = SentencePieceTokenizer(train_sp())
    assert tok.pad_id == tok.vocab_size - 2 and tok.sep_id == tok.vocab_size - 1  # default models have no pad
    assert tok.decode(tok.encode("ﬁn  de\nlínea")) == "fin de línea"


def test_save_and_load(thesis_model, tmp_path):
    thesis_model.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path)
    assert loaded.kind == "sentencepiece" and loaded.model_proto == thesis_model.model_proto
    assert loaded.encode("dirección") == thesis_model.encode("dirección")


def test_corrupt_model(tmp_path):
    path = tmp_path / "broken.model"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(TinyLMError, match="not a valid SentencePiece model"):
        load_tokenizer(path)
