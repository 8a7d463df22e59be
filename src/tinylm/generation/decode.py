"""DecodeState: a batch of rows decoding together, advanced one token at a time by `step()`.

generate() and stream() are both loops over `step()`; a server with continuous batching can
drive it too, interleaving steps with its own work. Each step:

1. masks the logits with the logits processor, if any (a row with nothing allowed ends
   with "no_valid_token"), applies the penalties, picks one token per row;
2. records each token, decodes its text, and ends rows that hit a stop token, a stop
   string, the processor's end, or their length limit;
3. drops finished rows from the batch (one copy of the cache, at most once per row, so
   later steps compute only live rows), then runs the model on the new tokens, which
   fills one more cache slot and yields the logits of the next step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tinylm.generation.config import GenerationConfig
from tinylm.generation.prefill import prefill
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent
from tinylm.generation.sampling import apply_penalties, select_tokens
from tinylm.generation.text import RowText
from tinylm.model import GPT
from tinylm.tokenizers import Tokenizer


@dataclass(slots=True)
class _Row:
    index: int
    prompt_tokens: int
    text: RowText | None
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None


class DecodeState:
    """Built by `Engine.start`, which checks the prompts and resolves `stop_token_ids` (the
    config's plus the tokenizer's eos)."""

    @torch.inference_mode()
    def __init__(
        self,
        model: GPT,
        prompts: list[list[int]],
        config: GenerationConfig,
        *,
        stop_token_ids: frozenset[int] = frozenset(),
        tokenizer: Tokenizer | None = None,
        processor: LogitsProcessor | None = None,
    ) -> None:
        self.model, self.config, self.processor = model, config, processor
        self._stop_ids = stop_token_ids
        self._rows = [
            _Row(i, len(p), RowText(tokenizer, config.stop_strings) if tokenizer is not None else None)
            for i, p in enumerate(prompts)
        ]
        self._active = list(self._rows)  # unfinished rows, in the order of the cache's batch rows
        self._cache, self._logits, self._max_new = prefill(model, prompts, config.max_new_tokens)
        self._generator = None
        if config.seed is not None and not config.greedy:
            self._generator = torch.Generator(self._logits.device).manual_seed(config.seed)
        # Penalty state exists only when a penalty is on: a (B, V) update per step otherwise wasted.
        B, V = self._logits.shape
        self._counts = torch.zeros(B, V, device=self._logits.device) if config.uses_counts else None
        self._seen = None
        if config.repetition_penalty != 1.0:
            self._seen = torch.zeros(B, V, dtype=torch.bool, device=self._logits.device)
            for i, p in enumerate(prompts):
                self._seen[i, p] = True

    @property
    def done(self) -> bool:
        return not self._active

    @torch.inference_mode()
    def step(self) -> list[StreamEvent]:
        """Advance every unfinished row by one token; one event per row that was active."""
        rows = self._active
        if not rows:
            return []
        logits, no_valid = self._logits, None
        if self.processor is not None:
            self.processor(logits, [r.index for r in rows], [r.tokens for r in rows])
            empty = torch.isneginf(logits).all(dim=-1)
            if empty.any():
                no_valid = empty.tolist()
                logits = logits.masked_fill(empty[:, None], 0.0)  # drawn from, then discarded
        cfg = self.config
        if self._counts is not None or self._seen is not None:
            logits = apply_penalties(
                logits, self._counts, repetition=cfg.repetition_penalty, presence=cfg.presence_penalty,
                frequency=cfg.frequency_penalty, seen=self._seen,
            )
        tokens = select_tokens(logits, cfg, self._generator)

        events, keep = [], []
        for i, (row, token) in enumerate(zip(rows, tokens.tolist())):
            if no_valid is not None and no_valid[i]:
                events.append(self._end(row, None, "", "no_valid_token"))
            else:
                events.append(self._accept(row, token))
            if row.finish_reason is None:
                keep.append(i)
        if not keep:
            self._active, self._logits = [], None
            return events
        if len(keep) < len(rows):
            self._compact(keep)
            tokens = tokens[torch.tensor(keep, device=tokens.device)]
        self._count(tokens)
        logits, _ = self.model(tokens[:, None], cache=self._cache, last_only=True)
        self._logits = logits[:, -1]
        return events

    def results(self) -> list[GenerationResult]:
        if not self.done:
            raise RuntimeError("generation is still running: call step() until done")
        return [
            GenerationResult(
                token_ids=r.tokens, text=r.text.text if r.text is not None else None,
                finish_reason=r.finish_reason, prompt_tokens=r.prompt_tokens,
            )
            for r in self._rows
        ]

    def _accept(self, row: _Row, token: int) -> StreamEvent:
        row.tokens.append(token)
        if self.processor is not None:
            self.processor.advance(row.index, token)
        if token in self._stop_ids:
            return self._end(row, token, "", "stop")  # the stop token adds no text
        piece = row.text.add(token) if row.text is not None else ""
        if row.text is not None and row.text.stopped:
            return self._end(row, token, piece, "stop")
        if self.processor is not None and self.processor.is_finished(row.index):
            return self._end(row, token, piece, "stop")
        if len(row.tokens) >= self._max_new:
            return self._end(row, token, piece, "length")
        return StreamEvent(row.index, token, piece)

    @staticmethod
    def _end(row: _Row, token: int | None, piece: str, reason: str) -> StreamEvent:
        row.finish_reason = reason
        if row.text is not None:
            piece += row.text.finish()
        return StreamEvent(row.index, token, piece, reason)

    def _compact(self, keep: Sequence[int]) -> None:
        index = torch.tensor(keep, device=self._logits.device)
        self._cache.reorder(index)
        self._active = [self._active[i] for i in keep]
        if self._counts is not None:
            self._counts = self._counts[index]
        if self._seen is not None:
            self._seen = self._seen[index]

    def _count(self, tokens: torch.Tensor) -> None:
        column = tokens[:, None]
        if self._counts is not None:
            self._counts.scatter_add_(1, column, torch.ones_like(column, dtype=self._counts.dtype))
        if self._seen is not None:
            self._seen.scatter_(1, column, True)
