"""The fused decode step: one C++ call per token for the sequences of a llama-style model.

At batch 1 a PyTorch decode step is mostly dispatch: about 60 operators per layer, each a
few microseconds of Python and ATen overhead around a few microseconds of work, and torch's
matrix-vector kernel does not split across threads for one row (docs/benchmarks.md, "Where
the decode step goes"). `FusedDecodeStep` runs the whole layer stack for one token in
kernels/decode_step.cpp instead, reading the model's own weight tensors (no copies) and
writing the new keys and values into the engine's KVCache, with every matrix-vector product
split over torch's threads.

It covers what the engine decodes most: a model prepared for inference
(prepare_for_inference), llama-style (RoPE, RMSNorm, SwiGLU, pre-norm, no biases; grouped-
query attention and a tied head are fine), with float32 weights or tinylm's symmetric int8
or int4-group-32 weights (quantize(model, "int8" | "int4"), embedding and head included or
not), on the CPU. Integer weights multiply activations quantized to int8 per block of 32
inputs (d = max|x| / 127, as llama.cpp's Q8_0), with int32 sums (AVX-512 VNNI where the CPU
has it): about the speed of llama.cpp's Q8_0 step, and other numbers than the PyTorch model,
which multiplies by float activations. tests/transforms/test_decode_step.py checks them against
the PyTorch model with the same activation rounding (1e-4) and the greedy tokens against the
plain int8 model; `tinylm bench quant` measures the perplexity through this step.
`fused_decode_step(model)` returns None for anything else (GPT-2 style, int4 with other
groups, LoRA, an asymmetric zero point, a model not prepared, no compiler): the engine then
runs the PyTorch model, which stays the reference that tests compare against.

`step_rows` decodes a batch's rows in one call (each weight row read once for all of them, from
L1 after the first, and int8 / int4 weights multiplied in integers as at batch 1), with the
engine's left padding (KVCache.pad): a row's logits are those it gets alone. The PyTorch batch
path instead widens int8 weights to float for every row block, which left tinylm's int8 at batch
8 slower than ONNX Runtime's integer GEMM (docs/compression.md).
"""

from __future__ import annotations

import os
import threading

import torch
from torch import nn

from tinylm.model import GPT, KVCache
from tinylm.model.ffn import SwiGLU
from tinylm.model.norms import RMSNorm
from tinylm.transforms.inference import PreparedLinear, PreparedSwiGLU, is_prepared
from tinylm.transforms.kernels import decode_kernels
from tinylm.transforms.quantize import Int4Linear, Int8Linear, QuantizedEmbedding, TiedQuantizedHead

_NO_SCALE = torch.empty(0)
_NO_PAD = torch.empty(0, dtype=torch.long)
_NO_MASK = torch.empty(0, 0, dtype=torch.int32)
# Inputs per activation scale when the step quantizes activations (llama.cpp's Q8_0 block); int4
# weights run in the step only with groups of this size, so each group meets one activation block.
ACTIVATION_BLOCK = 32


class FusedDecodeStep:
    """`step(token, cache)`: the next-token logits (1, vocab) of a one-row batch, after
    writing the token's keys and values into `cache` and advancing it; `step_rows(tokens, cache)`
    the same for a (B,) tensor of tokens, one per row of `cache`: (B, vocab). `start` + `finish`:
    `step_rows` on a C++ thread of its own, so the caller can work meanwhile (the decoder
    computes a grammar's next mask there, and `finish` applies it to the logits)."""

    def __init__(self, kernel: object, block_size: int) -> None:
        self._kernel = kernel
        self._block_size = block_size
        self._running = False  # a step of this one is on the step thread
        self._logits: torch.Tensor | None = None  # or it ran here (the thread was busy): its logits

    def step(self, token: int, cache: KVCache) -> torch.Tensor:
        logits = self._kernel.step(token, self._slot(cache), cache.k, cache.v)
        cache.advance(1)
        return logits

    def step_rows(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        slot = self._slot(cache)
        pad = _NO_PAD if cache.pad is None else cache.pad.to(torch.long)
        logits = self._kernel.step_rows(tokens.reshape(-1).to(torch.long), slot, cache.k, cache.v, pad)
        cache.advance(1)
        return logits

    def start(self, tokens: torch.Tensor | int, cache: KVCache) -> None:
        """`step_rows` (or `step` for an int) on the process's step thread: returns at once;
        `finish()` returns the logits. Until then nothing may read or write `cache` (it is
        already advanced). While another decoder holds the thread (batches stepped from several
        Python threads), the step runs here instead, and `finish` returns its logits."""
        if self._running or self._logits is not None:
            raise RuntimeError("StepThread: finish() the running step first")
        slot = self._slot(cache)
        tokens = torch.tensor([tokens]) if isinstance(tokens, int) else tokens.reshape(-1).to(torch.long)
        pad = _NO_PAD if cache.pad is None else cache.pad.to(torch.long)
        if _thread_free.acquire(blocking=False):
            try:
                _step_thread().start(self._kernel, tokens, slot, cache.k, cache.v, pad)
            except BaseException:
                _thread_free.release()
                raise
            self._running = True
        else:
            self._logits = self._kernel.step_rows(tokens, slot, cache.k, cache.v, pad)
        cache.advance(1)

    def finish(self, bitmask: torch.Tensor | None = None) -> torch.Tensor:
        """The started step's logits (B, vocab); with `bitmask` (at least B rows of ceil(vocab /
        32) int32 words, bit t % 32 of word t // 32 set where token t is allowed: XGrammar's
        layout), every token whose bit is 0 gets -inf, in C++ as the logits come out."""
        mask = _NO_MASK if bitmask is None else bitmask
        if self._running:
            self._running = False
            try:
                return _step_thread().finish(mask)
            finally:
                _thread_free.release()
        logits, self._logits = self._logits, None
        if logits is None:
            raise RuntimeError("StepThread: no step was started")
        if bitmask is not None:
            apply_bitmask(logits, bitmask)
        return logits

    def _slot(self, cache: KVCache) -> int:
        if cache.length + 1 > self._block_size:
            raise ValueError(f"sequence of {cache.length + 1} tokens exceeds the context of {self._block_size}")
        return cache.length


_thread: object | None = None  # the kernels' StepThread, one per process, made at the first start()
_thread_free = threading.Lock()  # held from a start() on the thread to its finish()
_orphans: list[object] = []  # threads of a parent process: after a fork they do not exist


def _step_thread() -> object:
    global _thread
    if _thread is None:
        _thread = decode_kernels().StepThread()
    return _thread


def _after_fork() -> None:
    global _thread, _thread_free
    if _thread is not None:
        _orphans.append(_thread)  # never destroyed: its destructor would wait for a thread that is not here
    _thread, _thread_free = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def fused_decode_step(model: GPT | object, *, quantize_activations: bool = True,
                      vnni: bool = True) -> FusedDecodeStep | None:
    """The fused step for `model`, or None where it does not apply (see the module notes).
    `quantize_activations=False` multiplies int8 weights by float activations (the PyTorch
    model's numbers; int4 then runs the PyTorch model); `vnni=False` takes the plain C++ loops
    for the integer products even where the CPU has VNNI (tests compare the two)."""
    if not isinstance(model, GPT):  # another runtime behind the engine (tinylm.interop.onnx.OnnxModel)
        return None
    cfg = model.config
    if (not is_prepared(model) or model.training or cfg.position != "rope" or cfg.norm != "rmsnorm"
            or cfg.ffn != "swiglu" or cfg.norm_placement != "pre" or cfg.bias):
        return None
    # Layers the C++ step does not compute: per-head q/k norms, FAN features before attention,
    # CoLA projections, and heads narrower than n_embd / n_head (a structurally pruned model).
    if cfg.qk_norm or cfg.fan_input != "none" or cfg.cola_targets or cfg.n_head * cfg.head_dim != cfg.n_embd:
        return None
    if any(p.device.type != "cpu" or p.dtype not in (torch.float32, torch.int8, torch.uint8)
           for p in [*model.parameters(), *model.buffers()]):
        return None
    norms: list[torch.Tensor] = []
    matrices: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    for block in model.blocks:
        if not (isinstance(block.norm1, RMSNorm) and isinstance(block.norm2, RMSNorm)):
            return None
        norms += [block.norm1.weight.detach(), block.norm2.weight.detach()]
        ffn = block.ffn
        if not isinstance(ffn, (SwiGLU, PreparedSwiGLU)):
            return None
        matrices += [_matrix(block.attn.qkv), _matrix(block.attn.proj), _matrix(ffn.gate), _matrix(ffn.up),
                     _matrix(ffn.down)]
    head = model.lm_head.embedding.table if isinstance(model.lm_head, TiedQuantizedHead) else model.lm_head
    matrices.append(_matrix(head))
    if isinstance(model.tok_emb, QuantizedEmbedding):
        embedding = _matrix(model.tok_emb.table)
    elif type(model.tok_emb) is nn.Embedding:
        embedding = (model.tok_emb.weight.detach(), _NO_SCALE)
    else:
        embedding = None
    if embedding is None or any(m is None for m in matrices) or not isinstance(model.norm_f, RMSNorm):
        return None
    if not quantize_activations and any(w.dtype == torch.uint8 for w, _ in [*matrices, embedding]):
        return None
    ext = decode_kernels()
    if ext is None:
        return None
    eps = {m.eps for m in model.modules() if isinstance(m, RMSNorm)}
    if len(eps) != 1:
        return None
    kernel = ext.DecodeStep(norms, [w for w, _ in matrices], [s for _, s in matrices], embedding[0], embedding[1],
                            model.norm_f.weight.detach(), model.rope.cos, model.rope.sin, cfg.n_head, cfg.kv_heads,
                            eps.pop(), quantize_activations, vnni and ext.vnni)
    return FusedDecodeStep(kernel, cfg.block_size)


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """logits (B, V) float32 on the CPU, in place: -inf wherever `bitmask`'s bit is 0 (the layout
    of `FusedDecodeStep.finish`); the step's own loop, which `finish` uses (tests compare it with
    torch's masking)."""
    kernels = decode_kernels()
    if kernels is None:
        raise RuntimeError("the decode step's kernels are not available")
    kernels.apply_bitmask(logits, bitmask)


def _matrix(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(weight, scale) of a layer the kernel can read: float (out, in) with no scale, or
    symmetric int8 with its per-row scales; None for any other layer."""
    if type(layer) in (PreparedLinear, nn.Linear) and layer.bias is None:
        return layer.weight.detach(), _NO_SCALE
    if type(layer) is Int8Linear and layer.bias is None and layer.zero_point is None:
        return layer.qweight, layer.scale
    if (type(layer) is Int4Linear and layer.bias is None and layer.zero_point is None
            and layer.group_size == ACTIVATION_BLOCK):
        return layer.qweight, layer.scale
    return None
