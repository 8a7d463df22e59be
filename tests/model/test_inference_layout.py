"""The cached inference layouts (model/inference.py) must give nn.Linear's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinylm.model import GPT
from tinylm.model.inference import SMALL_ROWS, InferenceLinear
from tinylm.presets import model_config


@pytest.mark.parametrize("rows", [1, 2, 5, SMALL_ROWS, SMALL_ROWS + 1, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_every_layout_matches_linear(rows: int, bias: bool) -> None:
    torch.manual_seed(0)
    gate, up = nn.Linear(48, 70, bias=bias), nn.Linear(48, 70, bias=bias)  # 140 outputs: not whole blocks
    x = torch.randn(rows, 1, 48)
    expected = torch.cat([F.linear(x, gate.weight, gate.bias), F.linear(x, up.weight, up.bias)], dim=-1)
    with torch.no_grad():
        got = InferenceLinear().linear(x, gate, up)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_copies_follow_weight_updates() -> None:
    torch.manual_seed(0)
    layer, fast = nn.Linear(16, 24), InferenceLinear()
    x = torch.randn(3, 16)
    with torch.no_grad():
        before = fast.linear(x, layer)
        layer.weight.add_(1.0)  # an optimizer step: in place, same storage
        after = fast.linear(x, layer)
        expected_after = F.linear(x, layer.weight, layer.bias)
        layer.weight = nn.Parameter(torch.zeros(24, 16))  # new storage (loading)
        reloaded = fast.linear(x, layer)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected_after)
    torch.testing.assert_close(reloaded, layer.bias.detach().expand(3, 24))


class _Doubled(nn.Module):
    """Stands for a transform that replaces a linear layer (LoRA, quantization)."""

    def __init__(self, inner: nn.Linear) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner(x)


def test_replaced_layers_run_their_own_forward() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(8, 8)
    x = torch.randn(1, 8)
    with torch.no_grad():
        got = InferenceLinear().linear(x, _Doubled(layer))
    torch.testing.assert_close(got, 2 * layer(x))


@pytest.mark.parametrize("preset", ["llama-style-nano", "gpt2-style-nano"])
def test_model_inference_path_matches_training_path(preset: str) -> None:
    torch.manual_seed(0)
    model = GPT(model_config(preset, vocab_size=64, block_size=32))
    for rows in (1, 4, 32):
        idx = torch.randint(0, 64, (rows, 1 if rows > 1 else 8))
        model.eval()
        reference, _ = model(idx)  # grad enabled: the plain nn.Linear path
        with torch.no_grad():
            fast, _ = model(idx)
        torch.testing.assert_close(fast, reference.detach(), atol=1e-5, rtol=1e-5)
