import json

import pytest
import torch
import torch.nn.functional as F

from tinylm.data import IGNORE_INDEX, PairedDataset, encode_prompt, read_pairs
from tinylm.errors import TinyLMError
from tinylm.tokenizers import train_tokenizer

PAIRS = [
    {"input": "suma uno", "output": "ADD 1"},
    {"input": "almacénalo en la dirección 4", "output": "STORE 4", "meta": {"id": 7}},
    {"input": "", "output": "NOP"},
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer("char", [p["input"] + p["output"] for p in PAIRS])


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_pairs(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(p, ensure_ascii=False) for p in PAIRS[:2]] + ["", "  "])
    assert read_pairs(path) == PAIRS[:2]


@pytest.mark.parametrize("line, message", [
    ("{not json", "d.jsonl:2: not valid JSON"),
    ('{"input": "x"}', "d.jsonl:2: missing key 'output'"),
    ('{"output": "x"}', "d.jsonl:2: missing key 'input'"),
    ('{"input": 1, "output": "x"}', "d.jsonl:2: 'input' must be a string"),
    ('["input", "output"]', "d.jsonl:2: expected a JSON object"),
])
def test_read_pairs_errors_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "d.jsonl", ['{"input": "a", "output": "b"}', line])
    with pytest.raises(TinyLMError, match=message) as e:
        read_pairs(path)
    assert "\n" not in str(e.value)


def test_read_pairs_empty_or_missing(tmp_path):
    with pytest.raises(TinyLMError, match="no examples"):
        read_pairs(write_jsonl(tmp_path / "e.jsonl", []))
    with pytest.raises(TinyLMError, match="not found"):
        read_pairs(tmp_path / "missing.jsonl")


def test_sequence_layout_and_targets(tok):
    ds = PairedDataset(PAIRS, tok, max_len=64)
    x, y = ds.collate([0])
    prompt = encode_prompt(tok, "suma uno")
    full = prompt + tok.encode("ADD 1") + [tok.eos_id]
    assert prompt == [tok.bos_id] + tok.encode("suma uno") + [tok.sep_id] == ds.encode_prompt("suma uno")
    assert x[0].tolist() == full[:-1]
    assert y[0].tolist() == [IGNORE_INDEX] * (len(prompt) - 1) + full[len(prompt):]


def test_padding_and_loss_only_on_completions(tok):
    ds = PairedDataset(PAIRS, tok, max_len=64)
    x, y = ds.collate([0, 1, 2])
    lengths = [len(encode_prompt(tok, p["input"]) + tok.encode(p["output"])) for p in PAIRS]  # + eos - 1
    assert x.shape == y.shape == (3, max(lengths))
    assert x[0, lengths[0]:].eq(tok.pad_id).all() and y[0, lengths[0]:].eq(IGNORE_INDEX).all()
    # Scored targets are exactly the outputs and their eos, nothing from prompts or padding.
    scored = [row[row != IGNORE_INDEX].tolist() for row in y]
    assert scored == [tok.encode(p["output"]) + [tok.eos_id] for p in PAIRS]
    # The format cross_entropy wants: a model that is certain of every scored target has zero loss.
    V = tok.vocab_size
    logits = torch.full((3, x.shape[1], V), -1e4)
    logits.scatter_(2, y.clamp(min=0).unsqueeze(-1), 1e4)
    assert F.cross_entropy(logits.view(-1, V), y.view(-1), ignore_index=IGNORE_INDEX).item() == 0.0


def test_random_and_epoch_batches(tok):
    ds = PairedDataset(PAIRS, tok, max_len=64)
    a = ds.get_batch(5, torch.Generator().manual_seed(3))
    b = ds.get_batch(5, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape[0] == 5
    epoch = list(ds.iter_batches(2, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [x.shape[0] for x, _ in epoch] == [2, 1]
    firsts = sorted(tuple(row[: 2].tolist()) for x, _ in epoch for row in x)
    assert firsts == sorted((tok.bos_id, ids[1]) for ids in (encode_prompt(tok, p["input"]) for p in PAIRS))
    in_order = list(ds.iter_batches(3, shuffle=False))
    assert torch.equal(in_order[0][0], ds.collate([0, 1, 2])[0])


def test_too_long_examples_are_dropped(tok):
    limit = len(encode_prompt(tok, "suma uno") + tok.encode("ADD 1"))  # example 0 fits exactly
    with pytest.warns(UserWarning, match="dropped 1 of 3"):
        ds = PairedDataset(PAIRS, tok, max_len=limit)
    assert ds.dropped == [1] and len(ds) == 2
    with pytest.raises(TinyLMError, match="all 3 examples are longer"):
        PairedDataset(PAIRS, tok, max_len=3)
