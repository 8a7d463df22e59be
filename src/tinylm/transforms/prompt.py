"""Prompt tuning (Lester et al. 2021) as a persistent transform.

N virtual tokens, each a trained vector in the embedding space, are put before every input;
the whole model stays frozen. Design, within the transform contract (replacements keep
shapes): the token embedding is replaced by a PromptEmbedding that holds the base table
(the same frozen tensor, under the same name, so a tied head stays tied) and N extra rows,
`tok_emb.prompt`, read for the ids vocab_size .. vocab_size + N - 1. Those ids are the
prefix, and they are put in front of every sequence where token ids are made:

- training data: PairedDataset(..., prefix=ids) puts them before `[bos] input [sep]`
  (the loss never scores them), the run set-up passes `virtual_prefix(model)`;
- generation: LanguageModel's prompt format puts them before every prompt, so
  `tinylm generate`, the server, eval-task and code2 translate see them (the engine
  accepts ids below the embedding's size, and the head scores only the real vocabulary,
  so a virtual token is never generated).

The virtual tokens are ordinary positions 0..N-1 of the sequence: the KV cache holds them
like any prompt token, so cached decoding computes what a full forward computes, and they
take N positions of the model's context.

Initialisation: "vocab" copies the embeddings of N tokens drawn at random from the
vocabulary (Lester et al.'s better start), "random" draws them like the embedding's init.
Not mergeable: the prompt is input, not a weight of any layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.transforms.base import register_transform
from tinylm.transforms.freeze import TrainingTransform

INITS = ("vocab", "random")


class PromptEmbedding(nn.Module):
    """The token embedding (`weight`, the base table) plus `prompt`, N virtual-token rows."""

    def __init__(self, base: nn.Embedding, n: int, init: str) -> None:
        super().__init__()
        self.weight = base.weight  # the same Parameter: a tied head keeps reading it
        vocab, width = base.weight.shape
        self.vocab_size = vocab
        self.num_embeddings = vocab + n  # the ids this embedding accepts (generation checks prompts against it)
        with torch.no_grad():
            if init == "vocab":
                rows = base.weight[torch.randint(vocab, (n,))].detach().clone()
            else:
                rows = torch.randn(n, width, dtype=base.weight.dtype, device=base.weight.device) * 0.02
        self.prompt = nn.Parameter(rows)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        virtual = idx >= self.vocab_size
        x = nn.functional.embedding(idx.clamp(max=self.vocab_size - 1), self.weight)
        if bool(virtual.any()):
            rows = self.prompt[(idx - self.vocab_size).clamp(0, self.prompt.shape[0] - 1)]
            x = torch.where(virtual[..., None], rows, x)
        return x


@register_transform
@dataclass
class PromptTuning(TrainingTransform):
    name: ClassVar[str] = "prompt"
    reversible: ClassVar[bool] = True
    mergeable: ClassVar[bool] = False
    trained: ClassVar[tuple[str, ...]] = ("tok_emb.prompt",)

    virtual_tokens: int = 20
    init: str = "vocab"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise TinyLMError(f"prompt-tuning init must be one of {', '.join(INITS)}, not {self.init!r}")
        if not isinstance(self.virtual_tokens, int) or self.virtual_tokens < 1:
            raise TinyLMError(f"--virtual-tokens must be a positive integer, not {self.virtual_tokens!r}")

    def replacements(self, model: GPT) -> dict[str, nn.Module]:
        if type(model.tok_emb) is not nn.Embedding:
            raise TinyLMError("prompt tuning needs the model's plain token embedding (apply it first)")
        if self.virtual_tokens >= model.config.block_size:
            raise TinyLMError(f"{self.virtual_tokens} virtual tokens leave no room in a context of {model.config.block_size}")
        return {"tok_emb": PromptEmbedding(model.tok_emb, self.virtual_tokens, self.init)}


def virtual_prefix(model: nn.Module) -> list[int]:
    """The ids a prompt-tuned model expects before every input ([] for any other model)."""
    for transform in getattr(model, "transforms", []):
        if isinstance(transform, PromptTuning):
            vocab = model.config.vocab_size
            return list(range(vocab, vocab + transform.virtual_tokens))
    return []
