"""ContinuousBatch: one KV cache whose rows join and leave between decode steps, each row
with its own sampling settings.

DecodeState decodes a fixed set of prompts under one GenerationConfig. A server
(tinylm.serve) sees requests arrive while others are half done, each
with its own temperature, seed, stop strings or grammar. This batch uses the same parts
(prefill, penalties, samplers, stop-string text, the LogitsProcessor hook) and adds the
two things a server needs:

- `add`: a request's prompts are prefilled on their own, then their keys/values are
  copied into the running cache, right-aligned with the rows already there. Every row's
  newest token then sits in the same slot, so one forward pass advances all rows; the
  cache's `pad` hides each row's leading empty slots and shifts its positions.
- per-row settings: rows are grouped by request (`Group`: one config, one processor, one
  seeded generator for its n choices); each step draws tokens bucket by bucket, where a
  bucket is every unseeded group with equal sampling settings (one call for all greedy
  rows, say) or a single seeded group (its own generator, so a seed gives the same text
  however the batch around it changes).

Length limits are per row (max_new_tokens clamped to the row's own prompt), where
DecodeState clamps a batch by its longest prompt: here the batch changes under the row.
When rows finish or are cancelled they are dropped from the cache and the padding
column that no remaining row needs is trimmed, so the cache is never longer than its
longest live row (which the context limit bounds) and memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tinylm.errors import TinyLMError
from tinylm.generation.config import GenerationConfig
from tinylm.generation.prefill import check_prompts, prefill
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import StreamEvent
from tinylm.generation.sampling import apply_penalties, select_tokens
from tinylm.generation.text import RowText
from tinylm.model import GPT, KVCache
from tinylm.tokenizers import Tokenizer


@dataclass(eq=False)
class Group:
    """The rows of one request; `owner` is whatever the caller attaches (a ticket)."""

    config: GenerationConfig
    stop_ids: frozenset[int]
    processor: LogitsProcessor | None
    generator: torch.Generator | None
    owner: object = None
    rows: list[_Row] = field(default_factory=list)
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return all(r.finish_reason is not None for r in self.rows)


@dataclass(eq=False, slots=True)
class _Row:
    group: Group
    local: int  # the row's index inside its group (what its StreamEvents and processor see)
    prompt_tokens: int
    max_new: int  # max_new_tokens clamped so this row fits the context
    text: RowText
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None


def _sampling_key(config: GenerationConfig) -> tuple:
    return (config.temperature, config.top_k, config.top_p, config.min_p, config.repetition_penalty,
            config.presence_penalty, config.frequency_penalty)


class ContinuousBatch:
    def __init__(self, model: GPT, tokenizer: Tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._rows: list[_Row] = []  # live rows, in the order of the cache's batch rows
        self._cache: KVCache | None = None
        self._logits: torch.Tensor | None = None  # (B, V): each live row's next-token logits
        self._counts: torch.Tensor | None = None  # (B, V) generated-token counts (presence/frequency)
        self._seen: torch.Tensor | None = None  # (B, V) prompt or generated (repetition)

    @property
    def num_rows(self) -> int:
        return len(self._rows)

    def groups(self) -> list[Group]:
        """The groups with live rows, in order of arrival."""
        return list(dict.fromkeys(r.group for r in self._rows))

    @property
    def cache_slots(self) -> int:
        """Batch rows x cache length: the memory the running batch holds, in tokens."""
        return 0 if self._cache is None else self._cache.batch_size * self._cache.k.shape[3]

    @torch.inference_mode()
    def add(self, prompts: list[list[int]], config: GenerationConfig,
            processor: LogitsProcessor | None = None, owner: object = None) -> Group:
        """Prefill `prompts` and merge them into the batch; they take part from the next step."""
        if config.num_beams != 1:
            raise TinyLMError("continuous batching decodes one token per row: num_beams must be 1")
        prompts = check_prompts(self.model, prompts)
        if not prompts:
            raise TinyLMError("no prompts to generate from")
        stop_ids = set(config.stop_token_ids)
        if not config.ignore_eos:
            stop_ids.add(self.tokenizer.eos_id)
        generator = None
        device = next(self.model.parameters()).device
        if config.seed is not None and not config.greedy:
            generator = torch.Generator(device).manual_seed(config.seed)
        group = Group(config, frozenset(stop_ids), processor, generator, owner)
        block = self.model.config.block_size
        for i, p in enumerate(prompts):
            max_new = min(config.max_new_tokens, block - len(p) + 1)
            group.rows.append(_Row(group, i, len(p), max_new, RowText(self.tokenizer, config.stop_strings)))
        cache, logits, _ = prefill(self.model, prompts, 1)  # a cache exactly as wide as the prompts
        self._merge(group.rows, prompts, cache, logits)
        return group

    def cancel(self, group: Group) -> None:
        """Drop the group's rows now (a client went away); no more events come for it."""
        group.cancelled = True
        for r in group.rows:
            if r.finish_reason is None:
                r.finish_reason = "cancelled"
        self._keep([i for i, r in enumerate(self._rows) if r.group is not group])

    @torch.inference_mode()
    def step(self) -> list[tuple[Group, StreamEvent]]:
        """Advance every live row by one token; one event per row, tagged with its group."""
        rows = self._rows
        if not rows:
            return []
        logits = self._logits
        no_valid = self._mask(logits)
        tokens = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        for key, positions in self._buckets().items():
            index = torch.tensor(positions, device=logits.device)
            whole = len(positions) == len(rows)
            sub = logits if whole else logits[index]
            cfg = rows[positions[0]].group.config
            if cfg.repetition_penalty != 1.0 or cfg.uses_counts:
                sub = apply_penalties(
                    sub, self._counts if whole else self._counts[index], repetition=cfg.repetition_penalty,
                    presence=cfg.presence_penalty, frequency=cfg.frequency_penalty,
                    seen=self._seen if whole else self._seen[index],
                )
            generator = key if isinstance(key, torch.Generator) else None
            picked = select_tokens(sub, cfg, generator)
            if whole:
                tokens = picked
            else:
                tokens[index] = picked

        events, keep = [], []
        for i, (row, token) in enumerate(zip(rows, tokens.tolist())):
            if i in no_valid:
                event = self._end(row, None, "", "no_valid_token")
            else:
                event = self._accept(row, token)
            events.append((row.group, event))
            if row.finish_reason is None:
                keep.append(i)
        self._count(tokens)
        self._keep(keep)
        if self._rows:
            if len(keep) < len(rows):
                tokens = tokens[torch.tensor(keep, device=tokens.device)]
            out, _ = self.model(tokens[:, None], cache=self._cache, last_only=True)
            self._logits = out[:, -1]
        return events

    # --- one step's parts --------------------------------------------------------------------

    def _mask(self, logits: torch.Tensor) -> set[int]:
        """Let each group's processor mask its rows; returns the positions left with no token."""
        empty: set[int] = set()
        by_group: dict[Group, list[int]] = {}
        for i, r in enumerate(self._rows):
            if r.group.processor is not None:
                by_group.setdefault(r.group, []).append(i)
        for group, positions in by_group.items():
            index = torch.tensor(positions, device=logits.device)
            sub = logits[index]
            group.processor(sub, [self._rows[i].local for i in positions], [self._rows[i].tokens for i in positions])
            dead = torch.isneginf(sub).all(dim=-1)
            sub = sub.masked_fill(dead[:, None], 0.0)  # drawn from, then discarded
            logits.index_copy_(0, index, sub)
            empty.update(p for p, d in zip(positions, dead.tolist()) if d)
        return empty

    def _buckets(self) -> dict[object, list[int]]:
        """Positions that can share one draw: unseeded rows with equal settings, or one seeded group."""
        buckets: dict[object, list[int]] = {}
        for i, r in enumerate(self._rows):
            g = r.group
            key = g.generator if g.generator is not None else _sampling_key(g.config)
            buckets.setdefault(key, []).append(i)
        return buckets

    def _accept(self, row: _Row, token: int) -> StreamEvent:
        group = row.group
        row.tokens.append(token)
        if group.processor is not None:
            group.processor.advance(row.local, token)
        if token in group.stop_ids:
            return self._end(row, token, "", "stop")  # the stop token adds no text
        piece = row.text.add(token)
        if row.text.stopped:
            return self._end(row, token, piece, "stop")
        if group.processor is not None and group.processor.is_finished(row.local):
            return self._end(row, token, piece, "stop")
        if len(row.tokens) >= row.max_new:
            return self._end(row, token, piece, "length")
        return StreamEvent(row.local, token, piece)

    @staticmethod
    def _end(row: _Row, token: int | None, piece: str, reason: str) -> StreamEvent:
        row.finish_reason = reason
        return StreamEvent(row.local, token, piece + row.text.finish(), reason)

    def _count(self, tokens: torch.Tensor) -> None:
        column = tokens[:, None]
        self._counts.scatter_add_(1, column, torch.ones_like(column, dtype=self._counts.dtype))
        self._seen.scatter_(1, column, True)

    # --- cache bookkeeping ---------------------------------------------------------------------

    def _keep(self, keep: list[int]) -> None:
        """Keep only these rows, then trim the leading slots that are padding in every row."""
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._logits, self._counts, self._seen = [], None, None, None, None
            return
        index = torch.tensor(keep, device=self._counts.device)
        self._rows = [self._rows[i] for i in keep]
        self._cache.reorder(index)
        if self._logits is not None:
            self._logits = self._logits[index]
        self._counts, self._seen = self._counts[index], self._seen[index]
        cache = self._cache
        if cache.pad is not None:
            trim = int(cache.pad.min())
            if trim:
                cache.k, cache.v = cache.k[:, :, :, trim:], cache.v[:, :, :, trim:]
                cache.length -= trim
                cache.max_len -= trim
                cache.pad = cache.pad - trim
            if not bool(cache.pad.any()):
                cache.pad = None

    def _merge(self, rows: list[_Row], prompts: list[list[int]], new: KVCache, logits: torch.Tensor) -> None:
        """Append prefilled rows to the batch, right-aligned with the rows already in it.

        The merged cache is sized for the longest remaining generation, so the decode
        steps until the next merge never reallocate."""
        old = self._cache
        old_len = old.length if old is not None else 0
        length = max(old_len, new.length)
        remaining = max(r.max_new - len(r.tokens) for r in self._rows + rows)
        capacity = length + max(remaining - 1, 0)
        n_old, n_new = len(self._rows), len(rows)
        device = logits.device
        zeros = torch.zeros(n_old, dtype=torch.long, device=device)
        old_pad = old.pad if old is not None and old.pad is not None else zeros
        new_pad = new.pad if new.pad is not None else torch.zeros(n_new, dtype=torch.long, device=device)
        pad = torch.cat([old_pad + (length - old_len), new_pad + (length - new.length)])
        cache = KVCache(self.model.config, n_old + n_new, capacity, dtype=new.k.dtype, device=device, pad=pad)
        if old is not None:
            cache.k[:, :n_old, :, length - old_len : length] = old.k[:, :, :, :old_len]
            cache.v[:, :n_old, :, length - old_len : length] = old.v[:, :, :, :old_len]
        cache.k[:, n_old:, :, length - new.length : length] = new.k[:, :, :, : new.length]
        cache.v[:, n_old:, :, length - new.length : length] = new.v[:, :, :, : new.length]
        cache.length = length
        V = logits.shape[-1]
        seen = torch.zeros(n_new, V, dtype=torch.bool, device=device)
        for i, p in enumerate(prompts):
            seen[i, p] = True
        if old is None:
            self._logits, self._counts, self._seen = logits, torch.zeros(n_new, V, device=device), seen
        else:
            self._logits = torch.cat([self._logits, logits])
            self._counts = torch.cat([self._counts, torch.zeros(n_new, V, device=device)])
            self._seen = torch.cat([self._seen, seen])
        self._cache = cache
        self._rows = self._rows + rows
