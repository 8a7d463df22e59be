"""GGUF export: a llama-style checkpoint as one .gguf file that llama.cpp loads.

Only llama-style models fit llama.cpp's `llama` architecture: RoPE, RMSNorm, SwiGLU,
pre-norm, no biases (grouped-query attention and a tied or untied head are fine). Anything
else is refused with a TinyLMError naming the fields, before a byte is written.

Tensors (tinylm state_dict name -> GGUF name; GGUF lists dimensions innermost first, so a
(out, in) matrix is written as is and reads back as [in, out]):

    tok_emb.weight              token_embd.weight
    blocks.{i}.norm1.weight     blk.{i}.attn_norm.weight
    blocks.{i}.attn.qkv.weight  blk.{i}.attn_q / attn_k / attn_v.weight (rows split [q; k; v])
    blocks.{i}.attn.proj.weight blk.{i}.attn_output.weight
    blocks.{i}.norm2.weight     blk.{i}.ffn_norm.weight
    blocks.{i}.ffn.gate/up/down blk.{i}.ffn_gate / ffn_up / ffn_down.weight
    norm_f.weight               output_norm.weight
    lm_head.weight              output.weight (left out when tied: llama.cpp then reuses token_embd)

Rotary layout. tinylm rotates the pairs (i, i + D/2) of each head ("rotate half", NEOX style in
llama.cpp's terms, as Hugging Face's Llama), while llama.cpp's `llama` architecture rotates
adjacent pairs (2i, 2i + 1). The q and k rows of each head are therefore permuted, as
llama.cpp's own convert_hf_to_gguf.py does for HF Llama checkpoints: row j of the first half
goes to 2j, row j of the second half to 2j + 1. q . k is unchanged (the same permutation on
both sides of the dot product), so attention computes the same numbers.

Types: f32 (everything float32), f16 (matrices float16, norms float32) or q8_0 (matrices in
llama.cpp's Q8_0 blocks: 32 int8 values and one float16 scale each, norms float32; a matrix
whose rows are not a multiple of 32 long stays float16).

Tokenizer metadata (what llama.cpp tokenizes with):
- byte-level BPE: tokenizer.ggml.model "gpt2" with pre-tokenizer "gpt-2" (tinylm's BPE is
  GPT-2's scheme: ByteLevel with GPT-2's split regex, no prefix space), its tokens, merges,
  and token types (specials CONTROL);
- char: tokenizer.ggml.model "llama" (SentencePiece-style) with every token a single
  character, the space written as SentencePiece's "▁", no space prefix, and the 256 byte
  tokens <0x00>..<0xFF> of type BYTE: llama.cpp's byte fallback then encodes an unseen
  character as its UTF-8 bytes, as tinylm does. With no multi-character tokens no merge ever
  applies, so llama.cpp's tokens equal tinylm's (a vocabulary that itself holds "▁" would be
  ambiguous and is refused);
- SentencePiece: refused (tinylm appends ids its .model lacks, which llama.cpp's tokenizer
  cannot express).
Ids past the tokenizer (a model vocabulary rounded up) are listed as unused "[PADn]" tokens.
bos/eos/pad/sep ids are declared; llama.cpp is told to add no bos (tinylm's prompt format decides).

gguf is an optional dependency (`pip install 'tinylm[gguf]'`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tinylm.atomic_files import atomic_write
from tinylm.transforms import merge_all
from tinylm.checkpoint import load_model
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.tokenizers import TOKENIZER_FILENAME, BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer

if TYPE_CHECKING:
    import gguf

TYPES = ("f32", "f16", "q8_0")
SPM_SPACE = "\u2581"  # SentencePiece's visible space


def require_gguf():
    try:
        import gguf
    except ImportError:
        raise TinyLMError("GGUF export needs the gguf package: pip install 'tinylm[gguf]'") from None
    return gguf


def gguf_problems(cfg: ModelConfig) -> list[str]:
    """What `cfg` would have to change to fit llama.cpp's llama architecture; empty if it fits."""
    if cfg.arch != "transformer":
        return [f"a transformer (not arch={cfg.arch!r})"]
    need = {"position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "norm_placement": "pre"}
    problems = [f"{name}={value} (not {getattr(cfg, name)!r})" for name, value in need.items() if getattr(cfg, name) != value]
    if cfg.bias:
        problems.append("bias=False")
    problems += [f"no {ext}" for ext in cfg.extensions() if not ext.startswith("norm_placement")]  # hybrid: above
    return problems


def permute_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of each head from rotate-half order (i, i + D/2) to adjacent pairs (2i, 2i + 1)."""
    out, *rest = w.shape
    return w.reshape(n_heads, 2, out // n_heads // 2, *rest).transpose(1, 2).reshape(w.shape)


def llama_tensors(cfg: ModelConfig, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GGUF name -> float32 tensor, in llama.cpp's layout."""
    H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    out = {"token_embd.weight": sd["tok_emb.weight"]}
    for i in range(cfg.n_layer):
        p, b = f"blocks.{i}.", f"blk.{i}."
        q, k, v = sd[p + "attn.qkv.weight"].split([H * D, H_kv * D, H_kv * D])
        out |= {
            b + "attn_norm.weight": sd[p + "norm1.weight"],
            b + "attn_q.weight": permute_rotary(q, H),
            b + "attn_k.weight": permute_rotary(k, H_kv),
            b + "attn_v.weight": v,
            b + "attn_output.weight": sd[p + "attn.proj.weight"],
            b + "ffn_norm.weight": sd[p + "norm2.weight"],
            b + "ffn_gate.weight": sd[p + "ffn.gate.weight"],
            b + "ffn_up.weight": sd[p + "ffn.up.weight"],
            b + "ffn_down.weight": sd[p + "ffn.down.weight"],
        }
    out["output_norm.weight"] = sd["norm_f.weight"]
    if not cfg.tie_weights:
        out["output.weight"] = sd["lm_head.weight"]
    return {name: t.detach().float().contiguous() for name, t in out.items()}


def _add_tensor(writer: gguf.GGUFWriter, name: str, t: torch.Tensor, kind: str) -> None:
    import gguf

    data = t.numpy()
    if data.ndim == 1 or kind == "f32":  # norms stay float32 in every type, as llama.cpp's converter keeps them
        writer.add_tensor(name, data.astype(np.float32))
        return
    if kind == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
        return
    writer.add_tensor(name, data.astype(np.float16))


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer: Tokenizer, vocab_size: int) -> None:
    import gguf

    special = tokenizer.special_ids
    if isinstance(tokenizer, BPETokenizer):
        tokens = [tokenizer.hf.id_to_token(i) for i in range(tokenizer.vocab_size)]
        merges = json.loads(tokenizer.hf.to_str())["model"]["merges"]
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
        types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    elif isinstance(tokenizer, CharTokenizer):
        if SPM_SPACE in tokenizer.chars:
            raise TinyLMError(f"the char vocabulary holds {SPM_SPACE!r}, which llama.cpp's tokenizer reads as a space")
        tokens, types = [], []
        for i in range(tokenizer.vocab_size):
            token = tokenizer.token_str(i)
            tokens.append(token.replace(" ", SPM_SPACE) if i not in special else token)
            if i in special:
                types.append(gguf.TokenType.CONTROL)
            elif i >= tokenizer.byte_offset:
                types.append(gguf.TokenType.BYTE)
            else:
                types.append(gguf.TokenType.NORMAL)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_add_space_prefix(False)
    else:
        raise TinyLMError(f"GGUF export supports byte-level BPE and char tokenizers, not {tokenizer.kind!r}")
    # The model's vocabulary may be rounded up past the tokenizer's: those ids are never produced by it.
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if isinstance(tokenizer, CharTokenizer):
        writer.add_token_scores([0.0] * len(tokens))  # no merges: the scores never decide anything
    writer.add_bos_token_id(tokenizer.bos_id)
    writer.add_eos_token_id(tokenizer.eos_id)
    writer.add_pad_token_id(tokenizer.pad_id)
    writer.add_sep_token_id(tokenizer.sep_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def export_gguf(checkpoint: str | os.PathLike, out: str | os.PathLike, kind: str = "f32") -> Path:
    """Write `checkpoint` as a GGUF file of architecture llama; atomic (nothing on failure)."""
    gguf = require_gguf()
    if kind not in TYPES:
        raise TinyLMError(f"unknown GGUF type {kind!r}; choose one of {', '.join(TYPES)}")
    checkpoint, out = Path(checkpoint), Path(out)
    model = load_model(checkpoint)
    model = merge_all(model)  # the format has plain layers only: fold transforms in, or refuse in one line
    cfg = model.config
    problems = gguf_problems(cfg)
    if problems:
        raise TinyLMError(f"cannot export this model to GGUF (llama architecture): it needs {', '.join(problems)}")
    if not (checkpoint / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {checkpoint} has no {TOKENIZER_FILENAME}: llama.cpp needs the tokenizer")
    tokenizer = load_tokenizer(checkpoint / TOKENIZER_FILENAME)
    if out.is_dir():
        raise TinyLMError(f"{out} is a folder; give the path of the .gguf file to write")
    if out.exists() and not _is_gguf(out):  # an earlier export is replaced; any other file is the user's
        raise TinyLMError(f"{out} exists and is not a GGUF file; choose a new path")

    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]
    out.parent.mkdir(parents=True, exist_ok=True)
    # GGUFWriter opens its file by name; it writes into a scratch folder beside OUT, and the
    # finished file is then copied into place through atomic_write.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        tmp = Path(scratch) / out.name
        writer = gguf.GGUFWriter(str(tmp), "llama")
        writer.add_name(checkpoint.resolve().name)
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_vocab_size(cfg.vocab_size)
        writer.add_context_length(cfg.block_size)
        writer.add_embedding_length(cfg.n_embd)
        writer.add_block_count(cfg.n_layer)
        writer.add_feed_forward_length(cfg.hidden_dim)
        writer.add_head_count(cfg.n_head)
        writer.add_head_count_kv(cfg.kv_heads)
        writer.add_rope_dimension_count(cfg.head_dim)
        if cfg.n_head * cfg.head_dim != cfg.n_embd:  # heads pruned: llama.cpp otherwise assumes n_embd / n_head
            writer.add_key_length(cfg.head_dim)
            writer.add_value_length(cfg.head_dim)
        writer.add_rope_freq_base(cfg.rope_theta)
        writer.add_layer_norm_rms_eps(cfg.norm_eps)
        _add_tokenizer(writer, tokenizer, cfg.vocab_size)
        for name, t in llama_tensors(cfg, model.state_dict()).items():
            _add_tensor(writer, name, t, kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb") as src, atomic_write(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def read_gguf_tensors(path: str | os.PathLike) -> dict[str, tuple[str, np.ndarray]]:
    """GGUF name -> (type name, float32 array in tinylm's (out, in) shape), dequantized."""
    gguf = require_gguf()
    reader = gguf.GGUFReader(str(path))
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors[t.name] = (t.tensor_type.name, np.asarray(values, dtype=np.float32).reshape(shape))
    return tensors


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Scalar and string metadata, and arrays of strings or numbers, as Python values."""
    gguf = require_gguf()
    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
