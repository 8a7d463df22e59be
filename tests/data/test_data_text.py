import hashlib
import json

import numpy as np
import pytest
import torch

from tinylm.data import TextDataset, prepare_corpus
from tinylm.errors import TinyLMError
from tinylm.tokenizers import load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two small files, a char tokenizer, and the prepared folder."""
    root = tmp_path_factory.mktemp("corpus")
    texts = ["".join(chr(ord("a") + i % 26) for i in range(1500)) + "\n", "dirección ñandú\n" * 30]
    paths = []
    for i, text in enumerate(texts):
        paths.append(root / f"part{i}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    tok = train_tokenizer("char", paths)
    meta = prepare_corpus(paths, tok, root / "data")
    return texts, paths, tok, meta, root / "data"


def read_bin(path, dtype="uint16"):
    return np.fromfile(path, dtype=dtype).tolist()


def test_contiguous_split_of_the_concatenated_files(corpus):
    texts, _, tok, meta, out = corpus
    expected = tok.encode(texts[0], add_eos=True) + tok.encode(texts[1], add_eos=True)
    parts = [read_bin(out / f"{name}.bin") for name in ("train", "val", "test")]
    assert parts[0] + parts[1] + parts[2] == expected
    n = len(expected)
    assert [len(p) for p in parts] == [int(n * 0.9), int(n * 0.95) - int(n * 0.9), n - int(n * 0.95)]
    assert meta["counts"] == {"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])}


def test_meta_and_tokenizer_are_written(corpus):
    _, paths, tok, meta, out = corpus
    assert json.loads((out / "meta.json").read_text(encoding="utf-8")) == meta
    assert meta["dtype"] == "uint16" and meta["tokenizer_kind"] == "char" and meta["vocab_size"] == tok.vocab_size
    assert [s["sha256"] for s in meta["sources"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert load_tokenizer(out).chars == tok.chars


def test_deterministic(corpus, tmp_path):
    _, paths, tok, _, out = corpus
    prepare_corpus(paths, tok, tmp_path)
    for name in ("train.bin", "val.bin", "test.bin"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_random_windows(corpus):
    *_, out = corpus
    ds = TextDataset(out / "train.bin", block_size=16)
    data = read_bin(out / "train.bin")
    x, y = ds.get_batch(8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        start = next(s for s in range(len(data) - 16) if data[s : s + 16] == row_x)
        assert data[start + 1 : start + 17] == row_y


def test_generator_state_resumes_exactly(corpus):
    *_, out = corpus
    ds = TextDataset(out / "train.bin", block_size=8)
    g = torch.Generator().manual_seed(1234)
    ds.get_batch(4, g)
    state = g.get_state()
    after = [ds.get_batch(4, g) for _ in range(3)]
    g2 = torch.Generator()
    g2.set_state(state)
    resumed = [ds.get_batch(4, g2) for _ in range(3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(after, resumed))
    other = ds.get_batch(4, torch.Generator().manual_seed(99))
    assert not torch.equal(other[0], after[0][0])


def test_eval_batches_cover_the_file_in_order(corpus):
    *_, out = corpus
    ds = TextDataset(out / "val.bin", block_size=10)
    data = read_bin(out / "val.bin")
    batches = list(ds.iter_eval_batches(batch_size=3))
    xs = torch.cat([x for x, _ in batches]).flatten().tolist()
    ys = torch.cat([y for _, y in batches]).flatten().tolist()
    n_windows = (len(data) - 1) // 10
    assert xs == data[: n_windows * 10] and ys == data[1 : n_windows * 10 + 1]
    assert len(list(ds.iter_eval_batches(batch_size=1, max_batches=2))) == 2


def test_uint32_for_large_vocabularies(tmp_path):
    class Big:  # only what prepare_corpus uses
        vocab_size, kind = 70_000, "test"
        def encode(self, text, add_eos=False):
            return [ord(c) * 1000 for c in text] + [1]
        def save(self, path):
            path.write_text("{}")
    src = tmp_path / "a.txt"
    src.write_text("abcdefghijklmnopqrstuvwxyz" * 4)
    meta = prepare_corpus([src], Big(), tmp_path / "out")
    assert meta["dtype"] == "uint32"
    assert read_bin(tmp_path / "out" / "train.bin", "uint32")[:2] == [97_000, 98_000]


def test_errors(corpus, tmp_path):
    _, paths, tok, _, out = corpus
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(TinyLMError, match="empty"):
        prepare_corpus([empty], tok, tmp_path / "x")
    with pytest.raises(TinyLMError, match="no corpus files"):
        prepare_corpus([], tok, tmp_path / "x")
    with pytest.raises(TinyLMError, match="split"):
        prepare_corpus(paths, tok, tmp_path / "x", split=(0.5, 0.2, 0.2))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abc")
    with pytest.raises(TinyLMError, match="too small"):
        prepare_corpus([tiny], tok, tmp_path / "x")
    with pytest.raises(TinyLMError, match="fewer than block_size"):
        TextDataset(out / "test.bin", block_size=10_000)
    with pytest.raises(TinyLMError, match="not found"):
        TextDataset(out / "nope.bin", block_size=8)
    prepare_corpus(paths, tok, tmp_path / "no_test", split=(0.9, 0.1, 0))
    with pytest.raises(TinyLMError, match="has 0 tokens"):
        TextDataset(tmp_path / "no_test" / "test.bin", block_size=8)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("vacía".encode("latin-1"))
    with pytest.raises(TinyLMError, match="not UTF-8"):
        prepare_corpus([latin1], tok, tmp_path / "x")


def test_shakespeare_with_bpe(shakespeare_file, tmp_path):
    tok = train_tokenizer("bpe", [shakespeare_file.read_text(encoding="utf-8")[:100_000]], vocab_size=400)
    meta = prepare_corpus([shakespeare_file], tok, tmp_path)
    assert meta["sources"][0]["sha256"] == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    ds = TextDataset(tmp_path / "val.bin", block_size=64)
    x, _ = ds.get_batch(2, torch.Generator().manual_seed(0))
    assert tok.decode(x[0].tolist()) in shakespeare_file.read_text(encoding="utf-8")
