"""Weight layouts for inference, cached beside the parameters they are copied from.

nn.Linear keeps W as (out, in) and computes x @ W.T with one MKL matrix multiply. For the
few rows of a decode step (batch rows x 1 token) the weights stream from memory and MKL's
choice of kernel decides the speed. Measured on the 2-core Xeon of docs/benchmarks.md (one
thread, weights out of cache, microseconds):

    rows  in x out      x @ W.T (nn.Linear)   x @ (W.T contiguous)   blocked (below)
    1     384 x 1024      64                    60                     81
    8     384 x 1024     158                   286                    160
    8     384 x 2048     410-464               545                    164-212
    8     384 x 4096     826-943              1083                    298-422
    128   384 x 1024     777                   975                    841

So a product of one row multiplies by a contiguous copy of W.T (a matrix-vector product), and
one of 2 to SMALL_ROWS rows by a blocked copy: W.T cut into column blocks of BLOCK outputs,
each (in, BLOCK) contiguous, multiplied in one batched call (each block is read once, in
order, and fits in the L1/L2 cache; the general kernel instead repacks W at every call).
Larger products (prompts, the uncached loop) use nn.Linear's kernel on the parameters.
Layers that read the same input (SwiGLU's gate and up) are stacked into one matrix, in each
layout: one multiply instead of two.

The parameters themselves are untouched (their names and layout are what checkpoints and the
HF conversion read). The copies are rebuilt when a source tensor changes: new storage
(loading, `.to()`) or an in-place update (optimizer steps, `load_state_dict`), which bumps the
tensor's version counter. Tensors created under `torch.inference_mode` have no version
counter, so the copies are also dropped when the model is put back into training mode. The
price is memory: up to two more copies of the linear weights while the model is used for
inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL_ROWS = 16
BLOCK = 32


def inferring(module: nn.Module) -> bool:
    """Whether `module` runs for inference only: eval mode (no dropout) and no autograd."""
    return not module.training and not torch.is_grad_enabled()


class InferenceLinear(nn.Module):
    """x @ [W_1; W_2; ...].T + [b_1; b_2; ...] for nn.Linear layers that read the same x,
    through cached copies of the weights. A module only so that `train()` reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self._key: list[tuple[int, int]] | None = None
        self._copies: dict[str, torch.Tensor | None] = {}

    def linear(self, x: torch.Tensor, *layers: nn.Linear) -> torch.Tensor:
        if any(type(layer) is not nn.Linear for layer in layers):
            # A transform replaced a layer (LoRA, quantization): its own forward knows best.
            return torch.cat([layer(x) for layer in layers], dim=-1)
        rows = x.numel() // x.shape[-1]
        if rows > SMALL_ROWS and len(layers) == 1:
            return F.linear(x, layers[0].weight, layers[0].bias)
        # The layers are passed at each call rather than kept, so a layer replaced on its parent
        # (a tied head, a transform) is what gets multiplied. `_parameters` is read directly:
        # `layer.weight` goes through nn.Module.__getattr__, which costs more than the check.
        params = [p for layer in layers for p in layer._parameters.values() if p is not None]
        key = [(p.data_ptr(), -1 if p.is_inference() else p._version) for p in params]
        if key != self._key:
            self._key, self._copies = key, {}
        if rows == 1:
            y = x @ self._copy("transposed", layers)
        elif rows <= SMALL_ROWS:
            y = _blocked_matmul(x, self._copy("blocked", layers), sum(layer.out_features for layer in layers))
        else:
            y = F.linear(x, self._copy("stacked", layers))
        bias = self._copy("bias", layers)
        return y if bias is None else y + bias

    def _copy(self, kind: str, layers: tuple[nn.Linear, ...]) -> torch.Tensor | None:
        if kind not in self._copies:
            with torch.no_grad():
                self._copies[kind] = _layout(kind, layers)
        return self._copies[kind]

    def train(self, mode: bool = True) -> InferenceLinear:
        if mode:  # training is about to change the weights, maybe in ways no counter sees
            self._key, self._copies = None, {}
        return super().train(mode)


def _layout(kind: str, layers: tuple[nn.Linear, ...]) -> torch.Tensor | None:
    if kind == "bias":
        biases = [layer.bias for layer in layers if layer.bias is not None]
        return torch.cat(biases) if biases else None
    weight = torch.cat([layer.weight for layer in layers])  # (out, in)
    if kind == "stacked":
        return weight
    if kind == "transposed":
        return weight.t().contiguous()
    out, inp = weight.shape
    padded = -(-out // BLOCK) * BLOCK  # zero rows up to a whole block; their outputs are dropped
    weight = F.pad(weight, (0, 0, 0, padded - out))
    return weight.view(padded // BLOCK, BLOCK, inp).transpose(1, 2).contiguous()  # (blocks, in, BLOCK)


def _blocked_matmul(x: torch.Tensor, blocks: torch.Tensor, out: int) -> torch.Tensor:
    """x (..., in) @ W.T with W.T given as (n, in, BLOCK) column blocks; returns (..., out)."""
    n, inp, _ = blocks.shape
    rows = x.numel() // inp
    y = torch.bmm(x.reshape(rows, inp).expand(n, rows, inp), blocks)  # (n, rows, BLOCK)
    y = y.transpose(0, 1).reshape(*x.shape[:-1], n * BLOCK)
    return y if n * BLOCK == out else y[..., :out]
