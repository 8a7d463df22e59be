"""The transform contract (tinylm/transforms/base.py), with a toy persistent transform.

The toy scales each block's FFN output per channel by a learnable vector: like LoRA or
quantization it has weights of its own, is saved with the checkpoint, can be undone and can
be merged into a plain nn.Linear (W and b scaled by row), so every path of the contract runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms import (
    TRANSFORMS,
    PrepareForInference,
    Transform,
    merge_all,
    prepare_for_inference,
    register_transform,
    transform_from_config,
)
from tinylm.transforms.inference import PreparedLinear

V = 41


class Scaled(nn.Module):
    def __init__(self, inner: nn.Linear, init: float) -> None:
        super().__init__()
        self.inner = inner
        self.scale = nn.Parameter(torch.full((inner.out_features,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale


@dataclass
class ScaleFFN(Transform):
    name: ClassVar[str] = "test_scale_ffn"
    persistent: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mergeable: ClassVar[bool] = True
    init: float = 1.0

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        return {f"blocks.{i}.ffn.down": Scaled(block.ffn.down, self.init) for i, block in enumerate(model.blocks)}

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        out = {}
        for name in self._installed:
            scaled = model.get_submodule(name)
            plain = nn.Linear(scaled.inner.in_features, scaled.inner.out_features, bias=scaled.inner.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(scaled.inner.weight * scaled.scale[:, None])
                if plain.bias is not None:
                    plain.bias.copy_(scaled.inner.bias * scaled.scale)
            out[name] = plain
        return out


@dataclass
class FrozenScaleFFN(ScaleFFN):
    """The same, declared unmergeable: stands for a transform HF has no layer for."""
    name: ClassVar[str] = "test_frozen_scale_ffn"
    mergeable: ClassVar[bool] = False


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for cls in (ScaleFFN, FrozenScaleFFN):
        monkeypatch.setitem(TRANSFORMS, cls.name, cls)


def model(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(**{"vocab_size": V, "block_size": 24, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})
    return GPT(cfg).eval()


def random_scales(m: GPT, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in m.blocks:
            block.ffn.down.scale.copy_(1 + torch.randn(block.ffn.down.scale.shape, generator=g))


IDX = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(7))


def logits(m: GPT) -> torch.Tensor:
    with torch.no_grad():
        return m(IDX)[0]


def test_apply_swaps_modules_and_undo_puts_the_same_ones_back():
    m = model()
    plain, downs = logits(m), [b.ffn.down for b in m.blocks]
    t = ScaleFFN(init=3.0).apply(m).transforms[0]
    assert isinstance(m.blocks[1].ffn.down, Scaled) and m.blocks[1].ffn.down.inner is downs[1]
    assert not torch.allclose(logits(m), plain)  # the swapped module is what runs
    with pytest.raises(ValueError, match="already applied"):
        t.apply(model())
    t.undo(m)
    assert m.transforms == [] and all(b.ffn.down is d for b, d in zip(m.blocks, downs))
    assert torch.equal(logits(m), plain)


def test_merge_gives_plain_layers_with_the_same_logits():
    m = model(bias=True)
    ScaleFFN().apply(m)
    random_scales(m)
    before = logits(m)
    m.transforms[0].merge(m)
    assert m.transforms == [] and all(type(b.ffn.down) is nn.Linear for b in m.blocks)
    torch.testing.assert_close(logits(m), before, atol=1e-5, rtol=1e-5)
    with pytest.raises(TinyLMError, match="cannot be merged"):
        merge_all(FrozenScaleFFN().apply(model()))


def test_undo_goes_last_in_first_out_and_prepare_composes_with_other_transforms():
    m = model()
    ScaleFFN().apply(m)
    random_scales(m)
    scaled = logits(m)
    prepare_for_inference(m)
    # prepare leaves the toy's layer alone and prepares the plain layer inside it
    assert isinstance(m.blocks[0].ffn.down, Scaled) and isinstance(m.blocks[0].ffn.down.inner, PreparedLinear)
    torch.testing.assert_close(logits(m), scaled, atol=1e-5, rtol=1e-5)
    with pytest.raises(TinyLMError, match="undo the transforms applied after it first"):
        m.transforms[0].undo(m)
    m.transforms[1].undo(m)
    m.transforms[0].undo(m)
    assert m.transforms == [] and type(m.blocks[0].ffn.down) is nn.Linear


def test_registry_builds_transforms_from_config_entries():
    t = ScaleFFN(init=2.5)
    assert t.to_config() == {"name": "test_scale_ffn", "init": 2.5}
    assert transform_from_config(t.to_config()) == t
    assert type(transform_from_config({"name": "prepare_for_inference"})) is PrepareForInference
    with pytest.raises(TinyLMError, match="unknown model transform 'nope'"):
        transform_from_config({"name": "nope"})
    with pytest.raises(TinyLMError, match="test_scale_ffn"):
        transform_from_config({"name": "test_scale_ffn", "rank": 4})


def test_register_transform_makes_a_class_known_by_name(monkeypatch):
    monkeypatch.setattr("tinylm.transforms.base.TRANSFORMS", {})
    from tinylm.transforms import base

    register_transform(ScaleFFN)
    assert base.TRANSFORMS == {"test_scale_ffn": ScaleFFN}


def test_persistent_transforms_round_trip_through_a_checkpoint(tmp_path):
    m = model(tie_weights=False)
    ScaleFFN(init=2.0).apply(m)
    random_scales(m)
    prepare_for_inference(m)  # not persistent: never recorded
    expected = logits(m)
    save_checkpoint(tmp_path / "ckpt", m)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["transforms"] == [{"name": "test_scale_ffn", "init": 2.0}]
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert {"blocks.0.ffn.down.scale", "blocks.0.ffn.down.inner.weight"} <= saved.keys()
    loaded = load_model(tmp_path / "ckpt")
    assert [t.to_config() for t in loaded.transforms] == [{"name": "test_scale_ffn", "init": 2.0}]
    assert isinstance(loaded.blocks[0].ffn.down, Scaled)
    torch.testing.assert_close(logits(loaded), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("entry, message", [
    ({"name": "quantum_entangle"}, "unknown model transform 'quantum_entangle'"),
    ({"name": "prepare_for_inference"}, "is not saved with checkpoints"),
    ({"init": 2.0}, "unknown model transform"),
])
def test_bad_transform_in_config_is_a_one_line_user_error(tmp_path, entry, message):
    save_checkpoint(tmp_path / "ckpt", model())
    path = tmp_path / "ckpt" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "transforms": [entry]}))
    with pytest.raises(TinyLMError, match=message) as e:
        load_model(tmp_path / "ckpt")
    assert "\n" not in str(e.value) and str(tmp_path / "ckpt") in str(e.value)


def test_export_hf_merges_mergeable_transforms_and_refuses_the_others(tmp_path, monkeypatch, capsys):
    transformers = pytest.importorskip("transformers")
    from tinylm.cli import main as cli
    from tinylm.interop import export_hf
    from tinylm.presets import model_config

    torch.manual_seed(0)
    m = GPT(model_config("llama-style-nano", vocab_size=V, n_layer=2, n_head=2, n_embd=16, block_size=24)).eval()
    ScaleFFN().apply(m)
    random_scales(m)
    save_checkpoint(tmp_path / "ckpt", m)
    export_hf(tmp_path / "ckpt", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(IDX).logits, logits(m), atol=1e-4, rtol=1e-4)
    assert isinstance(m.blocks[0].ffn.down, Scaled)  # the caller's model is not merged

    frozen = GPT(m.config).eval()
    FrozenScaleFFN().apply(frozen)
    save_checkpoint(tmp_path / "frozen", frozen)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["tinylm.cli.export_hf"])
    capsys.readouterr()  # the API export above may have drawn a progress bar
    assert cli.main(["export-hf", str(tmp_path / "frozen"), str(tmp_path / "hf2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinylm: error: ") and err.count("\n") == 1
    assert "test_frozen_scale_ffn cannot be merged" in err and not (tmp_path / "hf2").exists()
