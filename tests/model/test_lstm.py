"""The LSTM baseline: shapes and gradients, parameters by formula, decoding with the carried
(h, c) equal to the full forward (single prompts and left-padded batches that change between
steps), a reference nn.LSTM computation, checkpoints through tinylm.load, generate and
perplexity, training with the shared trainer, and the exporters' refusal."""

from __future__ import annotations

import pytest
import torch

import tinylm
from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.generation import Engine, GenerationConfig, LogitsProcessor
from tinylm.model import LSTMLM, build_model
from tinylm.tokenizers import train_tokenizer

CFG = dict(vocab_size=61, block_size=32, n_layer=2, n_embd=32, arch="lstm")


def build(seed: int = 0, scale: float = 0.0, **overrides) -> LSTMLM:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{**CFG, **overrides}))
    if scale:  # near-uniform logits at the default init make greedy decoding uninformative
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, scale)
    return model.eval()


def test_shapes_gradients_and_parameter_count():
    model = build(tie_weights=False).train()
    idx = torch.randint(0, 61, (3, 11))
    logits, loss = model(idx, idx)
    assert isinstance(model, LSTMLM) and logits.shape == (3, 11, 61)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    d, V, L = 32, 61, 2
    # per layer: W_ih, W_hh (4d x d each) and two biases (4d each); embedding; untied head
    assert model.num_params() == L * (8 * d * d + 8 * d) + V * d + V * d
    assert build().num_params() == L * (8 * d * d + 8 * d) + V * d  # tied head counted once


def test_forward_is_an_lstm_by_hand():
    """Independent reference: the LSTM equations written out for layer 0, one step at a time."""
    model = build(seed=2, n_layer=1)
    lstm = model.lstm
    idx = torch.tensor([[5, 9, 1, 7]])
    x = model.tok_emb(idx)[0]
    h = c = torch.zeros(32)
    outs = []
    for t in range(4):
        gates = lstm.weight_ih_l0 @ x[t] + lstm.bias_ih_l0 + lstm.weight_hh_l0 @ h + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    expected = torch.stack(outs) @ model.lm_head.weight.T
    torch.testing.assert_close(model(idx)[0][0], expected, atol=1e-5, rtol=1e-5)


class Recorder(LogitsProcessor):
    def __init__(self, stop_after: dict[int, int] | None = None) -> None:
        self.seen: dict[int, list[torch.Tensor]] = {}
        self.stop_after = stop_after or {}
        self.count: dict[int, int] = {}

    def __call__(self, logits, rows, generated):
        for row, logit in zip(rows, logits):
            self.seen.setdefault(row, []).append(logit.clone())

    def advance(self, row, token_id):
        self.count[row] = self.count.get(row, 0) + 1

    def is_finished(self, row):
        return self.count.get(row, 0) >= self.stop_after.get(row, 10**9)


@pytest.mark.parametrize("prompts, stop_after", [
    ([[3, 14, 15, 9, 26]], {}),
    ([[3, 14, 15, 9, 26], [7], [1, 2, 3]], {1: 3, 0: 6}),  # left padding; rows leave at different steps
])
def test_carried_state_decoding_equals_the_full_forward(prompts, stop_after):
    model = build(seed=1, scale=0.3)
    recorder = Recorder(stop_after)
    results = Engine(model).generate(prompts, GenerationConfig(temperature=0, max_new_tokens=10), recorder)
    for row, (prompt, result) in enumerate(zip(prompts, results)):
        with torch.no_grad():
            full, _ = model(torch.tensor([prompt + result.token_ids]))
        assert len(recorder.seen[row]) == len(result.token_ids) > 0
        for t, cached in enumerate(recorder.seen[row]):
            torch.testing.assert_close(cached, full[0, len(prompt) - 1 + t], atol=1e-5, rtol=1e-5)


def test_checkpoint_load_generate_perplexity_and_no_export(tmp_path, capsys):
    from tinylm.cli import main as cli
    from tinylm.interop.onnx import export_onnx

    tok = train_tokenizer("char", ["to be or not to be, that is the question\n" * 3])
    model = build(seed=3, scale=0.3, vocab_size=tok.vocab_size)
    ckpt = save_checkpoint(tmp_path / "lstm", model, tok)
    again = load_model(ckpt)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    lm = tinylm.load(ckpt)
    text = lm.generate("to be", max_new_tokens=8, temperature=0)
    assert isinstance(text, str) and len(text) > 0
    ppl = lm.perplexity("to be or not to be")
    assert ppl["perplexity"] == pytest.approx(torch.tensor(ppl["loss"]).exp().item())
    assert cli.main(["generate", str(ckpt), "to be", "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip()
    with pytest.raises(TinyLMError, match="lstm"):
        export_onnx(ckpt, tmp_path / "onnx")


def test_lstm_trains_with_the_shared_trainer(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
    from train_toys import VOCAB, pattern_data, random_data, tiny_train_config
    from tinylm.training import Trainer

    def run(optimizer: str, steps: int) -> LSTMLM:
        torch.manual_seed(0)
        model = build_model(ModelConfig(vocab_size=VOCAB, block_size=16, n_layer=1, n_embd=32, arch="lstm"))
        cfg = tiny_train_config(tmp_path / optimizer, max_steps=steps, lr=1e-2, optimizer=optimizer)
        Trainer(model, pattern_data(), random_data(), cfg, quiet=True).fit()
        return model

    model = run("adamw", 60)
    x, y = pattern_data().get_batch(8, torch.Generator().manual_seed(1))
    assert model(x, y)[1].item() < 2.0  # the toy pattern is learnable; chance is ln(VOCAB) ~ 3.3
    run("muon", 4)  # its gate matrices are hidden matrices for Muon
    assert load_model(tmp_path / "muon" / "last").config.arch == "lstm"


@pytest.mark.parametrize("bad", [dict(qk_norm=True), dict(cola_targets=["ffn"]), dict(norm_placement="hybrid"),
                                 dict(arch="gru")])
def test_bad_lstm_configs_are_one_line(bad):
    with pytest.raises(TinyLMError) as e:
        ModelConfig(**{**CFG, **bad})
    assert "\n" not in str(e.value)


def test_eval_scores_a_prepared_test_split_per_token(tmp_path, capsys):
    """`tinylm eval CKPT RUN/data/test.bin`: the split's own tokens, scored as its text would be."""
    import json

    from tinylm.cli import main as cli
    import numpy as np

    from tinylm.data import prepare_corpus

    text = "".join(f"line {i}: to be or not to be, that is the question\n" for i in range(40))
    (tmp_path / "corpus.txt").write_text(text)
    tok = train_tokenizer("char", [text])
    prepare_corpus([tmp_path / "corpus.txt"], tok, tmp_path / "data", split=(0.8, 0.1, 0.1))
    ckpt = save_checkpoint(tmp_path / "lstm", build(seed=4, scale=0.3, vocab_size=tok.vocab_size), tok)
    assert cli.main(["eval", str(ckpt), str(tmp_path / "data" / "test.bin"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    ids = np.fromfile(tmp_path / "data" / "test.bin", dtype=meta["dtype"]).tolist()
    lm = tinylm.load(ckpt)
    # Reference: the loss written out, disjoint windows of the context, every target once.
    total = 0.0
    for start in range(0, len(ids) - 1, 32):
        window = torch.tensor(ids[start : start + 33])[None]
        logits, _ = lm.model(window[:, :-1])
        total += torch.nn.functional.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
    assert figures["tokens"] == len(ids) - 1
    assert figures["loss"] == pytest.approx(total / (len(ids) - 1), rel=1e-6)
