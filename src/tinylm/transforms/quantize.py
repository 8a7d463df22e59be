"""Quantization as persistent transforms: int8 and int4 weights, and dynamic int8.

Each transform replaces the plain nn.Linear layers of a built GPT (attention's qkv and proj,
the FFN's layers) and the token embedding by modules holding integer weights and their
scales as buffers, so a checkpoint stores them in model.safetensors (no float copy) and
records the transform in config.json; `tinylm.load` applies it again before reading the
weights. A tied head computes with the quantized embedding's integers; an untied head stays
float unless `head=True`; `embedding=False` keeps the embedding (and a tied head) float.

Formulas (W is one output row, or one group of `group_size` inputs of a row, for int4):

    symmetric   scale = max|W| / qmax                    q = clamp(round(W / scale), -qmax, qmax)
                W ~ q * scale                             (qmax = 127 for int8, 7 for int4)
    asymmetric  scale = (max W - min W) / (2^bits - 1)   zero = round(-min W / scale) + qmin
                q = clamp(round(W / scale) + zero, qmin, qmax)        W ~ (q - zero) * scale
                (int8: qmin, qmax = -128, 127; int4: 0, 15)

Asymmetric spends the whole integer range on [min W, max W] (the alternative the KV-cache
study names, for activations, and leaves unimplemented), symmetric needs no zero point; trained weight rows are
close to symmetric about zero, so symmetric is the default. int4 values are stored as
unsigned nibbles q + 8 (symmetric) or q (asymmetric), two per byte, so the file really holds
half a byte per weight.

Kernels (measured on the 2-core EPYC of docs/compression.md, the 24 block matmuls of
llama-style-small; figures there):

- int8 and int4, up to SMALL_ROWS rows (decode steps): tinylm's own C++ loops
  (transforms/kernels), which read the integer weights and widen them in registers; torch's
  `_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu` and dequantize-then-matmul were all
  slower than fp32 at batch 1 there. Without a C++ compiler: `_weight_int8pack_mm` (int8) and
  dequantize-then-matmul (int4), the same numbers, slowly.
- decode steps of a llama-style model (the engine's batches of any size): the fused decode
  step (transforms/decode_step.py) runs the whole layer stack in C++ and multiplies int8 and
  int4 (group 32, symmetric) weights by activations quantized to int8 per block of 32 (AVX-512
  VNNI), so its logits differ slightly from these layers' (float activations).
- more rows (prompts, perplexity): dequantize the layer to float once, then MKL's matmul.
  The float copy lives for one layer's product only, so the model's memory stays integer.
- dynamic-int8: fbgemm's `quantized::linear_dynamic` (activations quantized per call to int8,
  int8 x int8 products accumulated in int32), with the weight packed in fbgemm's layout once
  at apply and at load (a derived copy, rebuilt from the saved int8 weight and scales).

Apply quantization before prepare_for_inference (tinylm.load does): prepare_for_inference
leaves quantized layers alone and prepares the float ones that remain, and quantizing a
prepared model is refused (its prepared layers hold copies of the weights).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import Transform, register_transform
from tinylm.transforms.kernels import kernels

GROUP_SIZES = (32, 64, 128)
# Up to this many rows (decode steps of a batch) the integer kernels run; more rows (prompts,
# perplexity windows) dequantize the layer once and use MKL's matrix multiply, which wins there.
SMALL_ROWS = 16


# ----------------------------------------------------------------------------- quantizers

def quantize_rows(w: torch.Tensor, bits: int, asymmetric: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Quantize each row of w (..., n) on its own: returns (q, scale, zero), scale and zero of
    shape (...); zero is None when symmetric. q is int8 (int8) or uint8 nibble values (int4)."""
    w = w.detach().float()
    if asymmetric:
        qmin, qmax = (-128, 127) if bits == 8 else (0, 15)
        lo, hi = w.amin(-1).clamp(max=0), w.amax(-1).clamp(min=0)  # the range holds 0: zero is exact
        scale = ((hi - lo) / (qmax - qmin)).clamp(min=torch.finfo(torch.float32).tiny)
        zero = (torch.round(-lo / scale) + qmin).clamp(qmin, qmax)
        q = torch.clamp(torch.round(w / scale[..., None]) + zero[..., None], qmin, qmax)
    else:
        qmax = 127 if bits == 8 else 7
        scale = (w.abs().amax(-1) / qmax).clamp(min=torch.finfo(torch.float32).tiny)  # a zero row stays zero
        zero = None
        q = torch.clamp(torch.round(w / scale[..., None]), -qmax, qmax)
        if bits == 4:
            q = q + 8  # stored as an unsigned nibble
    dtype = torch.int8 if bits == 8 else torch.uint8
    return q.to(dtype), scale, (zero.to(dtype) if zero is not None else None)


def pack_int4(u: torch.Tensor) -> torch.Tensor:
    """Nibble values (..., n) in 0..15, n even -> bytes (..., n/2): low nibble first."""
    return (u[..., 0::2] | (u[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4."""
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(-2)


# ----------------------------------------------------------------------------- layers

class _QuantizedLinear(nn.Module):
    """Shared parts: sizes, the float bias (a buffer under the replaced layer's name)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("bias", None if bias is None else bias.detach().clone().float())

    def _finish(self, y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        y = y.reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def dequantized(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The float weight (out, in) these integers stand for, or its rows `rows` (token ids,
        when the integers are an embedding table)."""
        raise NotImplementedError


class Int8Linear(_QuantizedLinear):
    """Weight-only int8, one scale (and zero point) per output row; float activations."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, asymmetric: bool = False) -> None:
        super().__init__(weight, bias)
        q, scale, zero = quantize_rows(weight, 8, asymmetric)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", zero)

    def dequantized(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        pick = slice(None) if rows is None else rows
        q = self.qweight[pick].float()
        if self.zero_point is not None:
            q = q - self.zero_point[pick].float()[..., None]
        return q * self.scale[pick][..., None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).float().contiguous()
        if x2.shape[0] > SMALL_ROWS:  # a prompt or a perplexity window: one float weight, MKL's matmul
            return self._finish(F.linear(x2, self.dequantized()), x.shape)
        ext = kernels()
        if ext is not None:
            y = ext.int8_linear(x2, self.qweight, self.scale)
        else:
            y = torch.ops.aten._weight_int8pack_mm(x2, self.qweight, self.scale)
        if self.zero_point is not None:
            # x @ ((q - z) s).T = x @ (q s).T - sum(x) (z s)
            y = y - x2.sum(-1, keepdim=True) * (self.zero_point.float() * self.scale)
        return self._finish(y, x.shape)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, asymmetric={self.zero_point is not None}"


class Int4Linear(_QuantizedLinear):
    """Weight-only int4, one scale (and zero point) per group of `group_size` inputs of a row,
    two weights per byte."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, group_size: int, asymmetric: bool = False) -> None:
        super().__init__(weight, bias)
        self.group_size = group_size
        groups = weight.detach().reshape(self.out_features, self.in_features // group_size, group_size)
        u, scale, zero = quantize_rows(groups, 4, asymmetric)
        self.register_buffer("qweight", pack_int4(u.reshape(self.out_features, self.in_features)))
        self.register_buffer("scale", scale)  # (out, in / group_size)
        self.register_buffer("zero_point", zero)
        self.refresh()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    def refresh(self) -> None:
        """The zero points as floats for the kernel (8 for symmetric), rebuilt at load."""
        zero = self.zero_point.float() if self.zero_point is not None else torch.full_like(self.scale, 8.0)
        self.register_buffer("offset", zero, persistent=False)

    def dequantized(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        pick = slice(None) if rows is None else rows
        packed = self.qweight[pick]
        u = unpack_int4(packed).view(*packed.shape[:-1], -1, self.group_size).float()
        return ((u - self.offset[pick][..., None]) * self.scale[pick][..., None]).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).float().contiguous()
        ext = kernels() if x2.shape[0] <= SMALL_ROWS else None
        if ext is None:  # many rows (dequantizing once is then cheap), or no kernel
            return self._finish(F.linear(x2, self.dequantized()), x.shape)
        return self._finish(ext.int4_linear(x2, self.qweight, self.scale, self.offset, self.group_size), x.shape)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, "
                f"asymmetric={self.zero_point is not None}")


class DynamicInt8Linear(_QuantizedLinear):
    """int8 weights (symmetric, per output row) and int8 activations (quantized per call by
    fbgemm, one scale for the input), int32 accumulation."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__(weight, bias)
        q, scale, _ = quantize_rows(weight, 8, asymmetric=False)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.pack()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.pack())

    def pack(self) -> None:
        """fbgemm's packed weight, built from the int8 weight and scales (not saved)."""
        with warnings.catch_warnings():  # torch deprecates qint8 tensors, yet fbgemm's prepack takes only them
            warnings.simplefilter("ignore", UserWarning)
            qt = torch._make_per_channel_quantized_tensor(
                self.qweight, self.scale.double(), torch.zeros_like(self.scale, dtype=torch.long), 0)
        self._packed = torch.ops.quantized.linear_prepack(qt, self.bias)

    def dequantized(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        pick = slice(None) if rows is None else rows
        return self.qweight[pick].float() * self.scale[pick][..., None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        # reduce_range: fbgemm's int8 products are summed in pairs into int16 on x86; 7-bit
        # activations keep those sums from saturating.
        y = torch.ops.quantized.linear_dynamic(x2.float().contiguous(), self._packed, True)
        return y.reshape(*x.shape[:-1], self.out_features)  # the packed weight adds the bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


# ----------------------------------------------------------------------------- transforms

class QuantizedEmbedding(nn.Module):
    """A token embedding whose table is a quantized layer's weight: a lookup dequantizes the
    rows it reads. The table is a submodule (`tok_emb.table.qweight` in the state_dict) so a
    tied head can compute with the very same integers (TiedQuantizedHead)."""

    def __init__(self, table: _QuantizedLinear) -> None:
        super().__init__()
        self.table = table

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table.dequantized(idx)


class TiedQuantizedHead(nn.Module):
    """The output head of a tied model once its embedding is quantized: the embedding table's
    integers, used as a layer. It holds the table without registering it, so the state_dict
    stores the table once (under tok_emb), as a float tied model stores its matrix once."""

    def __init__(self, embedding: QuantizedEmbedding) -> None:
        super().__init__()
        self.__dict__["embedding"] = embedding  # not a submodule: no second copy in state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding.table(x)


@dataclass
class _Quantize(Transform):
    """Replace the model's plain nn.Linear layers (and by default the token embedding, with a
    tied head) by quantized ones."""

    persistent: ClassVar[bool] = True
    # The float weights are gone once quantized: nothing to put back, nothing exact to merge.
    reversible: ClassVar[bool] = False
    mergeable: ClassVar[bool] = False

    # The token embedding too: a lookup costs no decode time, but a float table is most of a
    # small quantized file (llama-style-small int8: 2.8x smaller with it, 4x without), and a
    # tied head then reads the same integers (one eighth of the bytes a decode step reads).
    embedding: bool = True
    # An untied head (a tied one follows the embedding).
    head: bool = False

    def quantized(self, weight: torch.Tensor, bias: torch.Tensor | None) -> _QuantizedLinear:
        raise NotImplementedError

    def check(self, model: GPT) -> None:
        """Refuse, in one line, a model this transform cannot quantize (before changing it)."""
        already = [t.name for t in model.transforms if isinstance(t, _Quantize)]
        if already:
            raise TinyLMError(f"this model is already quantized ({already[0]}); quantize the float checkpoint instead")
        if model.transforms:
            names = ", ".join(t.name for t in model.transforms)
            raise TinyLMError(f"quantize a model before other transforms ({names}); undo them first")

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        self.check(model)
        out: dict[str, nn.Module] = {}
        with torch.no_grad():
            tied = model.config.tie_weights
            for name, module in model.named_modules():
                if type(module) is nn.Linear and (name != "lm_head" or (self.head and not (tied and self.embedding))):
                    out[name] = self.quantized(module.weight, module.bias)
            if self.embedding:
                out["tok_emb"] = QuantizedEmbedding(self.quantized(model.tok_emb.weight, None))
                if tied:
                    out["lm_head"] = TiedQuantizedHead(out["tok_emb"])
        return out

    def layers(self, model: GPT) -> dict[str, nn.Module]:
        """The modules this transform would quantize, by name (what group sizes must divide)."""
        tied = model.config.tie_weights
        found = {name: m for name, m in model.named_modules()
                 if type(m) is nn.Linear and (name != "lm_head" or (self.head and not (tied and self.embedding)))}
        if self.embedding:
            found["tok_emb"] = model.tok_emb
        return found


@register_transform
@dataclass
class QuantizeInt8(_Quantize):
    name: ClassVar[str] = "int8"
    asymmetric: bool = False

    def quantized(self, weight: torch.Tensor, bias: torch.Tensor | None) -> _QuantizedLinear:
        return Int8Linear(weight, bias, self.asymmetric)


@register_transform
@dataclass
class QuantizeInt4(_Quantize):
    name: ClassVar[str] = "int4"
    group_size: int = 32
    asymmetric: bool = False

    def __post_init__(self) -> None:
        if self.group_size not in GROUP_SIZES:
            raise TinyLMError(f"int4 group size must be one of {', '.join(map(str, GROUP_SIZES))}, not {self.group_size}")

    def check(self, model: GPT) -> None:
        super().check(model)
        for name, module in self.layers(model).items():
            width = module.weight.shape[1]
            if width % self.group_size:
                raise TinyLMError(f"int4 group size {self.group_size} does not divide {name}'s {width} inputs")

    def quantized(self, weight: torch.Tensor, bias: torch.Tensor | None) -> _QuantizedLinear:
        return Int4Linear(weight, bias, self.group_size, self.asymmetric)


@register_transform
@dataclass
class QuantizeDynamicInt8(_Quantize):
    name: ClassVar[str] = "dynamic-int8"

    def quantized(self, weight: torch.Tensor, bias: torch.Tensor | None) -> _QuantizedLinear:
        return DynamicInt8Linear(weight, bias)


METHODS: dict[str, type[_Quantize]] = {cls.name: cls for cls in (QuantizeInt8, QuantizeInt4, QuantizeDynamicInt8)}


def quantize(model: GPT, method: str, *, group_size: int | None = None, asymmetric: bool = False,
             head: bool = False, embedding: bool = True) -> GPT:
    """Quantize `model` in place with one of METHODS; bad settings are one-line TinyLMErrors."""
    if method not in METHODS:
        raise TinyLMError(f"unknown quantization method {method!r}; choose one of: {', '.join(METHODS)}")
    settings: dict[str, object] = {"head": head, "embedding": embedding}
    if method == "int4":
        settings["group_size"] = group_size if group_size is not None else 32
    elif group_size is not None:
        raise TinyLMError(f"--group-size applies to int4 only, not {method}")
    if asymmetric:
        if method == "dynamic-int8":
            raise TinyLMError("dynamic-int8 is symmetric only (fbgemm's int8 weights have no zero point)")
        settings["asymmetric"] = True
    return METHODS[method](**settings).apply(model)


def is_quantized(model: GPT) -> bool:
    return any(isinstance(t, _Quantize) for t in model.transforms)


# ----------------------------------------------------------------------------- checkpoints

@dataclass
class QuantizeReport:
    """What `quantize_checkpoint` wrote and how close the quantized model stays."""

    out: str
    method: dict[str, object]
    bytes_before: int
    bytes_after: int
    check_text: str  # where the perplexity text came from
    check_tokens: int
    perplexity_before: float
    perplexity_after: float
    top1_agreement: float  # share of positions where both models predict the same next token


def quantize_checkpoint(
    checkpoint: str | os.PathLike, out: str | os.PathLike, method: str, *, group_size: int | None = None,
    asymmetric: bool = False, head: bool = False, embedding: bool = True, text: str | None = None,
    overwrite: bool = False,
    check_tokens: int = 2048,
) -> QuantizeReport:
    """Quantize the checkpoint folder `checkpoint` into `out` (written atomically; nothing is
    written when anything fails) and compare the two models on a short text: `text`, or one
    the float model samples itself (seeded) when none is given."""
    from tinylm.checkpoint import WEIGHTS_FILE, load_model, save_checkpoint
    from tinylm.interop.hf import check_out_dir
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer

    source = Path(checkpoint)
    target = check_out_dir(out, overwrite, source=source)
    model = load_model(source)
    if is_quantized(model):
        raise TinyLMError(f"{source} is already quantized ({model.transforms[0].name}); quantize the float checkpoint")
    if not (source / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {source} has no {TOKENIZER_FILENAME}")
    tokenizer = load_tokenizer(source / TOKENIZER_FILENAME)
    ids, origin = _check_ids(model, tokenizer, text, check_tokens)
    reference = _logits(model, ids)
    quantize(model, method, group_size=group_size, asymmetric=asymmetric, head=head, embedding=embedding)
    logits = _logits(model, ids)

    def copy_rest(folder: Path) -> None:
        # Files beside the model (a task's settings); not train_state: a quantized model is not trained on.
        for item in source.iterdir():
            if item.name in ("config.json", WEIGHTS_FILE, TOKENIZER_FILENAME, "train_state"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)

    save_checkpoint(target, model, tokenizer, extra=copy_rest)
    return QuantizeReport(
        # The folder as the caller named it, not resolved: a report that spells out where it
        # was written would differ between two identical runs in two places (pipeline check).
        out=str(out), method=model.transforms[0].to_config(),
        bytes_before=(source / WEIGHTS_FILE).stat().st_size, bytes_after=(target / WEIGHTS_FILE).stat().st_size,
        check_text=origin, check_tokens=len(ids) - 1,
        perplexity_before=_perplexity(reference, ids), perplexity_after=_perplexity(logits, ids),
        top1_agreement=float((reference.argmax(-1) == logits.argmax(-1)).float().mean()),
    )


def _check_ids(model: GPT, tokenizer, text: str | None, limit: int) -> tuple[list[int], str]:
    if text is not None:
        ids = tokenizer.encode(text)[: limit + 1]
        if len(ids) < 2:
            raise TinyLMError("the check text is too short (needs at least 2 tokens)")
        return ids, "given text"
    from tinylm.generation import Engine, GenerationConfig

    torch.manual_seed(0)
    n = min(limit, model.config.block_size - 1)
    result = Engine(model.eval(), tokenizer).generate([[0]], GenerationConfig(max_new_tokens=n, temperature=1.0, seed=0))
    return [0, *result[0].token_ids], "sampled from the float model (seed 0, temperature 1)"


@torch.inference_mode()
def _logits(model: GPT, ids: list[int]) -> torch.Tensor:
    """Next-token logits at every position, in disjoint windows of the model's context."""
    model.eval()
    context = model.config.block_size
    parts = [model(torch.tensor(ids[s: s + context])[None])[0][0] for s in range(0, len(ids) - 1, context)]
    return torch.cat(parts)[: len(ids) - 1]


def _perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    return math.exp(F.cross_entropy(logits, torch.tensor(ids[1:])).item())
