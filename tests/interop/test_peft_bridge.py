"""The PEFT bridge (tinylm/interop/peft.py), with PEFT itself as the oracle: a tinylm LoRA exported
for the export-hf model gives, through PeftModel.from_pretrained, the logits tinylm computes;
a LoRA trained in PEFT (separate A for q, k and v) imports into tinylm with PEFT's logits."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402

import tinylm  # noqa: E402
from tinylm.checkpoint import save_checkpoint  # noqa: E402
from tinylm.config import ModelConfig  # noqa: E402
from tinylm.errors import TinyLMError  # noqa: E402
from tinylm.finetune import attach_adapter, load_base, save_adapter, weights_sha256  # noqa: E402
from tinylm.interop.hf import export_hf  # noqa: E402
from tinylm.interop.peft import export_peft_lora, import_peft_lora  # noqa: E402
from tinylm.model import GPT  # noqa: E402
from tinylm.tokenizers import train_tokenizer  # noqa: E402
from tinylm.transforms import LoRA  # noqa: E402

STYLES = {
    "llama": dict(ffn="swiglu", position="rope", norm="rmsnorm", bias=False, n_kv_head=1),  # GQA: q, k, v of unequal sizes
    "gpt2": dict(ffn="gelu", position="learned", norm="layernorm", bias=True),
}
IDS = torch.randint(3, 30, (2, 10), generator=torch.Generator().manual_seed(0))


def make_base(tmp_path, style: str):
    torch.manual_seed(0)
    tok = train_tokenizer("char", ["abcdefghijklmnopqrstuvwxyz 0123456789"])
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=32, **STYLES[style])
    base = save_checkpoint(tmp_path / "base", GPT(cfg), tok)
    export_hf(base, tmp_path / "hf")
    return base


def hf_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def tinylm_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IDS)[0]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_exported_lora_gives_tinylms_logits_in_peft(tmp_path, style: str) -> None:
    base = make_base(tmp_path, style)
    model = load_base(base)
    sha = weights_sha256(model)
    targets = "attn.qkv,attn.proj,ffn.up" if style == "gpt2" else "attn.qkv,attn.proj,ffn.gate,ffn.down"
    LoRA(rank=4, alpha=8.0, targets=targets).apply(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    save_adapter(model, tmp_path / "adapter", base=base, base_sha256=sha, method="lora")
    ours = tinylm_logits(attach_adapter(load_base(base), tmp_path / "adapter"))
    export_peft_lora(base, tmp_path / "adapter", tmp_path / "peft")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    plain = hf_logits(hf)
    peft_model = PeftModel.from_pretrained(hf, tmp_path / "peft").eval()
    theirs = hf_logits(peft_model)
    assert (theirs - plain).abs().max() > 1e-2  # the adapter matters, so the comparison can fail
    assert (theirs - ours).abs().max() < 1e-4
    # ... and imports back to the same tinylm adapter.
    import_peft_lora(tmp_path / "peft", base, tmp_path / "back")
    again = tinylm_logits(attach_adapter(load_base(base), tmp_path / "back"))
    assert (again - ours).abs().max() < 1e-5


def test_a_peft_lora_trained_in_hf_imports_exactly(tmp_path) -> None:
    base = make_base(tmp_path, "llama")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    # Separate, random A and B for q, k, v (init_lora_weights=False), q and v only in layer 1, and o_proj.
    config = LoraConfig(r=2, lora_alpha=6, init_lora_weights=False, target_modules=[
        "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "o_proj"])
    peft_model = get_peft_model(hf, config).eval()
    theirs = hf_logits(peft_model)
    peft_model.save_pretrained(tmp_path / "peft")
    import_peft_lora(tmp_path / "peft", base, tmp_path / "adapter")
    lm = tinylm.load(base, adapter=tmp_path / "adapter")
    ours = tinylm_logits(lm.model)
    assert (theirs - ours).abs().max() < 1e-4


def test_peft_import_refuses_what_it_cannot_map(tmp_path) -> None:
    base = make_base(tmp_path, "llama")
    with pytest.raises(TinyLMError, match="not a PEFT adapter folder"):
        import_peft_lora(tmp_path / "hf", base, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_exports_and_imports(tmp_path, capsys) -> None:
    from tinylm.cli.main import main

    base = make_base(tmp_path, "llama")
    model = load_base(base)
    sha = weights_sha256(model)
    LoRA(rank=2).apply(model)
    save_adapter(model, tmp_path / "adapter", base=base, base_sha256=sha, method="lora")
    assert main(["finetune", str(base), "--export-peft", str(tmp_path / "adapter"), "--out", str(tmp_path / "peft")]) == 0
    assert (tmp_path / "peft" / "adapter_config.json").is_file()
    assert main(["finetune", str(base), "--import-peft", str(tmp_path / "peft"), "--out", str(tmp_path / "back")]) == 0
    assert main(["finetune", str(base), "--import-peft", str(tmp_path / "peft"), "--out", str(tmp_path / "back")]) == 2
    assert "already exists" in capsys.readouterr().err
