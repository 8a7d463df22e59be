import pytest
import torch
from safetensors.torch import load_file

from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT


def test_round_trip_keeps_weights_and_ties(tmp_path):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16, position="rope", norm="rmsnorm"))
    save_checkpoint(tmp_path / "ckpt", model)
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.lm_head.weight.data_ptr() == loaded.tok_emb.weight.data_ptr()
    assert "lm_head.weight" not in load_file(str(tmp_path / "ckpt" / "model.safetensors"))


def test_crash_during_save_keeps_previous(tmp_path, monkeypatch):
    model = GPT(ModelConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(tmp_path / "ckpt", model)
    before = load_model(tmp_path / "ckpt").state_dict()

    def boom(folder):
        raise OSError("disk full")

    with torch.no_grad():
        model.tok_emb.weight.add_(1.0)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt", model, extra=boom)
    after = load_model(tmp_path / "ckpt").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(TinyLMError, match="not found"):
        load_model(tmp_path / "missing")
    model = GPT(ModelConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(tmp_path / "c", model)
    (tmp_path / "c" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(TinyLMError, match="cannot read"):
        load_model(tmp_path / "c")
    save_checkpoint(tmp_path / "d", model)
    (tmp_path / "d" / "config.json").write_text('{"vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16}')
    with pytest.raises(TinyLMError, match="do not match"):
        load_model(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text("{not json")
    with pytest.raises(TinyLMError, match="not valid JSON"):
        load_model(tmp_path / "d")
