"""The bridge to PEFT: a tinylm LoRA as a PEFT LoRA adapter for the `export-hf` model, and back.

    export_peft_lora("runs/base/best", "runs/ft/adapter", "out/peft")   # adapter_config.json + adapter_model.safetensors
    # in transformers: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(<export-hf of base>), "out/peft")
    import_peft_lora("out/peft", "runs/base/best", "runs/ft/adapter2")   # a tinylm adapter folder again

Module names (tinylm -> the export-hf model; interop/hf.py has the weights' mapping):

    llama-style  blocks.i.attn.qkv -> model.layers.i.self_attn.{q,k,v}_proj   attn.proj -> self_attn.o_proj
                 blocks.i.ffn.{gate,up,down} -> model.layers.i.mlp.{gate,up,down}_proj
    gpt2-style   blocks.i.attn.qkv -> transformer.h.i.attn.c_attn (fused, same [q; k; v] order)
                 attn.proj -> attn.c_proj, ffn.up -> mlp.c_fc, ffn.down -> mlp.c_proj (Conv1D: fan_in_fan_out)
    lm_head -> lm_head (untied models)

The fused qkv. tinylm's qkv weight is [W_q; W_k; W_v] (rows), so its update
s B A = s [B_q; B_k; B_v] A: the rows of B split by projection and A is shared. Exported,
q_proj gets (A, B_q), k_proj (A, B_k), v_proj (A, B_v), each with the same r and alpha, so each
projection's PEFT update s B_x A is exactly its rows of tinylm's (s = alpha / r in both).
Going back, a PEFT adapter trained in Hugging Face has its own A per projection; the fused
layer then takes rank 3r: A = [A_q; A_k; A_v], B = blockdiag(B_q, B_k, B_v), whose product is
the three updates stacked, exactly; a projection PEFT left out contributes a zero block.
One LoRA transform has one rank and scale, so every layer is padded to the largest rank R
(zero rows of A, zero columns of B: the product is unchanged) and alpha becomes alpha * R / r,
which keeps the scale alpha / r.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tinylm.atomic_files import atomic_folder, read_json
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT

PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."


def _hf_names(cfg: ModelConfig, name: str) -> list[str]:
    """The export-hf module(s) computing tinylm's linear layer `name`."""
    from tinylm.interop.hf import GPT2, hf_architecture

    arch = hf_architecture(cfg)
    if name == "lm_head":
        return ["lm_head"]
    _, i, where = name.split(".", 2)
    if arch == GPT2:
        table = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "ffn.up": "mlp.c_fc", "ffn.down": "mlp.c_proj"}
        return [f"transformer.h.{i}.{table[where]}"]
    if where == "attn.qkv":
        return [f"model.layers.{i}.self_attn.{x}_proj" for x in "qkv"]
    table = {"attn.proj": "self_attn.o_proj", "ffn.gate": "mlp.gate_proj", "ffn.up": "mlp.up_proj", "ffn.down": "mlp.down_proj"}
    return [f"model.layers.{i}.{table[where]}"]


def _the_lora(model: GPT):
    from tinylm.transforms import LoRA

    loras = [t for t in model.transforms if isinstance(t, LoRA)]
    others = [t.name for t in model.transforms if not isinstance(t, LoRA) and t.persistent]
    if len(loras) != 1 or others:
        raise TinyLMError("PEFT export takes a model with one LoRA and no other saved transform")
    return loras[0]


def export_peft_lora(base: str | os.PathLike, adapter: str | os.PathLike, out: str | os.PathLike,
                     base_model_name_or_path: str | None = None) -> Path:
    """Write the tinylm LoRA adapter `adapter` (trained on `base`) as a PEFT LoRA adapter for
    the `tinylm export-hf` model of `base`."""
    from tinylm.finetune import attach_adapter, load_base
    from tinylm.interop.hf import GPT2, _qkv_sizes, check_out_dir, hf_architecture, require_transformers

    target = check_out_dir(out, False)
    require_transformers()
    import peft

    model = attach_adapter(load_base(base), adapter)
    lora = _the_lora(model)
    cfg = model.config
    arch = hf_architecture(cfg)
    tensors: dict[str, torch.Tensor] = {}
    modules: list[str] = []
    for name, layer in lora._installed.items():
        hf = _hf_names(cfg, name)
        rows = layer.lora_B.detach().split(_qkv_sizes(cfg)) if len(hf) == 3 else (layer.lora_B.detach(),)
        for hf_name, b in zip(hf, rows):
            tensors[f"{PREFIX}{hf_name}.lora_A.weight"] = layer.lora_A.detach().clone()  # one copy each: PEFT keeps three
            tensors[f"{PREFIX}{hf_name}.lora_B.weight"] = b.contiguous()
            modules.append(hf_name)
    config = peft.LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=sorted(modules),
        bias="none", task_type="CAUSAL_LM", fan_in_fan_out=arch == GPT2,
        base_model_name_or_path=base_model_name_or_path or str(base),
    )
    with atomic_folder(target) as tmp:
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / PEFT_WEIGHTS), metadata={"format": "pt"})
    return target


def import_peft_lora(peft_dir: str | os.PathLike, base: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A PEFT LoRA adapter for the export-hf model of the tinylm checkpoint `base` -> a tinylm
    adapter folder (tinylm.finetune) for `base`; layers PEFT cannot map are refused in one line."""
    from tinylm.finetune import load_base, save_adapter, weights_sha256
    from tinylm.interop.hf import _qkv_sizes, check_out_dir
    from tinylm.transforms.freeze import linear_names
    from tinylm.transforms import LoRA

    folder = Path(peft_dir)
    if not (folder / PEFT_CONFIG).is_file() or not (folder / PEFT_WEIGHTS).is_file():
        raise TinyLMError(f"{folder} is not a PEFT adapter folder ({PEFT_CONFIG} and {PEFT_WEIGHTS})")
    target = check_out_dir(out, False)
    config: dict[str, Any] = read_json(folder / PEFT_CONFIG)
    if config.get("peft_type") != "LORA":
        raise TinyLMError(f"{folder}: a {config.get('peft_type')} adapter; tinylm imports LoRA")
    if config.get("use_dora") or config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise TinyLMError(f"{folder}: DoRA, rsLoRA and per-layer ranks or alphas are not imported")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    weights = load_file(str(folder / PEFT_WEIGHTS))
    model = load_base(base)
    sha = weights_sha256(model)
    cfg = model.config
    pieces: dict[str, list[tuple[torch.Tensor, torch.Tensor] | None]] = {}
    used: set[str] = set()
    for name in linear_names(model):
        hf = _hf_names(cfg, name)
        found = [(weights.get(f"{PREFIX}{h}.lora_A.weight"), weights.get(f"{PREFIX}{h}.lora_B.weight")) for h in hf]
        if all(a is None for a, _ in found):
            continue
        pieces[name] = [None if a is None else (a, b) for a, b in found]
        used |= {f"{PREFIX}{h}.lora_{x}.weight" for h in hf for x in "AB"}
    unknown = sorted(set(weights) - used)
    if unknown or not pieces:
        raise TinyLMError(f"{folder}: LoRA tensors for layers tinylm's base has no counterpart of: {(unknown or ['none'])[0]}")
    fused: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, parts in pieces.items():
        if len(parts) == 1:
            fused[name] = parts[0]
            continue
        sizes = _qkv_sizes(cfg)
        present = [p for p in parts if p is not None]
        if len(present) == 3 and all(torch.equal(present[0][0], a) for a, _ in present):
            fused[name] = (present[0][0], torch.cat([b for _, b in present]))  # shared A: tinylm's own export
            continue
        a = torch.cat([p[0] if p is not None else torch.zeros(r, cfg.n_embd) for p in parts])
        b = torch.zeros(sum(sizes), len(parts) * r)
        row = 0
        for k, (p, size) in enumerate(zip(parts, sizes)):
            if p is not None:
                b[row:row + size, k * r:(k + 1) * r] = p[1]
            row += size
        fused[name] = (a, b)
    rank = max(a.shape[0] for a, _ in fused.values())
    lora = LoRA(rank=rank, alpha=alpha * rank / r, dropout=float(config.get("lora_dropout") or 0.0),
                targets=",".join(sorted(fused)))
    lora.apply(model)
    with torch.no_grad():
        for name, (a, b) in fused.items():
            layer = model.get_submodule(name)
            layer.lora_A.zero_()
            layer.lora_B.zero_()
            layer.lora_A[: a.shape[0]] = a
            layer.lora_B[:, : b.shape[1]] = b
    return save_adapter(model, target, base=base, base_sha256=sha, method="lora")
