"""Row bookkeeping: what the decoder knows about each sequence it generates, in one place.

Every way of generating (Engine.generate, streaming, the server's continuous batching,
beam search) is built from these parts:

- `Group`: the rows of one request: its GenerationConfig, stop ids, logits processor and
  seeded generator (`open_group` resolves the stop ids and seeds the generator);
- `Row`: one sequence's tokens, text and finish reason; `Row.accept` records a chosen
  token and decides whether the row ends (stop token, stop string, the processor's end,
  its length limit), `Row.end` ends it;
- `TokenHistory`: per-row token statistics for the penalties (generated counts for
  presence/frequency, seen ids for repetition), kept only once a row needs them;
- `mask_rows`: lets a processor mask some rows of the logits and reports the rows left
  with no allowed token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tinylm.errors import TinyLMError
from tinylm.generation.config import GenerationConfig
from tinylm.generation.incremental_text import IncrementalText
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent
from tinylm.generation.sampling import apply_penalties
from tinylm.tokenizers import Tokenizer


@dataclass(eq=False)
class Group:
    """The rows of one request; `owner` is whatever the caller attaches (a server ticket)."""

    config: GenerationConfig
    stop_ids: frozenset[int]
    processor: LogitsProcessor | None
    generator: torch.Generator | None
    owner: object = None
    rows: list[Row] = field(default_factory=list)
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return all(r.finish_reason is not None for r in self.rows)

    def results(self) -> list[GenerationResult]:
        if not self.done:
            raise RuntimeError("generation is still running: call step() until done")
        return [
            GenerationResult(token_ids=r.tokens, text=r.text.text if r.text is not None else None,
                             finish_reason=r.finish_reason, prompt_tokens=r.prompt_tokens)
            for r in self.rows
        ]


@dataclass(eq=False, slots=True)
class Row:
    group: Group
    local: int  # the row's index inside its group: what its StreamEvents and processor see
    prompt_tokens: int
    max_new: int  # max_new_tokens clamped so this row fits the context
    text: IncrementalText | None  # None without a tokenizer
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    def accept(self, token: int) -> StreamEvent:
        """Record the chosen token; the event carries a finish reason if the row ends here."""
        group = self.group
        self.tokens.append(token)
        if group.processor is not None:
            group.processor.advance(self.local, token)
        if token in group.stop_ids:
            return self.end(token, "", "stop")  # the stop token adds no text
        piece = self.text.add(token) if self.text is not None else ""
        if self.text is not None and self.text.stopped:
            return self.end(token, piece, "stop")
        if group.processor is not None and group.processor.is_finished(self.local):
            return self.end(token, piece, "stop")
        if len(self.tokens) >= self.max_new:
            return self.end(token, piece, "length")
        return StreamEvent(self.local, token, piece)

    def end(self, token: int | None, piece: str, reason: str) -> StreamEvent:
        self.finish_reason = reason
        if self.text is not None:
            piece += self.text.finish()
        return StreamEvent(self.local, token, piece, reason)


def stop_ids(config: GenerationConfig, tokenizer: Tokenizer | None, vocab_size: int) -> frozenset[int]:
    """The ids that end a row: the config's, plus the tokenizer's eos unless ignore_eos."""
    ids = set(config.stop_token_ids)
    if tokenizer is not None and not config.ignore_eos:
        ids.add(tokenizer.eos_id)
    outside = sorted(t for t in ids if t >= vocab_size)
    if outside:
        raise TinyLMError(f"stop_token_ids {outside} are outside the vocabulary ({vocab_size})")
    return frozenset(ids)


def open_group(
    config: GenerationConfig, prompts: Sequence[Sequence[int]], *, block_size: int, vocab_size: int,
    tokenizer: Tokenizer | None, processor: LogitsProcessor | None, device: torch.device, owner: object = None,
) -> Group:
    """A group with one row per prompt; each row's max_new_tokens is clamped to its own prompt
    (prompt + new - 1 <= block_size: the very last token is sampled, never fed back)."""
    if config.stop_strings and tokenizer is None:
        raise TinyLMError("stop_strings need a tokenizer (the engine has none); use stop_token_ids")
    if processor is not None and not isinstance(processor, LogitsProcessor):
        raise TinyLMError(f"logits_processor must be a LogitsProcessor, got {type(processor).__name__}")
    generator = None
    if config.seed is not None and not config.greedy:
        generator = torch.Generator(device).manual_seed(config.seed)
    group = Group(config, stop_ids(config, tokenizer, vocab_size), processor, generator, owner)
    for i, p in enumerate(prompts):
        text = IncrementalText(tokenizer, config.stop_strings) if tokenizer is not None else None
        group.rows.append(Row(group, i, len(p), min(config.max_new_tokens, block_size - len(p) + 1), text))
    return group


class TokenHistory:
    """Per-row token statistics that the penalties read, one row per batch row.

    counts (B, V): how often each token was generated (presence and frequency penalties);
    seen (B, V) bool: tokens of the prompt or generated (repetition penalty). Each is
    allocated only once some row needs it, since updating it costs a (B, V) write per step;
    rows that do not need it hold zeros."""

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None
        self.rows = 0

    def add(self, prompts: Sequence[Sequence[int]], config: GenerationConfig, vocab_size: int,
            device: torch.device) -> None:
        """Rows for these prompts, after the existing ones."""
        n = len(prompts)
        if config.uses_counts and self.counts is None:
            self.counts = torch.zeros(self.rows, vocab_size, device=device)
        if config.repetition_penalty != 1.0 and self.seen is None:
            self.seen = torch.zeros(self.rows, vocab_size, dtype=torch.bool, device=device)
        if self.counts is not None:
            self.counts = torch.cat([self.counts, torch.zeros(n, vocab_size, device=device)])
        if self.seen is not None:
            seen = torch.zeros(n, vocab_size, dtype=torch.bool, device=device)
            if config.repetition_penalty != 1.0:
                for i, p in enumerate(prompts):
                    seen[i, [t for t in p if t < vocab_size]] = True  # not a prompt-tuned model's virtual tokens
            self.seen = torch.cat([self.seen, seen])
        self.rows += n

    def keep(self, index: torch.Tensor) -> None:
        """Keep these rows, in this order (rows left the batch, or beams follow their parents)."""
        self.rows = index.numel()
        if self.rows == 0:
            self.counts = self.seen = None
            return
        if self.counts is not None:
            self.counts = self.counts[index]
        if self.seen is not None:
            self.seen = self.seen[index]

    def record(self, tokens: torch.Tensor) -> None:
        """Each row generated tokens[row]."""
        column = tokens[:, None]
        if self.counts is not None:
            self.counts.scatter_add_(1, column, torch.ones_like(column, dtype=self.counts.dtype))
        if self.seen is not None:
            self.seen.scatter_(1, column, True)

    def penalize(self, logits: torch.Tensor, config: GenerationConfig, index: torch.Tensor | None = None) -> torch.Tensor:
        """`config`'s penalties applied to logits of the rows `index` (all rows if None)."""
        if config.repetition_penalty == 1.0 and not config.uses_counts:
            return logits
        counts, seen = self.counts, self.seen
        if index is not None:
            counts = counts[index] if counts is not None else None
            seen = seen[index] if seen is not None else None
        return apply_penalties(logits, counts, repetition=config.repetition_penalty, presence=config.presence_penalty,
                               frequency=config.frequency_penalty, seen=seen)


def mask_rows(
    processor: LogitsProcessor, logits: torch.Tensor, ids: Sequence[int], generated: Sequence[Sequence[int]],
    index: torch.Tensor | None = None,
) -> list[int]:
    """Let `processor` mask the rows `index` of logits (all rows if None), in place; returns
    the positions (within `index`) left with no allowed token. Those rows get finite logits
    (zeros) so whatever is drawn or ranked from them stays finite; the caller ends or drops them."""
    sub = logits if index is None else logits[index]
    dead = processor(sub, ids, generated)
    if dead is None:  # the processor does not say: look (four torch calls, which a grammar's mask saves)
        empty = torch.isneginf(sub).all(dim=-1)
        dead = [i for i, e in enumerate(empty.tolist()) if e] if bool(empty.any()) else []
    if dead:
        sub[dead] = 0.0
    if index is not None:
        logits.index_copy_(0, index, sub)
    return dead
