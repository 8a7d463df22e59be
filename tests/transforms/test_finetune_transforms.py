"""LoRA, adapters, prompt tuning and freezing as model transforms (tinylm/transforms/).

Properties checked against independent references: a fresh LoRA / adapter computes exactly
the base's logits; merged and in-place-merged LoRA match the unmerged forward (and the
explicit W + (alpha/r) B A); a checkpoint round trip re-applies each transform; a prompt-tuned
model equals the base fed the virtual vectors as input embeddings; cached decoding equals
full forwards.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinylm.checkpoint import load_model, save_checkpoint
from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms import (
    Adapters,
    Freeze,
    LoRA,
    PromptTuning,
    merge_all,
    merge_lora,
    prepare_for_inference,
    unmerge_lora,
    virtual_prefix,
)

V = 37


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=32, ffn="swiglu", position="rope",
               norm="rmsnorm", bias=False)
    return GPT(ModelConfig(**{**cfg, **kw})).eval()


def logits(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)[0]


IDS = torch.randint(V, (2, 12), generator=torch.Generator().manual_seed(1))


def trained_lora(model: GPT, **kw) -> LoRA:
    t = LoRA(**{"rank": 4, "alpha": 8.0, **kw})
    t.apply(model)
    with torch.no_grad():  # as if trained: B away from zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return t


def test_fresh_lora_changes_nothing_and_trains_only_a_and_b() -> None:
    model = tiny()
    before = logits(model, IDS)
    LoRA(rank=4, targets="attn.qkv,attn.proj,ffn.down").apply(model)
    assert torch.equal(logits(model, IDS), before)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert len(trainable) == 2 * 3 * 2  # A and B, 3 targets, 2 blocks


def test_lora_forward_is_w_plus_scaled_ba() -> None:
    model = tiny()
    t = trained_lora(model)
    layer = model.blocks[0].attn.qkv
    x = torch.randn(3, 32)
    expected = x @ (layer.base.weight + (8.0 / 4) * layer.lora_B @ layer.lora_A).t()
    torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)
    assert t.to_config() == {"name": "lora", "rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": "attn.qkv,attn.proj"}


def test_merge_and_unmerge_are_exact() -> None:
    model = tiny()
    trained_lora(model)
    unmerged = logits(model, IDS)
    merge_lora(model)
    assert (logits(model, IDS) - unmerged).abs().max() < 1e-6
    unmerge_lora(model)
    assert (logits(model, IDS) - unmerged).abs().max() < 1e-6
    # The contract's merge: plain nn.Linear layers, no transform left.
    merge_all(model)
    assert model.transforms == [] and type(model.blocks[0].attn.qkv) is nn.Linear
    assert (logits(model, IDS) - unmerged).abs().max() < 1e-6
    assert all(p.requires_grad for p in model.parameters())  # the frozen base is given back


def test_lora_checkpoint_round_trip_and_prepared_inference(tmp_path) -> None:
    model = tiny()
    trained_lora(model, dropout=0.1)
    expected = logits(model, IDS)
    save_checkpoint(tmp_path / "ck", model)
    loaded = load_model(tmp_path / "ck")
    assert [t.to_config() for t in loaded.transforms] == [t.to_config() for t in model.transforms]
    torch.testing.assert_close(logits(loaded, IDS), expected, atol=0, rtol=0)
    prepare_for_inference(loaded)  # prepares the plain layer inside each LoRA layer
    torch.testing.assert_close(logits(loaded, IDS), expected, atol=1e-5, rtol=1e-5)


def test_lora_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(TinyLMError, match="match no linear layer"):
        LoRA(targets="attn.nothing").apply(tiny())
    with pytest.raises(TinyLMError, match="larger than"):
        LoRA(rank=33).apply(tiny())
    with pytest.raises(TinyLMError, match="tied"):
        LoRA(targets="lm_head").apply(tiny())
    model = tiny()
    LoRA(targets="re:blocks\\.1\\.attn\\..*").apply(model)  # regex: block 1 only
    assert [n for n, m in model.named_modules() if hasattr(m, "lora_A")] == ["blocks.1.attn.qkv", "blocks.1.attn.proj"]


@pytest.mark.parametrize("placement,count", [("houlsby", 4), ("pfeiffer", 2)])
def test_fresh_adapter_changes_nothing(placement: str, count: int) -> None:
    model = tiny()
    before = logits(model, IDS)
    Adapters(reduction=4, placement=placement).apply(model)
    assert torch.equal(logits(model, IDS), before)
    adapters = [n for n, _ in model.named_modules() if n.endswith(".adapter")]
    assert len(adapters) == count
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".adapter." in n for n in trainable) and len(trainable) == 4 * count
    with torch.no_grad():
        model.blocks[0].ffn.down.adapter.up.weight.normal_()
    assert not torch.equal(logits(model, IDS), before)  # the test can fail: a trained adapter changes logits


def test_adapter_round_trip_and_refusals(tmp_path) -> None:
    model = tiny()
    Adapters(reduction=8).apply(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".adapter." in n:
                p.normal_(std=0.1)
    save_checkpoint(tmp_path / "ck", model)
    torch.testing.assert_close(logits(load_model(tmp_path / "ck"), IDS), logits(model, IDS), atol=0, rtol=0)
    with pytest.raises(TinyLMError, match="cannot be merged"):
        merge_all(model)
    with pytest.raises(TinyLMError, match="placement"):
        Adapters(placement="middle")
    with pytest.raises(TinyLMError, match="reduction"):
        Adapters(reduction=64).apply(tiny())


@pytest.mark.parametrize("init", ["vocab", "random"])
def test_prompt_tuning_is_the_base_fed_virtual_vectors(init: str) -> None:
    model = tiny()
    base_emb = model.tok_emb.weight.detach().clone()
    PromptTuning(virtual_tokens=5, init=init).apply(model)
    prefix = virtual_prefix(model)
    assert prefix == list(range(V, V + 5))
    ids = torch.tensor([prefix + [3, 4, 5]])
    got = logits(model, ids)
    # Reference: the plain model's blocks fed [prompt vectors; token embeddings] directly.
    ref = tiny()
    x = torch.cat([model.tok_emb.prompt.detach(), base_emb[[3, 4, 5]]])[None]
    ref.tok_emb = _Fixed(x)
    torch.testing.assert_close(got, logits(ref, torch.zeros(1, 8, dtype=torch.long)), atol=1e-6, rtol=1e-5)
    assert got.shape[-1] == V  # a virtual token is never generated
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["tok_emb.prompt"]
    if init == "vocab":  # each row is some token's embedding
        assert all((base_emb == row).all(-1).any() for row in model.tok_emb.prompt.detach())
    assert model.lm_head.weight is model.tok_emb.weight  # still tied


class _Fixed(nn.Module):
    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x


def test_prompt_tuned_generation_cached_equals_uncached(tmp_path) -> None:
    from tinylm.api import LanguageModel
    from tinylm.tokenizers import train_tokenizer

    tok = train_tokenizer("char", ["abcdefghij klmnop"], None)
    model = tiny(vocab_size=tok.vocab_size)
    PromptTuning(virtual_tokens=4).apply(model)
    with torch.no_grad():
        model.tok_emb.prompt.normal_()
    save_checkpoint(tmp_path / "ck", model, tok)
    lm = LanguageModel(prepare_for_inference(load_model(tmp_path / "ck")), tok)
    prompt = lm.encode_prompts(["abc"])[0]
    assert prompt[:4] == virtual_prefix(lm.model)
    result = lm.complete(["abc"], max_new_tokens=8, temperature=0.0, repetition_penalty=1.3)[0]
    # Uncached reference: a full forward over everything so far at every step (same penalty).
    ids = list(prompt)
    for _ in range(8):
        row = logits(lm.model, torch.tensor([ids]))[0, -1]
        seen = [t for t in set(ids) if t < tok.vocab_size]
        row[seen] = torch.where(row[seen] > 0, row[seen] / 1.3, row[seen] * 1.3)
        ids.append(int(row.argmax()))
    assert result.token_ids == ids[len(prompt):][: len(result.token_ids)]
    assert len(result.token_ids) >= 1


def test_freeze_by_pattern_and_resume_sees_it(tmp_path) -> None:
    model = tiny()
    Freeze(pattern="tok_emb,blocks.0.*").apply(model)
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen[0].startswith("blocks.0.") and "tok_emb.weight" in frozen
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("blocks.1."))
    save_checkpoint(tmp_path / "ck", model)
    again = load_model(tmp_path / "ck")
    assert sorted(n for n, p in again.named_parameters() if not p.requires_grad) == frozen
    with pytest.raises(TinyLMError, match="matches no parameter"):
        Freeze(pattern="nothing.here").apply(tiny())
