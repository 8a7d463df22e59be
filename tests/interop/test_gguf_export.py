"""GGUF export: read back with gguf's own reader (tensors, metadata, rotary permutation), the
CLI and bad input; and, marked slow, llama.cpp itself running tinylm's file."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from tinylm.checkpoint import load_model, save_checkpoint  # noqa: E402
from tinylm.cli import main as cli  # noqa: E402
from tinylm.interop.gguf import export_gguf, permute_rotary, read_gguf_metadata, read_gguf_tensors  # noqa: E402
from tinylm.model import GPT  # noqa: E402
from tinylm.presets import model_config  # noqa: E402
from tinylm.tokenizers import train_tokenizer  # noqa: E402

CORPUS = "The quick brown fox jumps over the lazy dog.\nA small model learns one token at a time.\n" * 4
TEXT = "The lazy fox, ñandú 日本 <bos> x\t y\n\n  ok"


@pytest.fixture(scope="module")
def tokenizers():
    return {"bpe": train_tokenizer("bpe", [CORPUS], vocab_size=300), "char": train_tokenizer("char", [CORPUS])}


def llama(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    size = dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=64)
    model = GPT(model_config("llama-style-nano", vocab_size=vocab_size, **{**size, **overrides}))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # random norms too, so a dropped or misplaced tensor shows in the logits
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if p.ndim == 1 else 0.15 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tokenizers):
    tok = tokenizers["bpe"]
    return save_checkpoint(tmp_path_factory.mktemp("g") / "ckpt", llama(tok.vocab_size + 20), tok)


def unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """The inverse of permute_rotary, written from its definition: row 2j -> j, 2j + 1 -> D/2 + j."""
    out = w.shape[0]
    D = out // n_heads
    rows = []
    for h in range(n_heads):
        head = w[h * D : (h + 1) * D]
        rows.append(np.concatenate([head[0::2], head[1::2]]))
    return np.concatenate(rows)


def test_f32_tensors_read_back_equal(ckpt, tmp_path):
    path = export_gguf(ckpt, tmp_path / "m.gguf", "f32")
    model = load_model(ckpt)
    sd, cfg = model.state_dict(), model.config
    tensors = read_gguf_tensors(path)
    assert len(tensors) == 2 + 9 * cfg.n_layer  # embedding, output norm, 9 per layer; tied head left out
    assert all(kind == "F32" for kind, _ in tensors.values())
    assert np.array_equal(tensors["token_embd.weight"][1], sd["tok_emb.weight"].numpy())
    H, Hkv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    for i in range(cfg.n_layer):
        q, k, v = sd[f"blocks.{i}.attn.qkv.weight"].split([H * D, Hkv * D, Hkv * D])
        blk = lambda name: tensors[f"blk.{i}.{name}.weight"][1]  # noqa: E731
        assert np.array_equal(unpermute(blk("attn_q"), H), q.numpy())
        assert np.array_equal(unpermute(blk("attn_k"), Hkv), k.numpy())
        assert not np.array_equal(blk("attn_q"), q.numpy())  # the permutation did move rows
        assert np.array_equal(blk("attn_v"), v.numpy())
        assert np.array_equal(blk("attn_output"), sd[f"blocks.{i}.attn.proj.weight"].numpy())
        for ours, theirs in [("norm1", "attn_norm"), ("norm2", "ffn_norm"), ("ffn.gate", "ffn_gate"),
                             ("ffn.up", "ffn_up"), ("ffn.down", "ffn_down")]:
            assert np.array_equal(blk(theirs), sd[f"blocks.{i}.{ours}.weight"].numpy()), theirs
    assert np.array_equal(tensors["output_norm.weight"][1], sd["norm_f.weight"].numpy())


def test_permute_rotary_keeps_attention_scores():
    """q.k per head is unchanged when both sides are permuted the same way, and the permuted
    rows rotated in adjacent pairs equal the original rows rotated in halves (llama.cpp vs tinylm)."""
    g = torch.Generator().manual_seed(0)
    H, D, C = 2, 8, 16
    wq, wk, x = torch.randn(H * D, C, generator=g), torch.randn(H * D, C, generator=g), torch.randn(C, generator=g)
    pos, theta = 5, 10000.0
    freq = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    cos, sin = torch.cos(pos * freq), torch.sin(pos * freq)

    def halves(v):  # tinylm: pairs (i, i + D/2)
        a, b = v[: D // 2], v[D // 2 :]
        return torch.cat([a * cos - b * sin, b * cos + a * sin])

    def adjacent(v):  # llama.cpp's llama: pairs (2i, 2i + 1)
        a, b = v[0::2], v[1::2]
        return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten()

    q, k = (wq @ x).view(H, D), (wk @ x).view(H, D)
    qp, kp = (permute_rotary(wq, H) @ x).view(H, D), (permute_rotary(wk, H) @ x).view(H, D)
    for h in range(H):
        assert torch.allclose(halves(q[h]) @ halves(k[h]), adjacent(qp[h]) @ adjacent(kp[h]), atol=1e-5)


def test_q8_0_and_f16_within_tolerance(ckpt, tmp_path):
    ref = read_gguf_tensors(export_gguf(ckpt, tmp_path / "f32.gguf", "f32"))
    for kind, rel in [("q8_0", 1 / 127), ("f16", 1e-3)]:
        path = export_gguf(ckpt, tmp_path / f"{kind}.gguf", kind)
        got = read_gguf_tensors(path)
        assert read_gguf_metadata(path)["general.file_type"] == {"q8_0": 7, "f16": 1}[kind]
        for name, (t, want) in ref.items():
            gtype, have = got[name]
            if want.ndim == 1:
                assert gtype == "F32" and np.array_equal(have, want)
                continue
            assert gtype == kind.upper()
            # Q8_0: each block of 32 is scaled by its largest |value| / 127, so the rounding
            # error is at most half a step: max|block| / 254 (plus the scale's float16 rounding).
            blocks = np.abs(want).reshape(-1, 32).max(axis=1, keepdims=True)
            err = np.abs(have - want).reshape(-1, 32)
            assert (err <= blocks * rel + 1e-6).all(), name
    assert (tmp_path / "q8_0.gguf").stat().st_size < 0.4 * (tmp_path / "f32.gguf").stat().st_size


def test_metadata_declares_llama_and_the_tokenizer(ckpt, tmp_path, tokenizers):
    md = read_gguf_metadata(export_gguf(ckpt, tmp_path / "m.gguf"))
    cfg = load_model(ckpt).config
    tok = tokenizers["bpe"]
    assert md["general.architecture"] == "llama"
    assert (md["llama.block_count"], md["llama.embedding_length"], md["llama.context_length"]) == (2, 64, 64)
    assert (md["llama.attention.head_count"], md["llama.attention.head_count_kv"]) == (4, 2)
    assert md["llama.feed_forward_length"] == cfg.hidden_dim
    assert md["llama.rope.dimension_count"] == cfg.head_dim
    assert md["tokenizer.ggml.model"] == "gpt2" and md["tokenizer.ggml.pre"] == "gpt-2"
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == cfg.vocab_size and tokens[-1] == f"[PAD{cfg.vocab_size - 1}]"
    assert tokens[: tok.vocab_size] == [tok.token_str(i) for i in range(tok.vocab_size)]
    types = md["tokenizer.ggml.token_type"]
    assert [types[i] for i in sorted(tok.special_ids)] == [3] * 4 and types[tok.vocab_size] == 5
    assert md["tokenizer.ggml.merges"][0].count(" ") == 1
    assert md["tokenizer.ggml.bos_token_id"] == tok.bos_id and md["tokenizer.ggml.eos_token_id"] == tok.eos_id


def test_char_tokenizer_metadata(tmp_path, tokenizers):
    tok = tokenizers["char"]
    ckpt = save_checkpoint(tmp_path / "c", llama(tok.vocab_size), tok)
    md = read_gguf_metadata(export_gguf(ckpt, tmp_path / "c.gguf"))
    assert md["tokenizer.ggml.model"] == "llama" and md["tokenizer.ggml.add_space_prefix"] is False
    tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    assert tokens[tok.encode(" ")[0]] == "\u2581"
    assert tokens[tok.byte_offset] == "<0x00>" and types[tok.byte_offset] == 6
    assert tokens[tok.encode("T")[0]] == "T" and types[tok.encode("T")[0]] == 1


def run_cli(monkeypatch, *argv) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["tinylm.cli.export_gguf"])
    return cli.main([str(a) for a in argv])


def one_line_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("tinylm: error:") and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_cli_and_bad_input(ckpt, tmp_path, capsys, monkeypatch, tokenizers):
    out = tmp_path / "m.gguf"
    assert run_cli(monkeypatch, "export-gguf", ckpt, out, "--type", "q8_0") == 0
    assert "q8_0" in capsys.readouterr().out and out.is_file()

    assert run_cli(monkeypatch, "export-gguf", ckpt, tmp_path / "x.gguf", "--type", "q4_k") == 2
    one_line_error(capsys, "unknown GGUF type 'q4_k'")
    assert run_cli(monkeypatch, "export-gguf", tmp_path / "missing", tmp_path / "x.gguf") == 2
    one_line_error(capsys, "checkpoint not found")

    tok = tokenizers["bpe"]
    torch.manual_seed(0)
    gpt2 = GPT(model_config("gpt2-style-nano", vocab_size=tok.vocab_size, n_layer=1, n_embd=32, block_size=16))
    gpt2_ckpt = save_checkpoint(tmp_path / "gpt2", gpt2, tok)
    assert run_cli(monkeypatch, "export-gguf", gpt2_ckpt, tmp_path / "x.gguf") == 2
    one_line_error(capsys, "position=rope", "norm=rmsnorm", "ffn=swiglu", "bias=False")

    biased = save_checkpoint(tmp_path / "biased", llama(tok.vocab_size, bias=True), tok)
    assert run_cli(monkeypatch, "export-gguf", biased, tmp_path / "x.gguf") == 2
    one_line_error(capsys, "bias=False")

    assert run_cli(monkeypatch, "export-gguf", ckpt, ckpt / "model.safetensors") == 2
    one_line_error(capsys, "is not a GGUF file")

    tampered = tmp_path / "tampered"
    import shutil

    shutil.copytree(ckpt, tampered)
    weights = tampered / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    assert run_cli(monkeypatch, "export-gguf", tampered, tmp_path / "x.gguf") == 2
    one_line_error(capsys, "model.safetensors")
    # Nothing half-written: no x.gguf and no scratch files beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["biased", "gpt2", "m.gguf", "tampered"]

    # A failure while writing leaves an existing file as it was, and no scratch files.
    from tinylm.interop import gguf as gguf_module

    def fail(*args):
        raise OSError("disk full")

    before = out.read_bytes()
    monkeypatch.setattr(gguf_module, "_add_tensor", fail)
    with pytest.raises(OSError):
        export_gguf(ckpt, out, "f32")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["biased", "gpt2", "m.gguf", "tampered"]


# --- llama.cpp itself ---------------------------------------------------------------------------

# Largest |logit difference| allowed against tinylm, as a fraction of the logits' standard
# deviation. Measured: F32 2e-6 to 5e-6 (float32 against float32, different kernels); Q8_0 0.04
# to 0.12 (llama.cpp quantizes the weights and, inside each product, the activations to 8 bits).
TOLERANCE = {"f32": 1e-4, "q8_0": 0.25}


def train_briefly(model: GPT, ids: list[int], steps: int = 300) -> GPT:
    """A few hundred AdamW steps on a repeated text: the model memorizes it, so its next-token
    predictions have wide top-1 margins (what makes greedy decoding well defined across runtimes)."""
    data = torch.tensor(ids)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    T = 48
    for _ in range(steps):
        starts = torch.randint(0, len(data) - T - 1, (8,), generator=g)
        x = torch.stack([data[s : s + T] for s in starts])
        y = torch.stack([data[s + 1 : s + T + 1] for s in starts])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["f32", "q8_0"])
@pytest.mark.parametrize("tok_kind", ["bpe", "char"])
def test_llama_cpp_greedy_tokens_equal_tinylm(tmp_path, tokenizers, kind, tok_kind):
    """llama.cpp loads tinylm's GGUF; its logits and greedy tokens equal tinylm's, and its
    tokenizer encodes text to tinylm's ids.

    The model is briefly trained on a repeated text so that its top-1 margins are wide: greedy
    decoding is well defined only where the margin exceeds the numeric difference between the
    two runtimes, which is checked at every step (a near tie would make "equal tokens" a coin
    toss, not a test). llama.cpp keeps its KV cache in float16 by default; float32 is asked for
    so that F32 compares float32 to float32."""
    llama_cpp = pytest.importorskip("llama_cpp")
    tok = tokenizers[tok_kind]
    torch.manual_seed(1)
    size = dict(n_embd=96, n_layer=3, n_head=6, n_kv_head=2, block_size=128)
    model = GPT(model_config("llama-style-nano", vocab_size=tok.vocab_size + 3, **size))
    model = train_briefly(model, tok.encode(CORPUS * 4))
    ckpt = save_checkpoint(tmp_path / "ckpt", model, tok)
    path = export_gguf(ckpt, tmp_path / f"m-{kind}.gguf", kind)
    f32 = llama_cpp.GGML_TYPE_F32
    llm = llama_cpp.Llama(str(path), n_ctx=128, logits_all=True, verbose=False, n_threads=1, seed=0,
                          type_k=f32, type_v=f32)

    assert llm.tokenize(TEXT.encode(), add_bos=False, special=False) == tok.encode(TEXT)

    prompt = tok.encode("The quick brown")
    ours = list(prompt)
    with torch.no_grad():
        for _ in range(30):
            logits, _ = model(torch.tensor([ours]))
            ours.append(int(logits[0, -1].argmax()))
    theirs = list(prompt)
    llm.reset()
    llm.eval(prompt)
    for _ in range(30):
        theirs.append(int(np.asarray(llm.scores[llm.n_tokens - 1]).argmax()))
        llm.eval([theirs[-1]])
    with torch.no_grad():
        ref, _ = model(torch.tensor([ours[:-1]]))
    ref = ref[0, len(prompt) - 1 :]  # the positions that chose a token
    got = np.asarray(llm.scores[len(prompt) - 1 : len(ours) - 1])
    diff = np.abs(got - ref.numpy()).max()
    top2 = torch.topk(ref, 2).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    print(f"{kind}/{tok_kind}: max |logit diff| {diff:.2e} (logit std {ref.std().item():.2f}), "
          f"smallest top-1 margin {margin:.3f}")
    assert diff < TOLERANCE[kind] * ref.std().item()
    assert margin > 2 * diff  # greedy is well defined at this tolerance
    assert theirs == ours
