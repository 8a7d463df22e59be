"""Hugging Face interop: the same weights as a tinylm `GPT` or a transformers model.

Two architectures cover tinylm's two families, and the conversion is exact (same logits up
to float rounding; the tests check it against transformers itself):

    gpt2-style  <->  GPT2LMHeadModel   learned (or sinusoidal) positions, LayerNorm, GELU or
                                       ReLU MLP, biases, multi-head attention, pre-norm
    llama-style <->  LlamaForCausalLM  RoPE, RMSNorm, SwiGLU, GQA allowed, pre-norm, biases
                                       on all linears or on none

A config neither can express (post-norm, the 3-layer MLP, RoPE with LayerNorm...) is refused
with a `TinyLMError` that names the fields. Sinusoidal positions export as GPT-2's position
table filled with the sines (a GPT-2 reads them like learned ones), so they import back as
`position="learned"`. Only the forward pass must match: dropout (training only) is mapped to
GPT-2's three dropout rates or Llama's attention dropout, and the attention kernel to HF's default.

Weight layouts. GPT-2 stores linears as `Conv1D`, whose weight is the transpose of
`nn.Linear`'s, and fuses q, k and v in `c_attn` in the same [q; k; v] order as tinylm's
`attn.qkv`. Llama keeps q/k/v separate (split along the output dim). tinylm's RoPE uses
Llama's rotate-half pairing, so no row permutation is needed.

Exported folder (what `AutoModelForCausalLM`/`AutoTokenizer.from_pretrained` and vLLM read):

    out/
      config.json             with "architectures": ["GPT2LMHeadModel"] or ["LlamaForCausalLM"]
      generation_config.json
      model.safetensors       float32
      tokenizer.json          the `tokenizers` library's format (if the model has a tokenizer)
      tokenizer_config.json   PreTrainedTokenizerFast, special tokens, split_special_tokens

Model transforms (tinylm/transforms/). HF's classes hold plain layers only, so export folds
the model's transforms into plain weights first, on a copy (LoRA's W + BA, say), and refuses,
in one line, a model with a transform that cannot be merged. Non-persistent transforms such
as prepare_for_inference keep the plain weights and merge by being undone.

Tokenizers. Byte-level BPE is already a `tokenizers` object: its JSON is written as is. The
char tokenizer is rebuilt as an HF BPE model with no merges and `byte_fallback=True` (the
scheme Llama's tokenizer uses): the vocabulary is the same ids - specials, one token per
character, then `<0x00>`..`<0xFF>` - so an unseen character becomes its UTF-8 bytes in both.
`split_special_tokens` makes HF encode user text spelling "<bos>" as plain text, as tinylm
does. SentencePiece tokenizers are not exported (tinylm appends ids for roles the .model
lacks, which an HF SentencePiece tokenizer cannot express): export the model alone.
Import reads those two shapes of tokenizer.json back; any other tokenizer (e.g. OpenAI's
GPT-2, which has no <pad>/<bos>/<sep>) is left out and `import_hf` returns None for it.

transformers is an optional dependency (`pip install tinylm[hf]`); it is imported lazily.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_folder, atomic_write, read_json, write_json
from tinylm.model import GPT
from tinylm.tokenizers import SPECIAL_TOKENS, BPETokenizer, CharTokenizer, Tokenizer
from tinylm.transforms import merge_all

if TYPE_CHECKING:
    from transformers import PreTrainedModel

GPT2, LLAMA = "GPT2LMHeadModel", "LlamaForCausalLM"
HF_TOKENIZER_FILE, HF_TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise TinyLMError("Hugging Face interop needs transformers: pip install 'tinylm[hf]'") from None
    return transformers


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# --- which architecture can hold a config ---------------------------------------------------


def _problems(cfg: ModelConfig, arch: str) -> list[str]:
    """What `cfg` would have to change to fit `arch`; empty when it fits exactly."""
    if cfg.arch != "transformer":
        return [f"a transformer (not arch={cfg.arch!r})"]
    if arch == GPT2:
        need = {"position": ("learned", "sinusoidal"), "norm": ("layernorm",), "ffn": ("gelu", "relu")}
    else:
        need = {"position": ("rope",), "norm": ("rmsnorm",), "ffn": ("swiglu",)}
    need["norm_placement"] = ("pre",)
    problems = [
        f"{name}={'/'.join(allowed)} (not {getattr(cfg, name)!r})"
        for name, allowed in need.items() if getattr(cfg, name) not in allowed
    ]
    problems += [f"no {ext}" for ext in cfg.extensions() if not ext.startswith("norm_placement")]  # hybrid: above
    if arch == GPT2 and not cfg.bias:
        problems.append("bias=True")
    if arch == GPT2 and cfg.kv_heads != cfg.n_head:
        problems.append(f"n_kv_head=n_head (no grouped-query attention, not {cfg.n_kv_head})")
    if arch == GPT2 and cfg.n_head * cfg.head_dim != cfg.n_embd:  # GPT-2 splits n_embd into its heads
        problems.append(f"head_size=n_embd/n_head (heads pruned: {cfg.n_head} x {cfg.head_dim} != {cfg.n_embd})")
    return problems


def hf_architecture(cfg: ModelConfig) -> str:
    """The HF class name that holds `cfg` exactly, or a TinyLMError naming what does not fit."""
    found = {arch: _problems(cfg, arch) for arch in (GPT2, LLAMA)}
    for arch, problems in found.items():
        if not problems:
            return arch
    raise TinyLMError(
        "cannot export this model to Hugging Face format: "
        + "; ".join(f"{arch} needs {', '.join(p)}" for arch, p in found.items())
    )


# --- configs ---------------------------------------------------------------------------------


def _hf_config(cfg: ModelConfig, arch: str, tokenizer: Tokenizer | None):
    tf = require_transformers()
    special = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)  # HF defaults are GPT-2's/Llama's ids
    if tokenizer is not None:
        special = dict(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    common = dict(vocab_size=cfg.vocab_size, tie_word_embeddings=cfg.tie_weights, architectures=[arch], **special)
    if arch == GPT2:
        return tf.GPT2Config(
            n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
            n_inner=cfg.hidden_dim, activation_function=cfg.ffn,  # "gelu" is exact GELU in HF, like nn.GELU()
            layer_norm_epsilon=cfg.norm_eps,
            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, **common,
        )
    return tf.LlamaConfig(
        hidden_size=cfg.n_embd, intermediate_size=cfg.hidden_dim, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, num_key_value_heads=cfg.kv_heads, head_dim=cfg.head_dim,
        hidden_act="silu", max_position_embeddings=cfg.block_size, rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_theta, attention_bias=cfg.bias, mlp_bias=cfg.bias,
        attention_dropout=cfg.dropout, **common,
    )


def _field(hf_cfg: Any, name: str, ok: bool, why: str) -> None:
    if not ok:
        raise TinyLMError(f"cannot import {type(hf_cfg).__name__}: {name}={getattr(hf_cfg, name, None)!r} {why}")


def _rope(hf_cfg: Any) -> tuple[str, float]:
    """(rope type, theta), from transformers 5's `rope_parameters` or 4.x's `rope_theta`/`rope_scaling`."""
    params = getattr(hf_cfg, "rope_parameters", None) or getattr(hf_cfg, "rope_scaling", None) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    return rope_type, float(params.get("rope_theta", getattr(hf_cfg, "rope_theta", 10000.0)))


def _tinylm_config(hf_cfg: Any) -> ModelConfig:
    """The ModelConfig of an HF GPT-2 or Llama config, refusing settings tinylm cannot compute."""
    model_type = getattr(hf_cfg, "model_type", None)
    if model_type == "gpt2":
        act = hf_cfg.activation_function
        _field(hf_cfg, "activation_function", act in ("gelu", "relu"),
               "is not supported: tinylm has exact GELU ('gelu') and 'relu' (OpenAI GPT-2 uses the tanh approximation 'gelu_new')")
        _field(hf_cfg, "scale_attn_weights", hf_cfg.scale_attn_weights, "is not supported (tinylm scales by 1/sqrt(head_dim))")
        _field(hf_cfg, "scale_attn_by_inverse_layer_idx", not hf_cfg.scale_attn_by_inverse_layer_idx, "is not supported")
        _field(hf_cfg, "add_cross_attention", not hf_cfg.add_cross_attention, "is not supported (decoder-only)")
        d = dict(
            vocab_size=hf_cfg.vocab_size, block_size=hf_cfg.n_positions, n_layer=hf_cfg.n_layer, n_head=hf_cfg.n_head,
            n_embd=hf_cfg.n_embd, ffn=act, ffn_hidden=hf_cfg.n_inner, norm="layernorm", norm_eps=hf_cfg.layer_norm_epsilon,
            position="learned", bias=True, dropout=float(hf_cfg.resid_pdrop),
        )
    elif model_type == "llama":
        rope_type, theta = _rope(hf_cfg)
        _field(hf_cfg, "hidden_act", hf_cfg.hidden_act == "silu", "is not supported (tinylm's SwiGLU uses silu)")
        _field(hf_cfg, "rope_parameters", rope_type == "default", f"has rope_type {rope_type!r}; tinylm has plain RoPE only")
        _field(hf_cfg, "mlp_bias", hf_cfg.mlp_bias == hf_cfg.attention_bias,
               f"differs from attention_bias={hf_cfg.attention_bias} (tinylm has one bias setting)")
        heads = hf_cfg.num_attention_heads
        head_dim = getattr(hf_cfg, "head_dim", None) or hf_cfg.hidden_size // heads
        kv = hf_cfg.num_key_value_heads or heads
        d = dict(
            vocab_size=hf_cfg.vocab_size, block_size=hf_cfg.max_position_embeddings, n_layer=hf_cfg.num_hidden_layers,
            n_head=heads, n_kv_head=None if kv == heads else kv, n_embd=hf_cfg.hidden_size, ffn="swiglu",
            head_size=None if head_dim * heads == hf_cfg.hidden_size else head_dim,
            ffn_hidden=hf_cfg.intermediate_size, norm="rmsnorm", norm_eps=hf_cfg.rms_norm_eps, position="rope",
            rope_theta=theta, bias=hf_cfg.attention_bias, dropout=float(hf_cfg.attention_dropout or 0.0),
        )
    else:
        raise TinyLMError(f"cannot import model_type {model_type!r}: tinylm imports {GPT2} (gpt2) and {LLAMA} (llama)")
    d["tie_weights"] = bool(getattr(hf_cfg, "tie_word_embeddings", True))
    cfg = ModelConfig.from_dict(d)
    if cfg.ffn_hidden == ModelConfig.from_dict({**d, "ffn_hidden": None}).hidden_dim:
        cfg.ffn_hidden = None  # the family's default width: keep the config as a preset would write it
    return cfg


# --- weights ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    """One tinylm tensor and the HF tensor(s) holding the same numbers."""

    tinylm: str
    hf: tuple[str, ...]  # several = tinylm's tensor is their concatenation along dim 0 (q, k, v)
    transpose: bool = False  # GPT-2's Conv1D stores the weight as (in, out)


def _pairs(cfg: ModelConfig, arch: str) -> list[_Pair]:
    linears = ("weight", "bias") if cfg.bias else ("weight",)
    pairs: list[_Pair] = []
    if arch == GPT2:
        pos = "pos_emb.weight" if cfg.position == "learned" else "pos_emb.table"
        pairs += [_Pair("tok_emb.weight", ("transformer.wte.weight",)), _Pair(pos, ("transformer.wpe.weight",))]
        for i in range(cfg.n_layer):
            t, h = f"blocks.{i}.", f"transformer.h.{i}."
            for tn, hn in (("norm1", "ln_1"), ("norm2", "ln_2")):
                pairs += [_Pair(f"{t}{tn}.{p}", (f"{h}{hn}.{p}",)) for p in ("weight", "bias")]
            for tn, hn in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("ffn.up", "mlp.c_fc"), ("ffn.down", "mlp.c_proj")):
                pairs += [_Pair(f"{t}{tn}.{p}", (f"{h}{hn}.{p}",), transpose=p == "weight") for p in linears]
        pairs += [_Pair(f"norm_f.{p}", (f"transformer.ln_f.{p}",)) for p in ("weight", "bias")]
    else:
        pairs.append(_Pair("tok_emb.weight", ("model.embed_tokens.weight",)))
        for i in range(cfg.n_layer):
            t, h = f"blocks.{i}.", f"model.layers.{i}."
            pairs += [_Pair(f"{t}norm1.weight", (f"{h}input_layernorm.weight",)),
                      _Pair(f"{t}norm2.weight", (f"{h}post_attention_layernorm.weight",))]
            for p in linears:
                pairs.append(_Pair(f"{t}attn.qkv.{p}", tuple(f"{h}self_attn.{x}_proj.{p}" for x in "qkv")))
                pairs.append(_Pair(f"{t}attn.proj.{p}", (f"{h}self_attn.o_proj.{p}",)))
                pairs += [_Pair(f"{t}ffn.{x}.{p}", (f"{h}mlp.{x}_proj.{p}",)) for x in ("gate", "up", "down")]
        pairs.append(_Pair("norm_f.weight", ("model.norm.weight",)))
    pairs.append(_Pair("lm_head.weight", ("lm_head.weight",)))  # tied or not, both sides list it
    return pairs


def _qkv_sizes(cfg: ModelConfig) -> list[int]:
    return [cfg.n_head * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim]


def _load_exact(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` into `module`; every tensor of the module must be given (strict)."""
    with torch.no_grad():
        module.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)


def to_hf(model: GPT, tokenizer: Tokenizer | None = None) -> "PreTrainedModel":
    """A transformers GPT2LMHeadModel or LlamaForCausalLM with `model`'s weights, in eval mode.

    `tokenizer` only sets the config's bos/eos/pad token ids (what HF `generate` stops on).
    A model with transforms is exported with them merged (`model` itself is left as it is).
    """
    if model.transforms:
        try:
            model = merge_all(copy.deepcopy(model))
        except TinyLMError as e:
            raise TinyLMError(f"cannot export to Hugging Face format: {e}") from None
    cfg = model.config
    arch = hf_architecture(cfg)
    hf = getattr(require_transformers(), arch)(_hf_config(cfg, arch, tokenizer))
    dtype = model.tok_emb.weight.dtype
    hf.to(dtype=dtype, device=model.tok_emb.weight.device)
    # remove_duplicate=False keeps a tied lm_head.weight; buffers hold the sinusoidal table.
    ours = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers())}
    state: dict[str, torch.Tensor] = {}
    for pair in _pairs(cfg, arch):
        tensor = ours[pair.tinylm].detach().to(dtype)
        parts = tensor.split(_qkv_sizes(cfg)) if len(pair.hf) > 1 else (tensor,)
        for name, part in zip(pair.hf, parts):
            state[name] = part.T if pair.transpose else part
    _load_exact(hf, state)
    return hf.eval()


def from_hf(hf_model: "PreTrainedModel") -> GPT:
    """A tinylm GPT (float32, eval mode) with the weights of a GPT2LMHeadModel or LlamaForCausalLM."""
    arch = type(hf_model).__name__
    if arch not in (GPT2, LLAMA):
        raise TinyLMError(f"cannot import {arch}: tinylm imports {GPT2} and {LLAMA}")
    cfg = _tinylm_config(hf_model.config)
    theirs = hf_model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for pair in _pairs(cfg, arch):
        parts = [theirs[name].detach().float() for name in pair.hf]
        parts = [p.T if pair.transpose else p for p in parts]
        state[pair.tinylm] = torch.cat(parts) if len(parts) > 1 else parts[0]
    model = GPT(cfg).to(hf_model.device)
    _load_exact(model, state)
    return model.eval()


# --- tokenizers -------------------------------------------------------------------------------


def _hf_tokenizer_json(tokenizer: Tokenizer) -> str:
    """tokenizer.json (the `tokenizers` library's format) for a tinylm BPE or char tokenizer."""
    from tokenizers import AddedToken, decoders, models
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tokenizer, BPETokenizer):
        return tokenizer.hf.to_str()
    if isinstance(tokenizer, CharTokenizer):
        vocab = {tokenizer.token_str(i): i for i in range(tokenizer.vocab_size)}
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
        hf.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS.values()])
        return hf.to_str()
    raise TinyLMError(
        f"cannot export a {tokenizer.kind!r} tokenizer to Hugging Face format (only bpe and char); "
        "export the model without it (--no-tokenizer)"
    )


def _save_hf_tokenizer(tokenizer: Tokenizer, folder: Path, max_length: int) -> None:
    with atomic_write(folder / HF_TOKENIZER_FILE) as f:
        f.write(_hf_tokenizer_json(tokenizer))
    write_json(folder / HF_TOKENIZER_CONFIG, {
        # The generic fast tokenizer: understood by transformers 4.x and 5.x (and so by vLLM).
        "tokenizer_class": "PreTrainedTokenizerFast",
        **{f"{role}_token": tokenizer.token_str(getattr(tokenizer, f"{role}_id")) for role in SPECIAL_TOKENS},
        "model_max_length": max_length,
        "split_special_tokens": True,  # "<bos>" typed by a user is text, as in tinylm
        "clean_up_tokenization_spaces": False,  # would turn " ," into "," and break exact decoding
    })


def read_hf_tokenizer(folder: str | os.PathLike) -> Tokenizer:
    """The tinylm tokenizer in an HF folder's tokenizer.json (exported byte-level BPE or char).

    Raises TinyLMError saying why when there is none, or it is another kind of tokenizer.
    """
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(folder) / HF_TOKENIZER_FILE
    if not path.is_file():
        raise TinyLMError(f"{path.parent} has no {HF_TOKENIZER_FILE}")
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as e:  # the Rust library reports every parse error as a plain Exception
        raise TinyLMError(f"{path}: not a tokenizers JSON file: {_first_line(e)}") from None
    spec = json.loads(hf.to_str())
    model = spec.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback") and not model.get("merges"):
        chars = [token for token in hf.get_vocab() if len(token) == 1]
        tok = CharTokenizer(chars)
        if hf.get_vocab_size() != tok.vocab_size or any(
            hf.id_to_token(i) != tok.token_str(i) for i in range(tok.vocab_size)
        ):
            raise TinyLMError(f"{path}: a byte-fallback vocabulary not laid out as a tinylm char tokenizer")
        return tok
    # Byte-level BPE: anything else (a normalizer, another pre-tokenizer) changes how text
    # maps to tokens, and tinylm would then decode differently from the model's training.
    kinds = {key: (spec.get(key) or {}).get("type") for key in ("normalizer", "pre_tokenizer", "decoder")}
    if kinds != {"normalizer": None, "pre_tokenizer": "ByteLevel", "decoder": "ByteLevel"} or model.get("type") != "BPE":
        raise TinyLMError(f"{path}: not a byte-level BPE or char tokenizer ({model.get('type')}, {kinds})")
    return BPETokenizer(hf)  # checks the four special tokens and the byte-level vocabulary


# --- folders ----------------------------------------------------------------------------------


def check_out_dir(path: str | os.PathLike, overwrite: bool, source: str | os.PathLike | None = None) -> Path:
    """The folder to write, resolved; refuse anything whose replacement could lose user files.

    An existing non-empty folder is replaced only with `overwrite`, and only if it is a model
    folder (has config.json): `--force` with a mistyped OUT must not delete a home folder.
    """
    path = Path(path).resolve()
    if path.exists() and not path.is_dir():
        raise TinyLMError(f"{path} exists and is not a folder")
    if source is not None and path in (Path(source).resolve(), *Path(source).resolve().parents):
        raise TinyLMError(f"the output folder {path} would replace the input {source}")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise TinyLMError(f"{path} already exists and is not empty (--force / overwrite=True replaces it)")
        if not (path / "config.json").is_file():
            raise TinyLMError(f"{path} is not a model folder (no config.json): refusing to replace it")
    return path


# --- export and import ------------------------------------------------------------------------


def export_hf(
    source: str | os.PathLike | tuple[GPT, Tokenizer | None],
    out_dir: str | os.PathLike,
    *,
    tokenizer: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a Hugging Face model folder from a tinylm checkpoint folder or a (model, tokenizer).

    `tokenizer=False` leaves the tokenizer out (e.g. a SentencePiece one, which cannot be exported).
    """
    from tinylm.checkpoint import load_model
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer

    out = check_out_dir(out_dir, overwrite, None if isinstance(source, tuple) else source)
    if isinstance(source, tuple):
        model, tok = source
    else:
        model = load_model(source)
        has_tok = tokenizer and (Path(source) / TOKENIZER_FILENAME).is_file()
        tok = load_tokenizer(source) if has_tok else None
    tok = tok if tokenizer else None
    hf = to_hf(model, tok)
    with atomic_folder(out) as tmp:  # an error inside (e.g. an unexportable tokenizer) writes nothing
        hf.save_pretrained(tmp)  # config.json, generation_config.json, model.safetensors
        if tok is not None:
            _save_hf_tokenizer(tok, tmp, model.config.block_size)
    return out


def import_hf(hf_folder: str | os.PathLike) -> tuple[GPT, Tokenizer | None]:
    """Load a local HF GPT2LMHeadModel / LlamaForCausalLM folder as a tinylm GPT (float32).

    The tokenizer is None when the folder has none tinylm can use (see `read_hf_tokenizer`).
    """
    folder = Path(hf_folder)
    if not folder.is_dir():
        raise TinyLMError(f"not a folder: {folder}")
    if not (folder / "config.json").is_file():
        raise TinyLMError(f"{folder} is not a Hugging Face model folder (no config.json)")
    tf = require_transformers()
    raw = read_json(folder / "config.json")
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type not in ("gpt2", "llama"):
        if isinstance(raw, dict) and "model_type" not in raw and "norm_placement" in raw:
            raise TinyLMError(f"{folder} is a tinylm checkpoint, not a Hugging Face model folder")
        archs = raw.get("architectures") if isinstance(raw, dict) else None
        raise TinyLMError(f"unsupported architecture {archs or model_type!r} in {folder}: tinylm imports {GPT2} and {LLAMA}")
    cls = tf.GPT2LMHeadModel if model_type == "gpt2" else tf.LlamaForCausalLM
    try:
        hf_cfg = cls.config_class.from_pretrained(folder)
        _tinylm_config(hf_cfg)  # refuse unsupported settings before reading the weights
        hf, info = cls.from_pretrained(folder, config=hf_cfg, dtype=torch.float32, output_loading_info=True)
    except (SafetensorError, OSError, ValueError, TypeError, KeyError) as e:
        raise TinyLMError(f"cannot load {folder}: {_first_line(e)}") from None
    # transformers fills missing weights with random ones and only warns: that is an error here.
    bad = sorted(info.get("missing_keys", ())) + sorted(info.get("mismatched_keys", ()), key=str)
    if bad:
        raise TinyLMError(f"{folder}: weights missing or of the wrong shape: {', '.join(map(str, bad[:3]))}")
    model = from_hf(hf)
    try:
        tok = read_hf_tokenizer(folder)
    except TinyLMError:
        tok = None
    if tok is not None and tok.vocab_size > model.config.vocab_size:
        tok = None  # ids the model cannot embed: not this model's tokenizer
    return model, tok
