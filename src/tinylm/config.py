"""ModelConfig: everything needed to rebuild a model, and nothing else.

It is saved as `config.json` in every checkpoint, so every field is a plain JSON value.
Validation lives here (not in the layers) so a bad value fails before any weights are
allocated, with a message that names the field and the allowed choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tinylm.errors import TinyLMError

CHOICES: dict[str, tuple[str, ...]] = {
    "position": ("learned", "sinusoidal", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "norm_placement": ("pre", "post", "hybrid"),
    "ffn": ("relu", "gelu", "swiglu", "mlp3"),
    "attention": ("sdpa", "explicit"),
    "fan_input": ("none", "fan", "cola_fan"),
    "arch": ("transformer", "lstm"),
}
COLA_TARGETS = ("attn", "ffn")


@dataclass
class ModelConfig:
    vocab_size: int = 256
    block_size: int = 256  # the context length: the most tokens the model ever sees at once
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None = n_head (MHA); fewer = grouped-query attention (GQA)
    n_embd: int = 128
    # None = n_embd // n_head. Set when the heads' total width differs from n_embd: structured
    # pruning removes heads and keeps n_embd and each head's size. (Not named head_dim: that
    # property below is the resolved size every layer reads.)
    head_size: int | None = None
    ffn: str = "gelu"
    ffn_hidden: int | None = None  # None = 4*n_embd, or ~8/3*n_embd for SwiGLU (same parameter count)
    norm: str = "layernorm"
    norm_placement: str = "pre"
    norm_eps: float = 1e-5
    position: str = "learned"
    rope_theta: float = 10000.0
    attention: str = "sdpa"  # "explicit" is the educational path: softmax over a causal mask
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. the preset name)
    # --- efficient-architecture options (docs/architectures.md); the defaults build the plain model ---
    qk_norm: bool = False  # normalize each head's query and key before RoPE and attention
    cola_targets: list[str] = field(default_factory=list)  # CoLA low-rank linears in "attn" and/or "ffn"
    cola_rank: int | None = None  # rank r of CoLA layers (and of CoLA_FAN); None = n_embd // 4
    fan_input: str = "none"  # FANformer: periodic features of the attention input before q, k, v
    fan_p: float = 0.15  # share of the FAN output given to each of cos and sin
    # "lstm": the recurrent baseline (model/lstm.py), n_layer LSTM layers of width n_embd;
    # it reads vocab_size, block_size (training length and generation limit), n_layer,
    # n_embd, dropout and tie_weights, and no attention or FFN option.
    arch: str = "transformer"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.head_size or self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def hidden_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        if self.ffn == "swiglu":
            # Three matrices instead of two: 2/3 of 4*d keeps the parameter count, rounded
            # up to a multiple of 32 so matrix shapes stay friendly to the CPU's vector units.
            return 32 * -(-int(8 * self.n_embd / 3) // 32)
        return 4 * self.n_embd

    @property
    def cola_r(self) -> int:
        return self.cola_rank or self.n_embd // 4

    def extensions(self) -> list[str]:
        """The efficient-architecture options this config turns on, as `field=value` strings:
        the exporters refuse them (their formats have no such layers)."""
        defaults = {"qk_norm": False, "cola_targets": [], "fan_input": "none"}
        out = [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
        if self.norm_placement == "hybrid":
            out.append("norm_placement='hybrid'")
        if self.arch != "transformer":
            out.append(f"arch={self.arch!r}")
        return out

    def validate(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise TinyLMError(f"config: {name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise TinyLMError(f"config: {name} must be a positive integer, got {value!r}")
        if self.head_size is not None and (not isinstance(self.head_size, int) or self.head_size <= 0):
            raise TinyLMError(f"config: head_size must be a positive integer or null, got {self.head_size!r}")
        if self.head_size is None and self.n_embd % self.n_head:
            raise TinyLMError(f"config: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_kv_head is not None and (self.n_kv_head <= 0 or self.n_head % self.n_kv_head):
            raise TinyLMError(f"config: n_kv_head={self.n_kv_head} must divide n_head={self.n_head}")
        if self.position == "rope" and self.head_dim % 2:
            raise TinyLMError(f"config: RoPE needs an even head size, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise TinyLMError(f"config: dropout must be in [0, 1), got {self.dropout}")
        self._validate_extensions()

    def _validate_extensions(self) -> None:
        if self.arch == "lstm" and (self.extensions() != ["arch='lstm'"] or self.norm_placement != "pre"):
            raise TinyLMError("config: arch='lstm' has no attention or FFN to apply qk_norm, norm_placement, CoLA or FAN to")
        if not isinstance(self.qk_norm, bool):
            raise TinyLMError(f"config: qk_norm must be true or false, got {self.qk_norm!r}")
        if self.qk_norm and self.norm_placement == "hybrid":
            raise TinyLMError("config: qk_norm with norm_placement='hybrid' is redundant: HybridNorm already normalizes q, k and v")
        if not isinstance(self.cola_targets, list) or any(t not in COLA_TARGETS for t in self.cola_targets) \
                or len(set(self.cola_targets)) != len(self.cola_targets):
            raise TinyLMError(f"config: cola_targets must be a list of distinct {', '.join(COLA_TARGETS)}, got {self.cola_targets!r}")
        uses_rank = bool(self.cola_targets) or self.fan_input == "cola_fan"
        if self.cola_rank is not None:
            if not uses_rank:
                raise TinyLMError("config: cola_rank is set but nothing uses it (set cola_targets or fan_input='cola_fan')")
            if not isinstance(self.cola_rank, int) or isinstance(self.cola_rank, bool) or not 0 < self.cola_rank < self.n_embd:
                raise TinyLMError(f"config: cola_rank={self.cola_rank!r} must be a positive integer below n_embd={self.n_embd} (a low rank)")
        elif uses_rank and self.cola_r < 1:
            raise TinyLMError(f"config: n_embd={self.n_embd} is too small for CoLA's default rank n_embd // 4")
        if not isinstance(self.fan_p, (int, float)) or isinstance(self.fan_p, bool) or not 0 < self.fan_p < 0.5:
            raise TinyLMError(f"config: fan_p={self.fan_p!r} must be in (0, 0.5): cos and sin each take that share")
        if self.fan_input != "none" and int(self.n_embd * self.fan_p) < 1:
            raise TinyLMError(f"config: fan_p={self.fan_p} leaves no periodic features at n_embd={self.n_embd}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TinyLMError(f"config: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise TinyLMError(f"config: {e}") from None
