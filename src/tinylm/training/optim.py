"""Optimizers, built by name from a small registry so new ones (Muon) plug in beside AdamW.

Weight decay pulls weights toward zero. It helps the matrices that mix features (attention
and feed-forward projections, an untied output head) but hurts parameters that set a scale
or an offset (norm gains, biases) and embeddings (rows of rare tokens would shrink just for
being rarely updated), so those go in a group without decay, as in nanoGPT and LitGPT.

Muon (optimizer="muon", the efficient-architecture study; Jordan et al. 2024, "Muon is
Scalable for LLM Training" 2025) updates a weight matrix by the orthogonalized momentum
(Newton–Schulz, coefficients 3.4445, -4.7750, 2.0315, 5 steps), which only makes sense for
the matrices that multiply hidden activations. Everything else (embeddings, the output
head, norm gains, biases) keeps AdamW: see `muon_groups` and docs/architectures.md.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model.positions import LearnedPositions

# Modules whose 2-D weights are lookup tables, not matrix multiplications.
EMBEDDING_TYPES = (nn.Embedding, LearnedPositions)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: ≥2-D matmul weights with `weight_decay`, everything else without.

    A tied head shares its tensor with the embedding; each tensor is listed once, under
    the module that owns it first (the embedding), so it is never decayed.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if p.dim() >= 2 and not isinstance(module, EMBEDDING_TYPES):
                decay.append(p)
            else:
                no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _adamw(model: nn.Module, cfg) -> torch.optim.Optimizer:
    # fused=True updates every tensor in one kernel instead of a dozen small ops per tensor:
    # the same arithmetic, about 20 % faster steps for the small models trained here on a CPU.
    fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in model.parameters())
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)


def muon_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, an untied head for AdamW with decay, the rest for AdamW
    without decay), each tensor once.

    Hidden matrices: 2-D weights of modules that are neither lookup tables nor the output
    head. The head maps to the vocabulary, a space with no geometry for orthogonalization
    to respect (Muon's authors keep it on AdamW); a tied head is the embedding, owned by it.
    """
    hidden: list[nn.Parameter] = []
    head: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if p.dim() != 2 or isinstance(module, EMBEDDING_TYPES):
                rest.append(p)
            elif name.split(".")[-1] == "lm_head":
                head.append(p)
            else:
                hidden.append(p)
    return hidden, head, rest


class MuonWithAdamW:
    """Muon on the hidden matrices and AdamW on the rest, stepped as one optimizer.

    `param_groups` lists both optimizers' groups (the trainer scales each group's lr), and
    `state_dict` numbers parameters across both, Muon's first, in torch's own format, so the
    training state saves and resumes it exactly as it does AdamW.
    """

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.parts = (muon, adamw)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for part in self.parts for g in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for part in self.parts:
            sd = part.state_dict()
            state |= {i + offset: s for i, s in sd["state"].items()}
            groups += [{**g, "params": [i + offset for i in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        offset, first_group = 0, 0
        for part in self.parts:
            groups = sd["param_groups"][first_group : first_group + len(part.param_groups)]
            first_group += len(groups)
            n = sum(len(g["params"]) for g in groups)
            part.load_state_dict({
                "state": {i - offset: s for i, s in sd["state"].items() if offset <= i < offset + n},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in groups],
            })
            offset += n


def _muon(model: nn.Module, cfg) -> MuonWithAdamW:
    hidden, head, rest = muon_groups(model)
    if not hidden:
        raise TinyLMError("optimizer muon: this model has no 2-D hidden matrices to orthogonalize; use adamw")
    # "match_rms_adamw" scales each update to AdamW's typical RMS (0.2 sqrt(max(A, B))), the
    # rule of "Muon is Scalable", which the study cites: Muon then reuses AdamW's lr and weight
    # decay, so one recipe's lr serves both optimizers. Momentum 0.95: the study's Table 2.
    muon = torch.optim.Muon(
        hidden, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=0.95, nesterov=True,
        ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, adjust_lr_fn="match_rms_adamw",
    )
    # The rest keeps param_groups' rule: an untied head decays; embeddings, gains, biases do not.
    groups = [{"params": head, "weight_decay": cfg.weight_decay}] if head else []
    groups.append({"params": rest, "weight_decay": 0.0})
    fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in head + rest)
    return MuonWithAdamW(muon, torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused))


# name -> factory(model, TrainConfig). The trainer sets each group's "lr" before every step,
# so a factory only has to honour lr as the initial value.
OPTIMIZERS: dict[str, Callable[[nn.Module, Any], torch.optim.Optimizer | MuonWithAdamW]] = {
    "adamw": _adamw,
    "muon": _muon,
}


def build_optimizer(name: str, model: nn.Module, cfg) -> torch.optim.Optimizer | MuonWithAdamW:
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise TinyLMError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}") from None
    return factory(model, cfg)
