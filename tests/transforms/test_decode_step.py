"""The fused C++ decode step against the PyTorch model (the reference) on tiny models."""

from __future__ import annotations

import copy
import os
import signal
import time

import pytest
import torch

from tinylm.config import ModelConfig
from tinylm.generation import Engine, GenerationConfig
from tinylm.generation.continuous import ContinuousBatch
from tinylm.model import GPT, KVCache
from tinylm.transforms import prepare_for_inference, quantize
from tinylm.transforms.decode_step import fused_decode_step
from tinylm.transforms.kernels import decode_kernels
from tinylm.transforms.quantize import Int4Linear, Int8Linear

pytestmark = pytest.mark.skipif(decode_kernels() is None, reason="tinylm's kernels cannot be built here")

V = 97


def config(**kw) -> ModelConfig:
    # Odd sizes (head_dim 10, hidden 72, vocab 97): every loop's vector tail runs too.
    return ModelConfig(**{"vocab_size": V, "block_size": 40, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 40,
                          "ffn_hidden": 72, "position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "bias": False,
                          "tie_weights": True, **kw})


def model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(config(**kw)).eval()


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def q8_activations(x: torch.Tensor) -> torch.Tensor:
    """x as the fused step multiplies integer weights by it: each block of 32 inputs along the last
    dimension quantized to round(x / d), d = max|x| / 127 (llama.cpp's Q8_0), then multiplied back."""
    n = x.shape[-1]
    blocks = torch.nn.functional.pad(x, (0, -n % 32)).unflatten(-1, (-1, 32))
    top = blocks.abs().amax(-1, keepdim=True)
    q = torch.where(top > 0, torch.round(blocks * (127 / top.clamp(min=1e-30))), 0.0)
    return (q * (top / 127)).flatten(-2)[..., :n]


def quantize_activations_as_the_step_does(m) -> None:
    """The PyTorch reference of the fused step's integer products: every int8/int4 layer's input
    passes through q8_activations (the tied head is the embedding table's layer)."""
    for module in m.modules():
        if isinstance(module, (Int8Linear, Int4Linear)):
            module.register_forward_pre_hook(lambda _module, args: (q8_activations(args[0]),))


# (model options, quantization, fused step options, whether the reference quantizes activations, tolerance)
VARIANTS = {
    "fp32": ({}, None, {}, False, 1e-5),
    "fp32-untied-mha": ({"tie_weights": False, "n_kv_head": 4}, None, {}, False, 1e-5),
    # float activations: the PyTorch int8 model's numbers, within the tolerance tests/transforms/test_quantize.py uses
    "int8-float-activations": ({}, {"method": "int8"}, {"quantize_activations": False}, False, 1e-4),
    "int8": ({}, {"method": "int8"}, {}, True, 1e-4),
    "int8-plain-loops": ({}, {"method": "int8"}, {"vnni": False}, True, 1e-4),
    "int8-float-embedding": ({"tie_weights": False}, {"method": "int8", "embedding": False, "head": True}, {}, True, 1e-4),
    # int4 needs whole groups of 32: n_embd 64, hidden 96 (a lone last group in each down row)
    "int4": ({"n_embd": 64, "ffn_hidden": 96}, {"method": "int4", "group_size": 32}, {}, True, 1e-4),
    "int4-plain-loops": ({"n_embd": 64, "ffn_hidden": 96}, {"method": "int4", "group_size": 32}, {"vnni": False}, True, 1e-4),
}


@pytest.mark.parametrize("variant", VARIANTS)
@torch.inference_mode()
def test_fused_steps_give_the_reference_logits_and_cache(variant, threads):
    kw, quant, options, quantized_activations, tol = VARIANTS[variant]
    reference = model(**kw)
    if quant:
        quantize(reference, **quant)
    fused_model = prepare_for_inference(copy.deepcopy(reference))
    fused = fused_decode_step(fused_model, **options)
    assert fused is not None
    if quantized_activations:
        quantize_activations_as_the_step_does(reference)
        quantize_activations_as_the_step_does(fused_model)  # its prefill, which runs the PyTorch model
    prompt = torch.randint(0, V, (1, 7))
    ours, theirs = KVCache(reference.config, 1, 30), KVCache(reference.config, 1, 30)
    logits = reference(prompt, cache=theirs, last_only=True)[0][:, -1]
    fused_model(prompt, cache=ours, last_only=True)
    for _ in range(20):
        token = int(logits.argmax())
        logits = reference(torch.tensor([[token]]), cache=theirs, last_only=True)[0][:, -1]
        torch.testing.assert_close(fused.step(token, ours), logits, atol=tol, rtol=0)
    assert ours.length == theirs.length == 27
    torch.testing.assert_close(ours.k, theirs.k, atol=tol, rtol=0)
    torch.testing.assert_close(ours.v, theirs.v, atol=tol, rtol=0)


def test_the_engine_gives_the_reference_tokens_and_uses_the_fused_step(monkeypatch):
    reference = model(1)
    prepared = prepare_for_inference(copy.deepcopy(reference))
    config = GenerationConfig(max_new_tokens=25, temperature=0.0)
    prompt = [[3, 1, 4, 1, 5, 9, 2, 6]]
    expected = Engine(reference).generate(prompt, config)[0].token_ids
    shorter = prompt[0][2:]
    alone = Engine(reference).generate([shorter], config)[0].token_ids
    steps = []
    original = ContinuousBatch.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        assert self._fused is not None
        step = self._fused.step_rows
        self._fused.step_rows = lambda tokens, cache: steps.append(len(tokens)) or step(tokens, cache)

    monkeypatch.setattr(ContinuousBatch, "__init__", spy)
    assert Engine(prepared).generate(prompt, config)[0].token_ids == expected
    assert steps == [1] * 24  # every step after the prefill; the last token is drawn, not fed back
    # Two rows, one of them left-padded: both rows step through the fused step together.
    steps.clear()
    both = Engine(prepared).generate([prompt[0], shorter], config)
    assert [r.token_ids for r in both] == [expected, alone]
    assert steps == [2] * 24


BATCHED = ["fp32", "int8", "int4"]


@pytest.mark.parametrize("variant", BATCHED)
@torch.inference_mode()
def test_batched_fused_steps_give_the_reference_logits_with_padding(variant, threads):
    # Five rows, three of them left-padded (prompts of 7, 4, 5, 7 and 6 tokens), through step_rows
    # against the PyTorch model on the same padded cache: positions and visible slots per row,
    # and the int8 loop that takes rows four at a time, then the one left.
    kw, quant, options, quantized_activations, tol = VARIANTS[variant]
    reference = model(3, **kw)
    if quant:
        quantize(reference, **quant)
    fused_model = prepare_for_inference(copy.deepcopy(reference))
    fused = fused_decode_step(fused_model, **options)
    if quantized_activations:
        quantize_activations_as_the_step_does(reference)
        quantize_activations_as_the_step_does(fused_model)
    pad = torch.tensor([0, 3, 2, 0, 1])
    prompt = torch.randint(0, V, (5, 7))
    ours, theirs = (KVCache(reference.config, 5, 30, pad=pad) for _ in range(2))
    logits = reference(prompt, cache=theirs, last_only=True)[0][:, -1]
    fused_model(prompt, cache=ours, last_only=True)
    for _ in range(15):
        tokens = logits.argmax(-1)
        logits = reference(tokens[:, None], cache=theirs, last_only=True)[0][:, -1]
        torch.testing.assert_close(fused.step_rows(tokens, ours), logits, atol=tol, rtol=0)
    torch.testing.assert_close(ours.k, theirs.k, atol=tol, rtol=0)
    torch.testing.assert_close(ours.v, theirs.v, atol=tol, rtol=0)


@pytest.mark.parametrize("variant", BATCHED)
@torch.inference_mode()
def test_a_row_in_a_batch_gets_the_logits_it_gets_alone(variant):
    # The batched step runs each row through the same loops as a one-row step (its padding
    # skipped), so a quantized model no longer picks other tokens alone than in a batch.
    kw, quant, options, _, _ = VARIANTS[variant]
    m = model(4, **kw)
    if quant:
        quantize(m, **quant)
    m = prepare_for_inference(m)
    fused = fused_decode_step(m, **options)
    prompts = [torch.randint(0, V, (n,)) for n in (6, 3)]
    batch = KVCache(m.config, 2, 30, pad=torch.tensor([0, 3]))
    m(torch.stack([prompts[0], torch.cat([torch.zeros(3, dtype=torch.long), prompts[1]])]), cache=batch)
    alone = []
    for p in prompts:
        cache = KVCache(m.config, 1, 30)
        m(p[None], cache=cache)
        alone.append(cache)
    tokens = torch.tensor([1, 2])
    for _ in range(10):
        together = fused.step_rows(tokens, batch)
        for r in range(2):
            torch.testing.assert_close(together[r], fused.step(int(tokens[r]), alone[r])[0], atol=1e-5, rtol=0)
        tokens = together.argmax(-1)


@torch.inference_mode()
def test_a_step_on_the_step_thread_equals_the_step_here(threads):
    """start/finish (the step on its own C++ thread, with the caller's torch threads) give the
    logits and cache of step; a finish without a start, or two starts, say so."""
    prepared = prepare_for_inference(model(2))
    fused = fused_decode_step(prepared)
    prompt = torch.randint(0, V, (1, 5))
    here, there = KVCache(prepared.config, 1, 30), KVCache(prepared.config, 1, 30)
    prepared(prompt, cache=here, last_only=True)
    prepared(prompt, cache=there, last_only=True)
    with pytest.raises(RuntimeError, match="no step was started"):
        fused.finish()
    for token in [5, 17, 96, 0, 42, 42, 8]:
        fused.start(token, there)
        assert there.length == here.length + 1  # advanced at once: the step owns the slot
        torch.testing.assert_close(fused.finish(), fused.step(token, here), atol=0, rtol=0)
    torch.testing.assert_close(there.k, here.k, atol=0, rtol=0)
    torch.testing.assert_close(there.v, here.v, atol=0, rtol=0)
    fused.start(1, there)
    with pytest.raises(RuntimeError, match="finish"):
        fused.start(2, there)
    # A second decoder while the thread is taken (batches stepped from two Python threads):
    # its step runs in the caller, with the same logits.
    other, elsewhere = fused_decode_step(prepared), copy.deepcopy(here)  # `there` before this start
    other.start(1, elsewhere)
    torch.testing.assert_close(other.finish(), fused.finish(), atol=0, rtol=0)


def _torch_masked(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """The reference for the step's masking: bit t % 32 of word t // 32, read with torch ops."""
    t = torch.arange(logits.shape[1])
    bits = (bitmask[: logits.shape[0], t // 32].to(torch.int64) >> (t % 32)) & 1
    return logits.masked_fill(bits == 0, float("-inf"))


@torch.inference_mode()
def test_rows_on_the_step_thread_with_a_bitmask_equal_step_rows_then_torchs_masking(threads):
    """start/finish with several padded rows give step_rows's logits and cache, and a bitmask
    given to finish blocks exactly what torch's masking blocks (every bit of every word, the
    last word's unused bits, a row with nothing allowed), on the thread and when the thread is
    taken (the step then runs in the caller)."""
    prepared = prepare_for_inference(model(6))
    fused = fused_decode_step(prepared)
    here, there = KVCache(prepared.config, 3, 30, pad=torch.tensor([2, 0, 1])), None
    prepared(torch.randint(0, V, (3, 4)), cache=here, last_only=True)
    there = copy.deepcopy(here)
    generator = torch.Generator().manual_seed(0)
    words = (V + 31) // 32
    for step in range(6):
        tokens = torch.randint(0, V, (3,), generator=generator)
        bitmask = torch.randint(-2**31, 2**31 - 1, (4, words), dtype=torch.int32, generator=generator)
        bitmask[step % 3] = 0 if step % 2 else -1  # a row with nothing allowed, or everything
        expected = _torch_masked(fused.step_rows(tokens, here), bitmask)
        fused.start(tokens, there)
        assert there.length == here.length
        got = fused.finish(bitmask)
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
        assert 0.3 < torch.isneginf(got).float().mean() < 0.8
    torch.testing.assert_close(there.k, here.k, atol=0, rtol=0)
    other, elsewhere = fused_decode_step(prepared), copy.deepcopy(there)
    fused.start(tokens, there)  # the thread is taken: other's step runs in the caller
    other.start(tokens, elsewhere)
    torch.testing.assert_close(other.finish(bitmask), fused.finish(bitmask), atol=0, rtol=0)


@torch.inference_mode()
def test_an_error_in_the_threads_step_surfaces_at_finish_and_frees_the_thread():
    prepared = prepare_for_inference(model(7))
    fused = fused_decode_step(prepared)
    cache = KVCache(prepared.config, 1, 30)
    prepared(torch.tensor([[1, 2]]), cache=cache)
    fused.start(torch.tensor([V + 3]), cache)
    with pytest.raises(RuntimeError, match="token id out of range"):
        fused.finish()
    fused.start(3, cache)
    assert fused.finish().shape == (1, V)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_step_thread_of_its_own():
    """The step thread is per process: a child forked after the parent used it (the thread
    is not in the child) makes its own instead of waiting on the parent's forever."""
    prepared = prepare_for_inference(model(4))

    def step() -> torch.Tensor:
        fused, cache = fused_decode_step(prepared), KVCache(prepared.config, 1, 30)
        with torch.inference_mode():
            prepared(torch.tensor([[1, 2]]), cache=cache)
            fused.start(3, cache)
            return fused.finish()

    expected = step()
    pid = os.fork()
    if pid == 0:  # the child: exit at once with the verdict, past pytest's own clean-up
        os._exit(0 if torch.equal(step(), expected) else 1)
    for _ in range(400):  # up to 20 s; a child waiting on the parent's thread would never end
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's step never finished")
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_context_limit_holds():
    prepared = prepare_for_inference(model())
    fused = fused_decode_step(prepared)
    cache = KVCache(prepared.config, 1, prepared.config.block_size)
    with torch.inference_mode():
        prepared(torch.zeros(1, prepared.config.block_size, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="exceeds the context"):
            fused.step(0, cache)


@pytest.mark.parametrize("case", ["not prepared", "gpt2-style", "int4 group 64", "int4 float activations",
                                  "int8 asymmetric"])
def test_models_it_does_not_cover_run_the_pytorch_model(case):
    options = {}
    if case == "gpt2-style":
        m = prepare_for_inference(model(position="learned", norm="layernorm", ffn="gelu", bias=True))
    elif case.startswith("int4"):
        group = 64 if case == "int4 group 64" else 32
        options = {"quantize_activations": False} if case == "int4 float activations" else {}
        m = prepare_for_inference(quantize(model(n_embd=64, ffn_hidden=64), "int4", group_size=group))
    elif case == "int8 asymmetric":
        m = prepare_for_inference(quantize(model(), "int8", asymmetric=True))
    else:
        m = model()
    assert fused_decode_step(m, **options) is None


@pytest.mark.parametrize("options", [{"qk_norm": True}, {"fan_input": "fan"}, {"cola_targets": ["attn"]},
                                     {"head_size": 8}], ids=["qk-norm", "fan", "cola", "narrow-heads"])
def test_layers_the_step_does_not_compute_run_the_pytorch_model(options):
    # The C++ step would skip these layers and give other logits: the engine must not use it.
    m = prepare_for_inference(model(**options))
    assert fused_decode_step(m) is None
    prompt = [[1, 2, 3]]
    config = GenerationConfig(max_new_tokens=5, temperature=0)
    with torch.inference_mode():
        expected = int(m(torch.tensor(prompt))[0][0, -1].argmax())
    assert Engine(m).generate(prompt, config)[0].token_ids[0] == expected


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("vnni", [False, True], ids=["plain-loops", "vnni"])
# in: int8 chunks of 64 and int4 chunks of 128 inputs, whole, paired, and a last one of 32, 64 or 96
@pytest.mark.parametrize("shape", [(7, 40), (5, 64), (33, 96), (16, 160), (20, 192), (9, 224), (64, 256), (48, 288),
                                   (17, 384)])
def test_integer_products_equal_the_q8_reference(bits, vnni, shape):
    # The step's products against float64 torch on the same integers: the VNNI loop (the offset
    # trick, lane scales, masked tails, int4's nibble order) and the plain one must both match.
    ext = decode_kernels()
    if vnni and not ext.vnni:
        pytest.skip("this CPU has no AVX-512 VNNI")
    out, inp = shape
    if bits == 4 and inp % 32:
        pytest.skip("int4 in the step takes whole groups of 32")
    torch.manual_seed(inp)
    w, x = torch.randn(out, inp), torch.randn(inp) * torch.rand(inp) * 5  # uneven block scales
    layer = Int8Linear(w, None) if bits == 8 else Int4Linear(w, None, 32)
    expected = layer.dequantized().double() @ q8_activations(x).double()
    got = ext.matvec(layer.qweight, layer.scale, x, True, vnni)
    torch.testing.assert_close(got.double(), expected, atol=1e-5 * float(expected.abs().max()), rtol=0)


@torch.inference_mode()
def test_quantized_activations_keep_the_int8_models_greedy_tokens():
    # The step's int8 x int8 products change the logits by about the activations' rounding (1/254
    # of each block's largest value); on this model the greedy tokens stay those of the PyTorch
    # int8 model with float activations, and the logits within 2 % of their spread.
    reference = quantize(model(2, n_embd=64, ffn_hidden=96), "int8")
    prepared = prepare_for_inference(copy.deepcopy(reference))
    config = GenerationConfig(max_new_tokens=24, temperature=0.0)
    prompt = [[5, 7, 11, 13]]
    assert fused_decode_step(prepared) is not None
    assert Engine(prepared).generate(prompt, config)[0].token_ids == Engine(reference).generate(prompt, config)[0].token_ids
    fused = fused_decode_step(prepared)
    ours, theirs = KVCache(reference.config, 1, 30), KVCache(reference.config, 1, 30)
    prepared(torch.tensor(prompt[:1])[:, :-1], cache=ours)
    reference(torch.tensor(prompt[:1])[:, :-1], cache=theirs)
    expected = reference(torch.tensor([[prompt[0][-1]]]), cache=theirs, last_only=True)[0][:, -1]
    got = fused.step(prompt[0][-1], ours)
    assert (got - expected).abs().max() <= 0.02 * (expected.max() - expected.min())
