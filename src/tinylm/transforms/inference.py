"""prepare_for_inference: weight layouts made for decoding, as a transform.

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
Larger products (prompts, perplexity windows) use nn.Linear's kernel on the weight itself.
SwiGLU's gate and up read the same input, so they are stacked into one matrix, in each
layout: one multiply instead of two.

The transform replaces every plain nn.Linear by a PreparedLinear and every SwiGLU by a
PreparedSwiGLU. Each keeps the parameters it replaces, under the same names (a tied head
stays tied), and holds its layouts as non-persistent buffers: the state_dict is unchanged,
so a prepared model saves the plain weights, and `undo` gives back the very modules. The
layouts are a snapshot of the weights: a prepared model is for inference only (it refuses
`train()`), and `load_state_dict` rebuilds them. The price is memory, up to two more copies
of the linear weights. Layers another transform replaced (LoRA, quantization) are left alone:
their own forward knows best.

Training loops that evaluate by generating wrap the evaluation in `prepared_for_inference`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.model.ffn import SwiGLU
from tinylm.transforms.base import Transform, register_transform

SMALL_ROWS = 16
BLOCK = 32


class PreparedLinear(nn.Module):
    """x @ W.T + b through the layout that suits the number of rows x has.

    `weight` and `bias` stay what they were given: nn.Parameters (of the replaced nn.Linear)
    remain parameters under the same names; plain tensors (SwiGLU's stacked gate and up)
    become non-persistent buffers, so they never reach a checkpoint.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        for name, tensor in (("weight", weight), ("bias", bias)):
            if tensor is None or isinstance(tensor, nn.Parameter):
                self.register_parameter(name, tensor)
            else:
                self.register_buffer(name, tensor, persistent=False)
        self.refresh()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    @classmethod
    def stacking(cls, *layers: nn.Linear) -> PreparedLinear:
        """One layer computing [layer_1(x), layer_2(x), ...] (they must read the same x)."""
        if len(layers) == 1:
            return cls(layers[0].weight, layers[0].bias)
        with torch.no_grad():
            weight = torch.cat([layer.weight for layer in layers])
            biases = [layer.bias for layer in layers if layer.bias is not None]
            bias = torch.cat(biases) if len(biases) == len(layers) else None
        return cls(weight, bias)

    def refresh(self) -> None:
        """(Re)build the layouts from the current weight."""
        with torch.no_grad():
            weight = self.weight.detach()
            self.register_buffer("transposed", weight.t().contiguous(), persistent=False)
            out, inp = weight.shape
            padded = -(-out // BLOCK) * BLOCK  # zero rows up to a whole block; their outputs are dropped
            blocks = F.pad(weight, (0, 0, 0, padded - out)).view(padded // BLOCK, BLOCK, inp)
            self.register_buffer("blocked", blocks.transpose(1, 2).contiguous(), persistent=False)  # (n, in, BLOCK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if rows > SMALL_ROWS:
            return F.linear(x, self.weight, self.bias)
        if rows == 1:
            y = x @ self.transposed
        else:
            y = _blocked_matmul(x, self.blocked, self.out_features)
        return y if self.bias is None else y + self.bias

    def train(self, mode: bool = True) -> PreparedLinear:
        _refuse_training(mode)
        return super().train(mode)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class PreparedSwiGLU(nn.Module):
    """SwiGLU with gate and up in one multiply. Keeps `gate` and `up` (the replaced SwiGLU's own
    layers, so its parameter names) for the state_dict; forward reads their stacked copy."""

    def __init__(self, ffn: SwiGLU) -> None:
        super().__init__()
        self.gate, self.up = ffn.gate, ffn.up
        # A down layer another transform replaced (LoRA, an adapter) keeps its own forward.
        self.down = PreparedLinear(ffn.down.weight, ffn.down.bias) if type(ffn.down) is nn.Linear else ffn.down
        self.refresh()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    def refresh(self) -> None:
        self.gate_up = PreparedLinear.stacking(self.gate, self.up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate, inplace=True).mul_(up))  # in place on the fresh product

    def train(self, mode: bool = True) -> PreparedSwiGLU:
        _refuse_training(mode)
        return super().train(mode)


def _refuse_training(mode: bool) -> None:
    # The layouts do not follow the weights, and the stacked copy carries no gradient.
    if mode:
        raise TinyLMError("this model is prepared for inference; undo prepare_for_inference before training "
                          "(or evaluate inside `with prepared_for_inference(model):`)")


def _blocked_matmul(x: torch.Tensor, blocks: torch.Tensor, out: int) -> torch.Tensor:
    """x (..., in) @ W.T with W.T given as (n, in, BLOCK) column blocks; returns (..., out)."""
    n, inp, _ = blocks.shape
    rows = x.numel() // inp
    y = torch.bmm(x.reshape(rows, inp).expand(n, rows, inp), blocks)  # (n, rows, BLOCK)
    y = y.transpose(0, 1).reshape(*x.shape[:-1], n * BLOCK)
    return y if n * BLOCK == out else y[..., :out]


@register_transform
@dataclass
class PrepareForInference(Transform):
    name: ClassVar[str] = "prepare_for_inference"
    persistent: ClassVar[bool] = False
    reversible: ClassVar[bool] = True
    # Its modules compute with the plain weights themselves: merging is undoing.
    mergeable: ClassVar[bool] = True

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for name, module in model.named_modules():
            if any(name.startswith(done + ".") for done in out):
                continue  # inside a module already replaced as a whole
            if type(module) is SwiGLU and type(module.gate) is nn.Linear and type(module.up) is nn.Linear:
                out[name] = PreparedSwiGLU(module)  # stacks plain gate and up; quantized ones keep their own
            elif type(module) is nn.Linear:  # exactly: a subclass may compute something else
                out[name] = PreparedLinear(module.weight, module.bias)
        return out

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        return dict(self._originals or {})


def is_prepared(model: GPT) -> bool:
    return any(isinstance(t, PrepareForInference) for t in model.transforms)


def prepare_for_inference(model: GPT) -> GPT:
    """Put `model` in eval mode with the decoding layouts (a no-op if it already has them)."""
    model.eval()
    if not is_prepared(model):
        PrepareForInference().apply(model)
    # Build (once per machine; then load) the fused decode step's kernel now, so the first
    # generation or the first request to a server does not wait a minute for the compiler.
    from tinylm.transforms.decode_step import fused_decode_step

    fused_decode_step(model)
    return model


@contextmanager
def prepared_for_inference(model: GPT) -> Iterator[GPT]:
    """Prepare `model` for the `with` block, then undo and restore its training mode: for
    evaluating by generation inside a training loop."""
    if is_prepared(model):
        yield model
        return
    training = model.training
    model.eval()
    transform = PrepareForInference()
    transform.apply(model)
    try:
        yield model
    finally:
        transform.undo(model)
        model.train(training)
