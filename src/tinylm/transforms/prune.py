"""Pruning: unstructured magnitude pruning (a transform) and structured pruning (a smaller model).

Magnitude pruning (unstructured). In each pruned weight matrix W the fraction `amount` of
entries with the smallest |W_ij| is set to zero, through a fixed 0/1 mask M:

    per layer (default)   M_ij = 0  for the round(amount * |W|) smallest |W_ij| of this W
                          (torch.nn.utils.prune.l1_unstructured's rule; the tests use it as oracle)
    global                the same over all pruned matrices at once: layers with small weights lose more
    y = x (W * M)^T + b

The pruned layers are attention's qkv and proj and the FFN's layers; the output head only
with `head=True` on an untied model (a tied head is the embedding); the token embedding never:
a lookup reads one row per token, so zeros there save no work, and small models' embeddings
are a large share of their quality. `MagnitudePrune` is a persistent, reversible, mergeable
transform: each layer becomes a MaskedLinear that keeps the layer's own weight parameter and
multiplies it by its mask in every forward, so a fine-tune after pruning (the masked entries
get zero gradient) keeps the zeros. `merge` bakes W * M into plain nn.Linear layers.

The weights stay dense: zeros take the same 4 bytes and the same matrix multiply as any
other number, so a magnitude-pruned checkpoint is exactly as large and as fast as the
original. It shows how much a model tolerates losing (as the UGR thesis's 10/30/50 % rows
did, with dense storage and no gain); size and speed need structured pruning, quantization,
or sparse kernels tinylm does not have.

Structured pruning removes whole attention heads and FFN hidden channels, so the matrices
really shrink: the result is a new, smaller GPT with its own ModelConfig (the same count
removed in every layer, so one config still describes it). It is not a transform: nothing
of the original model is left to undo, and the pruned model is a plain model in every respect
(train it, quantize it, export it).

- Heads: with grouped-query attention a key/value head serves n_head/n_kv_head query heads,
  so whole groups go (the kv head and its query heads); with multi-head attention a group is
  one head. Each head keeps its size, so n_head * head_dim < n_embd afterwards and the config
  records head_size. Removed: the group's q, k, v rows of attn.qkv and its query heads'
  columns of attn.proj.
- FFN channels: hidden unit j is row j of up (and of gate, SwiGLU) and column j of down; the
  three go together. (mlp3's two hidden layers are not supported.)

Importance (the lowest-scoring groups and channels go):

    weight (default)   head group g: ||W_v[g]||_F * ||W_o[:, g]||_F       (what g can write to the residual)
                       channel j:    ||W_up[j]|| * ||W_down[:, j]||     (SwiGLU: * ||W_gate[j]||)
    activation         on calibration tokens, the mean norm of what each group or channel adds
                       to the residual stream: mean_t ||sum_(h in g) y_h,t W_o[:, h]^T||,
                       mean_t |a_j,t| * ||W_down[:, j]||

Removing a head or channel is exactly zeroing its columns of attn.proj or ffn.down: the tests
compare the pruned model's logits with the original model so zeroed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import Transform, merge_all, register_transform

METHODS = ("magnitude", "structured")
SCOPES = ("layer", "global")
IMPORTANCE = ("weight", "activation")


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise TinyLMError(f"{name} must be a fraction strictly between 0 and 1, got {value!r}")
    return float(value)


def _refuse_transformed(model: GPT) -> None:
    if model.transforms:
        names = ", ".join(t.name for t in model.transforms)
        raise TinyLMError(f"prune a plain float model; this one has transforms ({names}): prune before quantizing, "
                          "and load with tinylm.checkpoint.load_model, not tinylm.load")


# ----------------------------------------------------------------------------- magnitude

class MaskedLinear(nn.Module):
    """x (W * mask)^T + b. Holds the replaced nn.Linear's own weight and bias parameters (same
    names in the state_dict) and the mask as a bool buffer (`<layer>.mask`)."""

    def __init__(self, linear: nn.Linear, mask: torch.Tensor) -> None:
        super().__init__()
        self.out_features, self.in_features = linear.weight.shape
        self.weight, self.bias = linear.weight, linear.bias
        self.register_buffer("mask", mask.bool())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)

    def merged(self) -> nn.Linear:
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            plain.weight.copy_(self.weight * self.mask)
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain

    def extra_repr(self) -> str:
        kept = float(self.mask.float().mean())
        return f"in_features={self.in_features}, out_features={self.out_features}, zeros={1 - kept:.1%}"


def magnitude_masks(weights: dict[str, torch.Tensor], amount: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Masks (True = kept) removing round(amount * n) of the smallest |w|, per matrix or over all."""
    masks: dict[str, torch.Tensor] = {}
    if scope == "layer":
        groups = {name: [name] for name in weights}
    else:
        groups = {"all": list(weights)}
    for members in groups.values():
        flat = torch.cat([weights[m].detach().abs().flatten() for m in members])
        k = round(amount * flat.numel())
        keep = torch.ones_like(flat, dtype=torch.bool)
        if k:
            keep[torch.topk(flat, k, largest=False).indices] = False
        start = 0
        for m in members:
            n = weights[m].numel()
            masks[m] = keep[start: start + n].view_as(weights[m])
            start += n
    empty = [name for name, mask in masks.items() if not mask.any()]
    if empty:
        raise TinyLMError(f"pruning {amount:.0%} ({scope}) would remove every weight of {empty[0]}; use a smaller amount")
    return masks


@register_transform
@dataclass
class MagnitudePrune(Transform):
    """Unstructured magnitude pruning by fixed masks (see the module's docstring)."""

    name: ClassVar[str] = "magnitude-prune"
    persistent: ClassVar[bool] = True  # a saved masked model keeps its masks (a fine-tune can resume)
    reversible: ClassVar[bool] = True  # the original layers hold the same, unmasked parameters
    mergeable: ClassVar[bool] = True

    amount: float = 0.3
    scope: str = "layer"
    head: bool = False  # an untied output head too

    def __post_init__(self) -> None:
        _fraction("the pruning amount", self.amount)
        if self.scope not in SCOPES:
            raise TinyLMError(f"pruning scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")

    def layers(self, model: GPT) -> dict[str, nn.Linear]:
        head = self.head and not model.config.tie_weights
        return {name: m for name, m in model.named_modules()
                if type(m) is nn.Linear and (name != "lm_head" or head)}

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        _refuse_transformed(model)
        layers = self.layers(model)
        masks = magnitude_masks({name: m.weight for name, m in layers.items()}, self.amount, self.scope)
        return {name: MaskedLinear(layer, masks[name]) for name, layer in layers.items()}

    def merged(self, model: GPT) -> dict[str, nn.Module]:
        return {name: module.merged() for name, module in (self._installed or {}).items()}


def sparsity(model: GPT) -> float:
    """The share of zeros in the blocks' matrices (attention and FFN; not the head): the
    masks' zeros, or the weights' own once merged."""
    zeros = total = 0
    for name, m in model.named_modules():
        if not name.startswith("blocks."):
            continue
        if isinstance(m, MaskedLinear):
            zeros, total = zeros + int((~m.mask).sum()), total + m.mask.numel()
        elif type(m) is nn.Linear:
            zeros, total = zeros + int((m.weight == 0).sum()), total + m.weight.numel()
    return zeros / max(total, 1)


# ----------------------------------------------------------------------------- structured

@dataclass
class StructuredPlan:
    """What structured pruning keeps, per layer: key/value head groups and FFN channels
    (sorted indices into the original layer)."""

    kv_groups: list[list[int]]
    channels: list[list[int]]


def _head_rows(cfg: ModelConfig, groups: list[int]) -> tuple[list[int], list[int]]:
    """(rows of attn.qkv, columns of attn.proj) belonging to the key/value groups `groups`."""
    H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    rep = H // H_kv
    heads = [g * rep + r for g in groups for r in range(rep)]
    q = [h * D + i for h in heads for i in range(D)]
    k = [H * D + g * D + i for g in groups for i in range(D)]
    v = [(H + H_kv) * D + g * D + i for g in groups for i in range(D)]
    return q + k + v, q


def _weight_scores(model: GPT) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    cfg = model.config
    H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    rep = H // H_kv
    heads, channels = [], []
    for block in model.blocks:
        qkv, proj = block.attn.qkv.weight.detach(), block.attn.proj.weight.detach()
        v = qkv[(H + H_kv) * D:].reshape(H_kv, D, -1)
        o = proj.reshape(proj.shape[0], H_kv, rep * D)
        heads.append(v.flatten(1).norm(dim=1) * o.transpose(0, 1).flatten(1).norm(dim=1))
        ffn = block.ffn
        score = ffn.up.weight.detach().norm(dim=1) * ffn.down.weight.detach().norm(dim=0)
        if hasattr(ffn, "gate"):
            score = score * ffn.gate.weight.detach().norm(dim=1)
        channels.append(score)
    return heads, channels


@torch.no_grad()
def _activation_scores(model: GPT, calibration: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    cfg = model.config
    H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    rep = H // H_kv
    n = len(model.blocks)
    heads: list[torch.Tensor] = [torch.zeros(H_kv)] * n
    channels: list[torch.Tensor] = [torch.zeros(cfg.hidden_dim)] * n

    def on_proj(i: int):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            y = args[0].reshape(-1, H_kv, rep * D)  # (tokens, groups, the group's heads' outputs)
            w = module.weight.reshape(-1, H_kv, rep * D)  # (n_embd, groups, rep * D)
            added = torch.einsum("tgd,egd->tge", y, w)  # what each group adds to the residual
            heads[i] = heads[i] + added.norm(dim=-1).mean(0)
        return hook

    def on_down(i: int):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            a = args[0].reshape(-1, args[0].shape[-1])
            channels[i] = channels[i] + a.abs().mean(0) * module.weight.norm(dim=0)
        return hook

    handles = []
    for i, block in enumerate(model.blocks):
        handles.append(block.attn.proj.register_forward_pre_hook(on_proj(i)))
        handles.append(block.ffn.down.register_forward_pre_hook(on_down(i)))
    training = model.training
    try:
        model.eval()
        model(calibration)
    finally:
        for h in handles:
            h.remove()
        model.train(training)
    return heads, channels


def _count(what: str, fraction: float | None, total: int, unit: str) -> int:
    """How many of `total` to remove for `fraction`; refuses removing none or all."""
    if fraction is None:
        return 0
    removed = round(_fraction(what, fraction) * total)
    if removed == 0:
        raise TinyLMError(f"{what} {fraction} removes none of the {total} {unit} per layer; "
                          f"use at least {0.5 / total:.3f}")
    if removed >= total:
        raise TinyLMError(f"{what} {fraction} would remove all {total} {unit} of every layer; use a smaller fraction")
    return removed


def structured_plan(model: GPT, heads: float | None = None, ffn: float | None = None, *,
                    importance: str = "weight", calibration: torch.Tensor | None = None) -> StructuredPlan:
    """Which head groups and FFN channels to keep, removing the fractions `heads` and `ffn` of
    the least important in every layer."""
    _refuse_transformed(model)
    cfg = model.config
    if heads is None and ffn is None:
        raise TinyLMError("structured pruning needs --heads and/or --ffn (fractions to remove)")
    if importance not in IMPORTANCE:
        raise TinyLMError(f"importance must be one of {', '.join(IMPORTANCE)}, not {importance!r}")
    if ffn is not None and cfg.ffn == "mlp3":
        raise TinyLMError("structured FFN pruning supports relu, gelu and swiglu FFNs, not mlp3 (two hidden layers)")
    unit = "attention heads" if cfg.kv_heads == cfg.n_head else "key/value head groups"
    drop_heads = _count("--heads", heads, cfg.kv_heads, unit)
    drop_channels = _count("--ffn", ffn, cfg.hidden_dim, "FFN channels")
    if importance == "activation":
        if calibration is None:
            raise TinyLMError("activation importance needs calibration tokens")
        head_scores, channel_scores = _activation_scores(model, calibration)
    else:
        head_scores, channel_scores = _weight_scores(model)

    def keep(scores: torch.Tensor, drop: int) -> list[int]:
        kept = torch.topk(scores, scores.numel() - drop).indices if drop else torch.arange(scores.numel())
        return sorted(kept.tolist())

    return StructuredPlan(kv_groups=[keep(s, drop_heads) for s in head_scores],
                          channels=[keep(s, drop_channels) for s in channel_scores])


@torch.no_grad()
def shrink(model: GPT, plan: StructuredPlan) -> GPT:
    """A new GPT holding only what `plan` keeps (the original is left as it was)."""
    cfg = model.config
    H, H_kv, D = cfg.n_head, cfg.kv_heads, cfg.head_dim
    n_groups, n_channels = {len(g) for g in plan.kv_groups}, {len(c) for c in plan.channels}
    if len(n_groups) != 1 or len(n_channels) != 1:
        raise ValueError("a plan keeps the same number of head groups and channels in every layer")
    kv = n_groups.pop()
    heads = kv * (H // H_kv)
    new = cfg.to_dict()
    new.update(
        n_head=heads, n_kv_head=None if cfg.n_kv_head is None else kv,
        head_size=D if heads * D != cfg.n_embd else None,
        ffn_hidden=n_channels.pop(),
        extra={**cfg.extra, "pruned": {"from_heads": H, "from_kv_heads": H_kv, "from_ffn_hidden": cfg.hidden_dim}},
    )
    state = model.state_dict()
    for i, (groups, channels) in enumerate(zip(plan.kv_groups, plan.channels)):
        p = f"blocks.{i}."
        rows, cols = _head_rows(cfg, groups)
        state[p + "attn.qkv.weight"] = state[p + "attn.qkv.weight"][rows]
        if p + "attn.qkv.bias" in state:
            state[p + "attn.qkv.bias"] = state[p + "attn.qkv.bias"][rows]
        state[p + "attn.proj.weight"] = state[p + "attn.proj.weight"][:, cols]
        for name in ("ffn.up", "ffn.gate"):
            for kind in ("weight", "bias"):
                if f"{p}{name}.{kind}" in state:
                    state[f"{p}{name}.{kind}"] = state[f"{p}{name}.{kind}"][channels]
        state[p + "ffn.down.weight"] = state[p + "ffn.down.weight"][:, channels]
    smaller = GPT(ModelConfig.from_dict(new))
    smaller.load_state_dict({k: v.clone() for k, v in state.items()})
    return smaller.train(model.training)


# ----------------------------------------------------------------------------- fine-tune

class _Windows:
    """Random windows of a token list: the Trainer's `get_batch` over text held in memory."""

    def __init__(self, ids: list[int], block_size: int) -> None:
        self.ids, self.block_size = torch.tensor(ids), block_size

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.ids) - self.block_size, (batch_size,), generator=generator)
        w = torch.stack([self.ids[s: s + self.block_size + 1] for s in starts.tolist()])
        return w[:, :-1], w[:, 1:]


def run_data(checkpoint: str | os.PathLike, tokenizer, block_size: int) -> tuple[Any, Any] | None:
    """The run a checkpoint belongs to (RUN/best or RUN/last beside RUN/data/): its training
    dataset, and its validation split's tokens when it is a text corpus; None outside a run."""
    from tinylm.data import read_pairs
    from tinylm.training.run import DATA_FOLDER, Corpus, Pairs, datasets

    folder = Path(checkpoint).resolve().parent / DATA_FOLDER
    if (folder / "train.bin").is_file():
        train, val = datasets(Corpus(folder), tokenizer, block_size)
        return train, val.data
    if (folder / "train.jsonl").is_file():
        return datasets(Pairs(read_pairs(folder / "train.jsonl"), None), tokenizer, block_size)[0], None
    return None


def finetune(model: GPT, data: Any, steps: int, *, batch_size: int = 8, lr: float = 3e-4) -> list[float]:
    """Train `model` (masked layers keep their zeros) for `steps` steps of the Trainer's own
    step (AdamW, clipping) at a constant small lr; returns the losses. `data`: a dataset with
    the Trainer's `get_batch` (a run's training split), or token ids (random windows of them)."""
    from tinylm.training.config import TrainConfig
    from tinylm.training.trainer import Trainer

    if isinstance(data, list):
        block = min(model.config.block_size, len(data) - 2)
        if block < 1:
            raise TinyLMError("the fine-tuning text is too short (needs at least 3 tokens)")
        data = _Windows(data, block)
    cfg = TrainConfig(out_dir=os.devnull, max_steps=steps, batch_size=batch_size, lr=lr, min_lr=lr,
                      warmup_steps=0, decay="constant", tensorboard=False)
    trainer = Trainer(model, data, cfg=cfg, quiet=True)
    model.train()
    try:
        return [trainer.train_step()["loss"] for _ in range(steps)]
    finally:
        model.eval()


# ----------------------------------------------------------------------------- one entry point

def prune(model: GPT, method: str = "magnitude", *, amount: float | None = None, scope: str = "layer",
          head: bool = False, heads: float | None = None, ffn: float | None = None,
          importance: str = "weight", calibration: torch.Tensor | None = None) -> GPT:
    """Prune `model`. magnitude: applies MagnitudePrune(amount, scope, head) to `model` itself
    (masked layers; `merge_all` bakes the zeros) and returns it. structured: returns a new,
    smaller GPT without the fractions `heads` of head groups and `ffn` of FFN channels."""
    if method == "magnitude":
        if heads is not None or ffn is not None:
            raise TinyLMError("--heads and --ffn are for --method structured; magnitude pruning takes --amount")
        return MagnitudePrune(amount=0.3 if amount is None else amount, scope=scope, head=head).apply(model)
    if method == "structured":
        if amount is not None:
            raise TinyLMError("--amount is for --method magnitude; structured pruning takes --heads and --ffn")
        plan = structured_plan(model, heads, ffn, importance=importance, calibration=calibration)
        return shrink(model, plan)
    raise TinyLMError(f"unknown pruning method {method!r}; choose one of: {', '.join(METHODS)}")


# ----------------------------------------------------------------------------- checkpoints

@dataclass
class PruneReport:
    """What `prune_checkpoint` wrote and how close the pruned model stays."""

    out: str
    method: dict[str, Any]
    parameters_before: int
    parameters_after: int
    bytes_before: int
    bytes_after: int
    sparsity: float  # share of zeros in the written model's attention and FFN matrices
    check_text: str
    check_tokens: int
    perplexity_before: float
    perplexity_after: float
    top1_agreement: float
    finetune_steps: int


def prune_checkpoint(
    checkpoint: str | os.PathLike, out: str | os.PathLike, method: str, *, amount: float | None = None,
    scope: str = "layer", head: bool = False, heads: float | None = None, ffn: float | None = None,
    importance: str = "weight", text: str | None = None, finetune_text: str | None = None,
    finetune_steps: int = 0, overwrite: bool = False, check_tokens: int = 2048,
) -> PruneReport:
    """Prune the checkpoint folder `checkpoint` into `out` (written atomically; nothing is
    written when anything fails). A magnitude-pruned model is saved merged: plain layers whose
    weights hold the zeros (every tool opens it; it is no smaller). `finetune_steps` trains the
    pruned model that many steps first (masks kept), on `finetune_text` or else the training
    split of the run the checkpoint belongs to (RUN/best beside RUN/data/). The check text:
    `text`, else the run's validation split, else a text the original model samples."""
    from tinylm.checkpoint import WEIGHTS_FILE, load_model, save_checkpoint
    from tinylm.interop.hf import check_out_dir
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer
    from tinylm.transforms.quantize import _check_ids, _logits, _perplexity

    if method not in METHODS:
        raise TinyLMError(f"unknown pruning method {method!r}; choose one of: {', '.join(METHODS)}")
    if finetune_steps < 0:
        raise TinyLMError(f"--finetune-steps must be >= 0, got {finetune_steps}")
    source = Path(checkpoint)
    target = check_out_dir(out, overwrite, source=source)
    model = load_model(source)
    if not (source / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {source} has no {TOKENIZER_FILENAME}")
    tokenizer = load_tokenizer(source / TOKENIZER_FILENAME)
    run = run_data(source, tokenizer, model.config.block_size)
    train_data: Any = tokenizer.encode(finetune_text) if finetune_text is not None else None
    if finetune_steps and train_data is None:
        if run is None:
            raise TinyLMError(f"--finetune-steps needs --data FILE: {source} is not in a run folder with data/")
        train_data = run[0]
    if text is None and run is not None and run[1] is not None:
        ids, origin = run[1][: check_tokens + 1].tolist(), "the run's validation split"
    else:
        ids, origin = _check_ids(model, tokenizer, text, check_tokens)
    reference = _logits(model, ids)
    before = model.num_params()
    calibration = None
    if importance == "activation":  # the check text in windows of the model's context
        block = min(model.config.block_size, len(ids))
        calibration = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    pruned = prune(model, method, amount=amount, scope=scope, head=head, heads=heads, ffn=ffn,
                   importance=importance, calibration=calibration)
    settings: dict[str, Any] = ({"amount": pruned.transforms[0].amount, "scope": scope, "head": head}
                                if method == "magnitude" else {"heads": heads, "ffn": ffn, "importance": importance})
    if finetune_steps:
        finetune(pruned, train_data, finetune_steps)
    if method == "magnitude":
        merge_all(pruned)
    logits = _logits(pruned, ids)

    def copy_rest(folder: Path) -> None:
        # Files beside the model (a task's settings); not train_state: it belongs to the unpruned model.
        for item in source.iterdir():
            if item.name in ("config.json", WEIGHTS_FILE, TOKENIZER_FILENAME, "train_state"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)

    save_checkpoint(target, pruned, tokenizer, extra=copy_rest)
    return PruneReport(
        out=str(target), method={"method": method, **settings},
        parameters_before=before, parameters_after=pruned.num_params(),
        bytes_before=(source / WEIGHTS_FILE).stat().st_size, bytes_after=(target / WEIGHTS_FILE).stat().st_size,
        sparsity=sparsity(pruned), check_text=origin, check_tokens=len(ids) - 1,
        perplexity_before=_perplexity(reference, ids), perplexity_after=_perplexity(logits, ids),
        top1_agreement=float((reference.argmax(-1) == logits.argmax(-1)).float().mean()),
        finetune_steps=finetune_steps,
    )
