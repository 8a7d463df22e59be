import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from tinylm.checkpoint import load_model
from tinylm.training import Trainer
from tinylm.training.metrics_log import ProgressBar, read_metrics
from tinylm.training.schedule import lr_at
from tinylm.training.trainer import accumulate_gradients

from train_toys import BLOCK, PATTERN, TokenStream, encode, pattern_data, random_data, tiny_model, tiny_train_config


def _unigram_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def test_overfits_a_tiny_corpus_far_below_unigram_entropy(tmp_path):
    data = pattern_data()
    cfg = tiny_train_config(
        tmp_path, max_steps=80, batch_size=16, lr=1e-2, min_lr=1e-3, eval_every=0, save_every=0, log_every=10,
    )
    result = Trainer(tiny_model(), data, data, cfg, quiet=True).fit()
    entropy = _unigram_entropy(PATTERN)  # what the best context-free model achieves (~2.9 nats)
    assert result.stop_reason == "max_steps" and result.steps == 80
    assert result.best_val_loss < 0.15 * entropy, (result.best_val_loss, entropy)
    assert result.tokens == 80 * 16 * BLOCK


def test_early_stopping_keeps_the_best_checkpoint(tmp_path):
    # Trained on the pattern, judged on random tokens: the better it fits, the worse val gets.
    cfg = tiny_train_config(tmp_path, max_steps=500, patience=2, eval_every=5, save_every=0, log_every=5)
    trainer = Trainer(tiny_model(), pattern_data(), random_data(), cfg, quiet=True)
    result = trainer.fit()
    assert result.stop_reason == "early_stopping"
    assert result.steps == result.best_step + 2 * 5 < 500
    vals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "val_loss" in r]
    assert min(vals, key=lambda r: r["val_loss"])["step"] == result.best_step
    assert all(r["val_loss"] >= result.best_val_loss for r in vals if r["step"] > result.best_step)
    saved = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert saved["step"] == result.best_step
    # The best/ weights really are the ones that scored best_val_loss.
    trainer.model.load_state_dict(load_model(tmp_path / "best").state_dict())
    assert trainer.evaluate() == pytest.approx(result.best_val_loss, abs=1e-6)


def test_token_budget_stops_exactly(tmp_path):
    per_step = 8 * BLOCK
    cfg = tiny_train_config(tmp_path, max_steps=1000, token_budget=3 * per_step, eval_every=0, save_every=0)
    result = Trainer(tiny_model(), pattern_data(), None, cfg, quiet=True).fit()
    assert (result.stop_reason, result.steps, result.tokens) == ("token_budget", 3, 3 * per_step)


def test_time_budget_stops(tmp_path):
    cfg = tiny_train_config(tmp_path, max_steps=10**6, time_budget_s=0.3, eval_every=0, save_every=0, log_every=100)
    result = Trainer(tiny_model(), pattern_data(), None, cfg, quiet=True).fit()
    assert result.stop_reason == "time_budget"
    assert 0.3 <= result.elapsed_s < 30 and 0 < result.steps < 10**6
    assert (tmp_path / "last" / "train_state").is_dir()  # a budget stop still leaves a resumable checkpoint


def test_grad_accumulation_equals_one_big_batch():
    g = torch.Generator().manual_seed(0)
    x, y = pattern_data().get_batch(8, g)
    model = tiny_model()

    def grads(batches, n):
        model.zero_grad()
        loss = accumulate_gradients(model, batches, n)
        return loss, [p.grad.clone() for p in model.parameters()]

    big_loss, big = grads([(x, y)], 1)
    k, b = 4, 2
    small_loss, small = grads([(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(k)], k)
    assert small_loss == pytest.approx(big_loss, abs=1e-6)
    for gb, gs in zip(big, small):
        torch.testing.assert_close(gs, gb, atol=1e-6, rtol=0)


class _SameBatches:
    """Hands out rows of one fixed batch in order, whatever the generator (for exact comparisons)."""

    def __init__(self, x, y):
        self.x, self.y, self.i = x, y, 0

    def get_batch(self, batch_size, generator):
        rows = slice(self.i, self.i + batch_size)
        self.i += batch_size
        return self.x[rows], self.y[rows]


def test_trainer_step_with_accumulation_reports_the_big_batch_loss(tmp_path):
    x, y = pattern_data().get_batch(8, torch.Generator().manual_seed(0))
    losses = []
    for accum, bs in ((1, 8), (4, 2)):
        cfg = tiny_train_config(tmp_path / str(accum), max_steps=1, batch_size=bs, grad_accum=accum, eval_every=0)
        Trainer(tiny_model(), _SameBatches(x, y), None, cfg, quiet=True).fit()
        losses.append(read_metrics(tmp_path / str(accum) / "metrics.jsonl")[0]["loss"])
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)


def test_bf16_autocast_runs_and_differs_slightly_from_float32(tmp_path):
    first = {}
    for dtype in ("float32", "bfloat16"):
        cfg = tiny_train_config(tmp_path / dtype, max_steps=4, dtype=dtype, eval_every=2)
        trainer = Trainer(tiny_model(), pattern_data(), pattern_data(), cfg, quiet=True)
        result = trainer.fit()
        rows = read_metrics(tmp_path / dtype / "metrics.jsonl")
        assert all(math.isfinite(r.get("loss", r.get("val_loss"))) for r in rows)
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast keeps float32 weights
        assert result.best_val_loss is not None
        first[dtype] = rows[0]["loss"]
    assert first["bfloat16"] != first["float32"]
    assert first["bfloat16"] == pytest.approx(first["float32"], abs=0.05)


def test_metrics_jsonl_png_and_tensorboard(tmp_path):
    cfg = tiny_train_config(tmp_path, max_steps=10, log_every=2, eval_every=5, tensorboard=True)
    Trainer(tiny_model(), pattern_data(), pattern_data(), cfg, quiet=True).fit()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10]
    assert [r["step"] for r in val] == [5, 10]
    for r in train:
        assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed"} <= set(r)
        # The lr logged with step s is the one step s used: the schedule at 0-based index s - 1.
        assert r["lr"] == pytest.approx(lr_at(r["step"] - 1, lr=3e-3, min_lr=3e-4, warmup_steps=3, max_steps=10))
        assert r["tokens"] == r["step"] * 8 * BLOCK and r["tokens_per_s"] > 0
    assert all(r["val_ppl"] == pytest.approx(math.exp(r["val_loss"])) for r in val)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "train_config.json").read_text())["max_steps"] == 10

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10]
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx([r["val_loss"] for r in val])


def test_log_lines_when_not_a_terminal_and_silence_when_quiet(tmp_path, capsys):
    cfg = tiny_train_config(tmp_path, max_steps=4, log_every=2, eval_every=4)
    Trainer(tiny_model(), pattern_data(), pattern_data(), cfg).fit()
    out = capsys.readouterr().out
    assert "step 2: loss" in out and "step 4: val loss" in out
    Trainer(tiny_model(), pattern_data(), pattern_data(), cfg, quiet=True).fit()
    assert capsys.readouterr().out == ""


def test_progress_bar_shows_loss_lr_and_tokens_per_second(capsys):
    bar = ProgressBar(total=10, initial=3, enabled=True)
    bar.update(loss=1.2345, lr=1e-3, tokens_per_s=5000)
    bar.close()
    err = capsys.readouterr().err
    assert "4/10" in err and "loss=1.2345" in err and "lr=1.00e-03" in err and "tok_s=5000" in err


def _reference_val_loss(model, batches):
    """Mean cross-entropy over every target token, summed by hand."""
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            logits, _ = model(x)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum").item()
            count += int((y != -100).sum())
    return total / count


def test_eval_on_text_dataset_uses_consecutive_windows(tmp_path):
    from tinylm.data import TextDataset, prepare_corpus
    from tinylm.tokenizers import train_tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PATTERN * 60, encoding="utf-8")
    tok = train_tokenizer("char", [corpus])
    prepare_corpus([corpus], tok, tmp_path / "data", split=(0.5, 0.5, 0.0))
    val = TextDataset(tmp_path / "data" / "val.bin", BLOCK)
    model = tiny_model(vocab_size=tok.vocab_size)
    cfg = tiny_train_config(tmp_path / "run", batch_size=4, eval_batches=3)
    trainer = Trainer(model, val, val, cfg, quiet=True)
    model.eval()
    expected = _reference_val_loss(model, val.iter_eval_batches(4, max_batches=3))
    assert trainer.evaluate() == pytest.approx(expected, abs=1e-5)
    assert trainer.evaluate() == trainer.evaluate()


def test_eval_on_paired_dataset_weights_by_target_tokens(tmp_path):
    from tinylm.data import PairedDataset
    from tinylm.tokenizers import train_tokenizer

    pairs = [{"input": f"{a}+{b}", "output": str(a + b) * (1 + a % 3)} for a in range(6) for b in range(4)]
    tok = train_tokenizer("char", ["0123456789+"])
    val = PairedDataset(pairs, tok, 32)
    model = tiny_model(vocab_size=tok.vocab_size, block_size=32)
    cfg = tiny_train_config(tmp_path, batch_size=5, eval_batches=3)
    trainer = Trainer(model, val, val, cfg, quiet=True)
    model.eval()
    expected = _reference_val_loss(model, [val.collate(range(i, i + 5)) for i in (0, 5, 10)])
    assert trainer.evaluate() == pytest.approx(expected, abs=1e-5)


def test_eval_on_plain_get_batch_data_is_the_same_every_time(tmp_path):
    trainer = Trainer(tiny_model(), pattern_data(), random_data(), tiny_train_config(tmp_path), quiet=True)
    first = trainer.evaluate()
    trainer.train_step()  # moves the weights and the training generator, not the eval batches
    trainer.model.load_state_dict(tiny_model().state_dict())
    assert trainer.evaluate() == first


def test_fit_restores_the_thread_count(tmp_path):
    before = torch.get_num_threads()
    Trainer(tiny_model(), pattern_data(), None, tiny_train_config(tmp_path, max_steps=1, num_threads=1), quiet=True).fit()
    assert torch.get_num_threads() == before


def test_diverging_loss_is_a_user_error(tmp_path):
    from tinylm.errors import TinyLMError

    ids = encode(PATTERN * 4)
    model = tiny_model()
    with torch.no_grad():
        model.tok_emb.weight.fill_(float("nan"))
    trainer = Trainer(model, TokenStream(ids), None, tiny_train_config(tmp_path, max_steps=2), quiet=True)
    with pytest.raises(TinyLMError, match="diverged"):
        trainer.fit()


@pytest.mark.slow
def test_torch_compile_trains(tmp_path):
    cfg = tiny_train_config(tmp_path, max_steps=3, compile=True, eval_every=3)
    result = Trainer(tiny_model(), pattern_data(), pattern_data(), cfg, quiet=True).fit()
    assert result.steps == 3 and math.isfinite(result.best_val_loss)
