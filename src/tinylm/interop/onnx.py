"""ONNX export: a tinylm checkpoint as one ONNX decoder graph with a KV cache, run by ONNX Runtime.

The graph follows the convention of Hugging Face Optimum's decoder exports, so ONNX Runtime
users (and their tools) recognise it:

    inputs   input_ids (B, T) int64           the new tokens
             attention_mask (B, P+T) int64    1 = a real token, 0 = left padding
             position_ids (B, T) int64        each new token's position (padding shifts them)
             past_key_values.{i}.key/.value   (B, H_kv, P, D) float32, layer i's cached keys/values
    outputs  logits (B, T, V) float32
             present.{i}.key/.value           (B, H_kv, P+T, D): past followed by the new slots

Batch B, new tokens T and past length P are dynamic, so the one graph serves the prefill
(P = 0) and every decode step (T = 1): decoding in ONNX Runtime is incremental, like tinylm's.

The graph is traced from a module written here from the checkpoint's state_dict (the names in
model.safetensors), not from tinylm's model classes: their forward is shaped for speed in
PyTorch (cached weight layouts, an in-place preallocated cache), while an exported graph wants
plain operators with every linear a MatMul against a constant (in, out) matrix, which is what
`onnxruntime.quantization.quantize_dynamic` turns into int8 MatMulInteger. Being a second
implementation, it is also checked against tinylm's model logit by logit (tests).

`OnnxModel` presents an ONNX session as a tinylm model (config, `model(idx, cache=...)`), so
generation runs through tinylm's one engine (samplers, stop strings, grammars, batching):
the engine's KVCache holds the keys and values between steps, as it does for the PyTorch model.

Folder written by `export_onnx` (what `load_onnx` and `tinylm generate --runtime onnx` read):

    out/
      model.onnx       the graph and its weights (float32, or int8 weights with --int8)
      config.json      the ModelConfig (layers, heads, context, prompt format)
      tokenizer.json   the tokenizer, as in the checkpoint

onnx and onnxruntime are optional dependencies (`pip install 'tinylm[onnx]'`).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.atomic_files import atomic_folder, read_json, write_json
from tinylm.transforms import merge_all
from tinylm.checkpoint import CONFIG_FILE, load_model
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer

if TYPE_CHECKING:
    from tinylm.api import LanguageModel
    from tinylm.model import KVCache

ONNX_FILE = "model.onnx"
OPSET = 18
# Recorded in the graph's metadata so a folder says what it holds.
PRECISION_KEY = "tinylm.precision"


def require_onnx(export: bool = False) -> None:
    """Running needs onnxruntime; exporting also onnx and onnxscript (torch's exporter writes with it)."""
    try:
        import onnxruntime  # noqa: F401

        if export:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
    except ImportError as e:
        raise TinyLMError(f"ONNX {'export' if export else 'runtime'} needs {e.name}: pip install 'tinylm[onnx]'") from None


def _input_names(n_layer: int) -> list[str]:
    names = ["input_ids", "attention_mask", "position_ids"]
    for i in range(n_layer):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    return names


def _output_names(n_layer: int) -> list[str]:
    names = ["logits"]
    for i in range(n_layer):
        names += [f"present.{i}.key", f"present.{i}.value"]
    return names


# --- the exported decoder ------------------------------------------------------------------


class _Linear(nn.Module):
    """x @ W + b with W stored (in, out): a MatMul on a constant in the graph."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.t().contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


class _Norm(nn.Module):
    def __init__(self, cfg: ModelConfig, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.rms, self.eps = cfg.norm == "rmsnorm", cfg.norm_eps
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rms:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class _Layer(nn.Module):
    def __init__(self, cfg: ModelConfig, sd: dict[str, torch.Tensor], prefix: str) -> None:
        super().__init__()

        def linear(name: str) -> _Linear:
            return _Linear(sd[f"{prefix}{name}.weight"], sd.get(f"{prefix}{name}.bias"))

        def norm(name: str) -> _Norm:
            return _Norm(cfg, sd[f"{prefix}{name}.weight"], sd.get(f"{prefix}{name}.bias"))

        self.cfg = cfg
        self.norm1, self.norm2 = norm("norm1"), norm("norm2")
        self.qkv, self.proj = linear("attn.qkv"), linear("attn.proj")
        self.up, self.down = linear("ffn.up"), linear("ffn.down")
        self.gate = linear("ffn.gate") if cfg.ffn == "swiglu" else None
        self.mid = linear("ffn.mid") if cfg.ffn == "mlp3" else None

    def attention(
        self, x: torch.Tensor, bias: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
        past_k: torch.Tensor, past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        B, T, _ = x.shape
        H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
        q, k, v = self.qkv(x).split([H * D, H_kv * D, H_kv * D], dim=-1)
        q = q.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.reshape(B, T, H_kv, D).transpose(1, 2)
        v = v.reshape(B, T, H_kv, D).transpose(1, 2)
        if rope is not None:
            q, k = _rotate_half(q, *rope), _rotate_half(k, *rope)
        k = torch.cat([past_k, k], dim=2)  # (B, H_kv, P+T, D): the present
        v = torch.cat([past_v, v], dim=2)
        kq, vq = k, v
        if H != H_kv:  # each group of H/H_kv query heads reads one key/value head
            S = k.shape[2]
            kq = k[:, :, None].expand(B, H_kv, H // H_kv, S, D).reshape(B, H, S, D)
            vq = v[:, :, None].expand(B, H_kv, H // H_kv, S, D).reshape(B, H, S, D)
        scores = (q @ kq.transpose(-2, -1)) * (1.0 / math.sqrt(D)) + bias
        y = torch.softmax(scores, dim=-1) @ vq
        return self.proj(y.transpose(1, 2).reshape(B, T, H * D)), k, v

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        ffn = self.cfg.ffn
        if ffn == "swiglu":
            return self.down(F.silu(self.gate(x)) * self.up(x))
        if ffn == "mlp3":
            return self.down(F.gelu(self.mid(F.gelu(self.up(x)))))
        return self.down(F.relu(self.up(x)) if ffn == "relu" else F.gelu(self.up(x)))

    def forward(self, x, bias, rope, past_k, past_v):
        if self.cfg.norm_placement == "pre":
            y, k, v = self.attention(self.norm1(x), bias, rope, past_k, past_v)
            x = x + y
            return x + self.ffn(self.norm2(x)), k, v
        y, k, v = self.attention(x, bias, rope, past_k, past_v)
        x = self.norm1(x + y)
        return self.norm2(x + self.ffn(x)), k, v


def _rotate_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE in the rotate-half pairing (i, i + D/2), as tinylm and Hugging Face's Llama use."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def _sinusoidal_table(block_size: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine table (not stored in checkpoints: tinylm recomputes it too)."""
    pos = torch.arange(block_size, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(block_size, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class OnnxDecoder(nn.Module):
    """The graph that export_onnx traces: one forward for prefill and decode, cache in and out."""

    def __init__(self, cfg: ModelConfig, sd: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Parameter(sd["tok_emb.weight"].clone(), requires_grad=False)
        table = None  # added to the token embedding, by position
        if cfg.position == "learned":
            table = sd["pos_emb.weight"].clone()
        elif cfg.position == "sinusoidal":
            table = _sinusoidal_table(cfg.block_size, cfg.n_embd)
        self.register_buffer("pos_table", table)
        if cfg.position == "rope":
            D = cfg.head_dim
            inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
            angles = torch.outer(torch.arange(cfg.block_size, dtype=torch.float32), inv_freq)
            self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], dim=-1))
            self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()], dim=-1))
        self.layers = nn.ModuleList(_Layer(cfg, sd, f"blocks.{i}.") for i in range(cfg.n_layer))
        self.norm_f = None
        if cfg.norm_placement == "pre":
            self.norm_f = _Norm(cfg, sd["norm_f.weight"], sd.get("norm_f.bias"))
        # The head is stored on its own even when tied: Gather reads the embedding by rows, the
        # head multiplies by its transpose, and quantize_dynamic only quantizes MatMul constants.
        self.head = _Linear(sd.get("lm_head.weight", sd["tok_emb.weight"]), None)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        T = input_ids.shape[1]
        S = attention_mask.shape[1]
        x = F.embedding(input_ids, self.tok_emb)
        if self.pos_table is not None:
            x = x + F.embedding(position_ids, self.pos_table)
        rope = None
        if self.cfg.position == "rope":
            rope = (F.embedding(position_ids, self.cos)[:, None], F.embedding(position_ids, self.sin)[:, None])
        # Query t sits in slot S - T + t; it sees earlier slots that are not padding, and itself
        # (so a padding query's softmax is never over nothing; its output is never used).
        q_slot = torch.arange(T, device=x.device)[:, None] + (S - T)
        k_slot = torch.arange(S, device=x.device)[None, :]
        causal = k_slot <= q_slot  # (T, S)
        visible = attention_mask.bool()[:, None, None, :] | (k_slot == q_slot)[None, None]
        allowed = causal[None, None] & visible  # (B, 1, T, S)
        bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill(~allowed, float("-inf"))
        present: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, bias, rope, past[2 * i], past[2 * i + 1])
            present += [k, v]
        if self.norm_f is not None:
            x = self.norm_f(x)
        return (self.head(x), *present)


def _example_inputs(cfg: ModelConfig, batch: int = 2, new: int = 3, past: int = 4) -> tuple[torch.Tensor, ...]:
    """Sizes chosen distinct and > 1 so the exporter keeps every axis symbolic."""
    ids = torch.randint(0, cfg.vocab_size, (batch, new))
    mask = torch.ones(batch, past + new, dtype=torch.long)
    positions = torch.arange(past, past + new).expand(batch, new).contiguous()
    kv = [torch.randn(batch, cfg.kv_heads, past, cfg.head_dim) for _ in range(2 * cfg.n_layer)]
    return (ids, mask, positions, *kv)


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and the quantizer log and warn about their own internals (optional
    torchvision ops, axis renaming, "consider pre-processing"); none of it concerns the user."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _export_graph(cfg: ModelConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    import onnx

    decoder = OnnxDecoder(cfg, state).eval()
    batch, new = torch.export.Dim("batch"), torch.export.Dim("sequence")
    past = torch.export.Dim("past_sequence")
    total = torch.export.Dim.AUTO  # attention_mask's width: past + sequence
    # forward(input_ids, attention_mask, position_ids, *past): the cache is one nested entry.
    shapes = ({0: batch, 1: new}, {0: batch, 1: total}, {0: batch, 1: new}, ({0: batch, 2: past},) * (2 * cfg.n_layer))
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            decoder, _example_inputs(cfg), None, dynamo=True, opset_version=OPSET,
            input_names=_input_names(cfg.n_layer), output_names=_output_names(cfg.n_layer),
            dynamic_shapes=shapes, verbose=False,
        )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {PRECISION_KEY: "fp32"})
    onnx.save_model(proto, str(path))


def _quantize_int8(path: Path, out: Path) -> None:
    """int8 weights, activations quantized per call (dynamic): MatMul -> MatMulInteger."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    proto = onnx.load(str(out))
    onnx.helper.set_model_props(proto, {PRECISION_KEY: "int8"})
    onnx.save_model(proto, str(out))


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, int8: bool = False) -> Path:
    """Write `checkpoint` as an ONNX folder (model.onnx, config.json, tokenizer.json); atomic."""
    require_onnx(export=True)
    checkpoint, out = Path(checkpoint), Path(out)
    model = load_model(checkpoint)  # validates the checkpoint: shapes, names, readable weights
    model = merge_all(model)  # the format has plain layers only: fold transforms in, or refuse in one line
    if model.config.extensions():  # the decoder graph below is built from the plain layers only
        raise TinyLMError(f"cannot export this model to ONNX: the graph has no {', '.join(model.config.extensions())}")
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    tokenizer_file = checkpoint / TOKENIZER_FILENAME
    # Replacing OUT is fine when it is an earlier export; anything else (a checkpoint, a typo'd
    # path to some other folder) is the user's and is never deleted.
    if out.exists() and not (out.is_dir() and (is_onnx_folder(out) or not any(out.iterdir()))):
        raise TinyLMError(f"{out} exists and is not an ONNX export folder; choose a new path")
    with atomic_folder(out) as tmp:
        write_json(tmp / CONFIG_FILE, model.config.to_dict())
        if tokenizer_file.is_file():
            shutil.copyfile(tokenizer_file, tmp / TOKENIZER_FILENAME)
        if int8:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{out.name}.") as scratch:
                fp32 = Path(scratch) / ONNX_FILE
                _export_graph(model.config, state, fp32)
                _quantize_int8(fp32, tmp / ONNX_FILE)
        else:
            _export_graph(model.config, state, tmp / ONNX_FILE)
    return out


# --- running an exported folder --------------------------------------------------------------


class OnnxModel:
    """An ONNX Runtime session presented as a tinylm model, for the generation engine.

    What the engine uses of a model: `config`, `new_cache(...)` (a KVCache, as the GPT's),
    `model(idx, cache=..., last_only=...)` returning (logits, None) and filling the KVCache, `eval()`/`train(False)`/`training`, and
    `parameters()`, from whose first tensor the engine reads the device and dtype of the cache
    (here: a float32 CPU tensor of no elements). Inference only: `train(True)` is an error.
    """

    training = False

    def __init__(self, path: str | os.PathLike, config: ModelConfig, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT reports every load failure as a plain RuntimeError subclass
            raise TinyLMError(f"cannot load {path}: {str(e).strip().splitlines()[0]}") from None
        self.config = config
        expected = _input_names(config.n_layer)
        if [i.name for i in self.session.get_inputs()] != expected:
            raise TinyLMError(f"{path} is not a tinylm decoder graph for this config.json")
        self._outputs = _output_names(config.n_layer)
        self._anchor = torch.empty(0)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.precision = meta.get(PRECISION_KEY, "fp32")

    def parameters(self) -> Iterator[torch.Tensor]:
        yield self._anchor

    def new_cache(self, batch_size: int, max_len: int, **kwargs: Any) -> KVCache:
        from tinylm.model import KVCache

        return KVCache(self.config, batch_size, max_len, **kwargs)

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        if mode:
            raise TinyLMError("an ONNX model runs inference only; train the PyTorch checkpoint")
        return self

    def __call__(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
        cache: KVCache | None = None, last_only: bool = False,
    ) -> tuple[torch.Tensor, None]:
        if targets is not None:
            raise TinyLMError("an ONNX model computes logits only (no loss)")
        cfg = self.config
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > cfg.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds the context of {cfg.block_size}")
        pad = cache.pad if cache is not None else None
        slots = torch.arange(past + T)
        if pad is None:
            mask = torch.ones(B, past + T, dtype=torch.long)
            positions = slots[past:].expand(B, T)
        else:
            mask = (slots[None] >= pad[:, None]).long()
            positions = (slots[past:][None] - pad[:, None]).clamp(min=0)
        feed: dict[str, Any] = {
            "input_ids": idx.numpy().astype("int64", copy=False),
            "attention_mask": mask.numpy(),
            "position_ids": positions.contiguous().numpy(),
        }
        for i in range(cfg.n_layer):
            if cache is not None:
                k, v = cache.k[i, :, :, :past], cache.v[i, :, :, :past]
            else:
                k = v = torch.zeros(B, cfg.kv_heads, 0, cfg.head_dim)
            feed[f"past_key_values.{i}.key"] = k.contiguous().numpy()
            feed[f"past_key_values.{i}.value"] = v.contiguous().numpy()
        logits, *present = self.session.run(self._outputs, feed)
        if cache is not None:  # the new slots go into the engine's cache, as the model's own layers do
            for i in range(cfg.n_layer):
                cache.update(i, torch.from_numpy(present[2 * i][:, :, past:]),
                             torch.from_numpy(present[2 * i + 1][:, :, past:]))
            cache.advance(T)
        logits = torch.from_numpy(logits)
        return (logits[:, -1:] if last_only else logits), None


def is_onnx_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ONNX_FILE).is_file()


def load_onnx(path: str | os.PathLike, *, threads: int | None = None) -> LanguageModel:
    """An exported folder as a LanguageModel whose generation runs in ONNX Runtime."""
    from tinylm.api import LanguageModel

    require_onnx()
    path = Path(path)
    if not is_onnx_folder(path):
        raise TinyLMError(f"{path} is not an ONNX export folder (no {ONNX_FILE}); write one with tinylm export-onnx")
    cfg = ModelConfig.from_dict(read_json(path / CONFIG_FILE))
    if not (path / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"{path} has no {TOKENIZER_FILENAME}")
    model = OnnxModel(path / ONNX_FILE, cfg, threads=threads)
    return LanguageModel(model, load_tokenizer(path / TOKENIZER_FILENAME), path)  # type: ignore[arg-type]
