"""The Python API: `tinylm.load(path)` gives a LanguageModel that generates text.

    import tinylm
    lm = tinylm.load("runs/shakespeare/best")
    print(lm.generate("ROMEO:", max_new_tokens=100, temperature=0.8))
    for piece in lm.stream("JULIET:", max_new_tokens=50):
        print(piece, end="", flush=True)

The CLI, the server and the task evaluators all go through this object, so a model is
loaded, encoded and decoded the same way everywhere: in particular every prompt is framed
in the model's own prompt format (`lm.prompt_format`, read from its checkpoint;
tinylm/data/prompt_format.py), so a CODE-2 line model answers a sentence here exactly as
`tinylm generate`, `/v1/completions` and the playground do.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinylm.checkpoint import load_model
from tinylm.data.prompt_format import PromptFormat, prompt_format_of
from tinylm.errors import TinyLMError
from tinylm.generation import Engine, GenerationConfig, GenerationResult, LogitsProcessor
from tinylm.model import GPT, build_model
from tinylm.tokenizers import TOKENIZER_FILENAME, Tokenizer, load_tokenizer
from tinylm.transforms import is_quantized, prepare_for_inference, virtual_prefix


@dataclass
class LanguageModel:
    model: GPT
    tokenizer: Tokenizer
    path: Path | None = None

    def __post_init__(self) -> None:
        self.engine = Engine(self.model, self.tokenizer)
        self.prompt_format: PromptFormat = dataclasses.replace(
            prompt_format_of(self.model.config.extra), prefix=tuple(virtual_prefix(self.model)))

    def generate(
        self, prompt: str | list[str], logits_processor: LogitsProcessor | None = None, **settings: Any
    ) -> str | list[str]:
        """Complete one prompt (returns a string) or several (returns a list), batched."""
        results = self.complete([prompt] if isinstance(prompt, str) else prompt, logits_processor, **settings)
        texts = [r.text or "" for r in results]
        return texts[0] if isinstance(prompt, str) else texts

    def complete(
        self, prompts: list[str], logits_processor: LogitsProcessor | None = None, **settings: Any
    ) -> list[GenerationResult]:
        """Like generate, but returns the full results (token ids, finish reason, counts)."""
        return self.engine.generate(self.encode_prompts(prompts), generation_config(**settings), logits_processor)

    def stream(self, prompt: str, logits_processor: LogitsProcessor | None = None, **settings: Any) -> Iterator[str]:
        """Text pieces as they are generated."""
        for event in self.engine.stream(self.encode_prompts([prompt])[0], generation_config(**settings), logits_processor):
            if event.text:
                yield event.text

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each prompt, framed in the model's prompt format."""
        if not all(isinstance(p, str) for p in prompts):
            raise TinyLMError("prompts must be strings")
        return [self.prompt_format.encode(self.tokenizer, p) for p in prompts]

    @torch.inference_mode()
    def perplexity(self, text: str, stride: int | None = None) -> dict[str, float]:
        """Mean next-token loss and perplexity of `text`, in windows of the model's context.

        Each window after the first overlaps the previous one by `context - stride` tokens, and
        only its last `stride` tokens are scored, so every token is predicted from at least
        that much context (stride = context means disjoint windows, the fastest estimate).
        """
        return self.perplexity_of_ids(self.tokenizer.encode(text), stride)

    @torch.inference_mode()
    def perplexity_of_ids(self, ids: list[int], stride: int | None = None) -> dict[str, float]:
        """`perplexity` of token ids already encoded (e.g. a prepared split's test.bin)."""
        if len(ids) < 2:
            raise TinyLMError("text too short to measure perplexity (needs at least 2 tokens)")
        context = self.model.config.block_size
        stride = min(stride or context, context)
        total, count = 0.0, 0
        self.model.eval()
        for start in range(0, len(ids) - 1, stride):
            begin = max(0, start + stride - context) if start else 0
            window = torch.tensor(ids[begin : start + stride + 1])[None]
            logits, _ = self.model(window[:, :-1])
            targets = window[:, 1:].clone()
            targets[:, : start - begin] = -100  # already scored by the previous window
            loss = torch.nn.functional.cross_entropy(logits[0], targets[0], ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int((targets != -100).sum())
        mean = total / count
        return {"loss": mean, "perplexity": math.exp(mean), "tokens": count}

    def info(self) -> dict[str, Any]:
        cfg = self.model.config
        # A quantized model holds integers in buffers, not parameters: count the float model
        # it stands for (built on the meta device: no memory) and weigh what is stored.
        counted = self.model
        weight_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        if is_quantized(self.model):
            from tinylm.checkpoint import model_state

            with torch.device("meta"):
                counted = build_model(cfg)
            weight_bytes = sum(t.numel() * t.element_size() for t in model_state(self.model).values())
        return {
            "path": str(self.path) if self.path else None,
            "config": cfg.to_dict(),
            "transforms": [t.to_config() for t in self.model.transforms if t.persistent],
            "parameters": counted.num_params(),
            "parameters_without_embeddings": counted.num_params(exclude_embeddings=True),
            "flops_per_token": counted.flops_per_token(),
            "weight_bytes": weight_bytes,
            "tokenizer": {"kind": self.tokenizer.kind, "vocab_size": self.tokenizer.vocab_size},
            "prompt_format": self.prompt_format.name,
        }


def generation_config(**settings: Any) -> GenerationConfig:
    """A GenerationConfig from keyword settings; unknown names are a user error, not a TypeError."""
    try:
        return GenerationConfig(**settings)
    except TypeError as e:
        raise TinyLMError(f"generation settings: {e}") from None


def load(path: str | os.PathLike, device: str = "cpu", adapter: str | os.PathLike | None = None) -> LanguageModel:
    """Load a checkpoint folder (config.json + model.safetensors + tokenizer.json), prepared for
    inference (tinylm.transforms.prepare_for_inference: decoding layouts; `lm.model` cannot be
    trained until that transform is undone). `adapter`: a fine-tuning adapter folder
    (tinylm.finetune) trained on this checkpoint, applied to it (unmerged)."""
    path = Path(path)
    model = load_model(path, device=device)
    if adapter is not None:
        from tinylm.finetune import attach_adapter

        model = attach_adapter(model, adapter).eval()
    model = prepare_for_inference(model)
    if not (path / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {path} has no {TOKENIZER_FILENAME}")
    return LanguageModel(model, load_tokenizer(path / TOKENIZER_FILENAME), path)
