"""ContinuousBatch: the decoder. One KV cache whose rows join and leave between decode steps,
each row with its own settings.

Every generation but beam search runs here: `Engine.generate` and `Engine.stream` admit
all their prompts at once and step until the batch is empty; the server's scheduler
(tinylm.serve) admits requests while others are half done, each with its own
temperature, seed, stop strings or grammar. A step:

1. lets each group's processor mask its rows (a row left with nothing allowed ends with
   "no_valid_token"), applies the penalties and draws one token per row;
2. records each token (`Row.accept`), ending rows that hit a stop token, a stop string,
   the processor's end or their length limit;
3. drops finished rows from the cache and trims the padding no live row needs, and runs
   the model on the new tokens, which fills one more cache slot and yields the next
   step's logits.

- `add`: a request's prompts are prefilled on their own, then appended to the running
  cache (`KVCache.append`), right-aligned with the rows already there. Every row's newest
  token then sits in the same slot, so one forward pass advances all rows; the cache's
  `pad` hides each row's leading empty slots and shifts its positions.
- per-row settings: rows are grouped by request (`Group`: one config, one processor, one
  seeded generator for its n choices); each step draws tokens bucket by bucket, where a
  bucket is every unseeded group with equal sampling settings (one call for all greedy
  rows, say) or a single seeded group (its own generator, so a seed gives the same text
  however the batch around it changes).
- masks off the critical path: where a core is free for it (`overlap_masks`, by default
  when the process may run on more cores than torch's threads use), a batch whose rows all
  belong to one group with a processor that `prepares` (a grammar) runs the fused step on its
  own C++ thread (`FusedDecodeStep.start`), any number of rows; meanwhile this thread lets
  the processor compute the next step's mask, and the processor's packed bitmask is applied
  in C++ as the logits come out (`finish`), so the step pays no torch call for it. Neither
  side needs the other or the GIL until `finish`. The tokens are the same either way.
  Batches that mix groups compute their masks in the step.

The decode steps of a llama-style model prepared for inference (any number of rows, padded
or not) run through the fused C++ decode step (tinylm.transforms.decode_step) instead of the
PyTorch model: same logits to float rounding (int8 / int4: activations rounded to int8 per
block of 32), a fraction of the per-step overhead. Prompts, and models it does not cover, run
the model itself.

Length limits are per row (max_new_tokens clamped to the row's own prompt). When rows
finish or are cancelled they are dropped from the cache and the padding column that no
remaining row needs is trimmed, so the cache is never longer than its longest live row
(which the context limit bounds) and memory stays bounded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tinylm.errors import TinyLMError
from tinylm.generation.config import GenerationConfig
from tinylm.generation.prefill import check_prompts, prefill
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import StreamEvent
from tinylm.generation.rows import Group, Row, TokenHistory, mask_rows, open_group
from tinylm.generation.sampling import select_tokens
from tinylm.model import GPT, KVCache
from tinylm.tokenizers import Tokenizer
from tinylm.transforms.decode_step import fused_decode_step

__all__ = ["ContinuousBatch", "Group", "Row"]


def _sampling_key(config: GenerationConfig) -> tuple:
    return (config.temperature, config.top_k, config.top_p, config.min_p, config.repetition_penalty,
            config.presence_penalty, config.frequency_penalty)


@dataclass(slots=True)
class _Part:
    """Positions of the batch that one group (masking) or one bucket (drawing) covers."""

    positions: list[int]
    index: torch.Tensor | None  # None when the part is the whole batch: no gather, no scatter
    group: Group  # the group (the bucket's first group: its config stands for the bucket)
    generator: torch.Generator | None = None


def masks_overlap_by_default() -> bool:
    """Whether the decoder overlaps masks unless told (`overlap_masks=None`): when the process may
    run on a core besides those torch's threads use, for the step's thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > torch.get_num_threads()


class ContinuousBatch:
    def __init__(self, model: GPT, tokenizer: Tokenizer | None = None, *, overlap_masks: bool | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._rows: list[Row] = []  # live rows, in the order of the cache's batch rows
        self._cache: KVCache | None = None
        self._logits: torch.Tensor | None = None  # (B, V): each live row's next-token logits
        self._history = TokenHistory()
        self._masking: list[_Part] = []  # groups with a processor
        self._buckets: list[_Part] = []
        self._fused = fused_decode_step(model)  # None: every step runs the PyTorch model
        # The rows left with nothing allowed by the mask the last forward pass's finish applied,
        # or None: the logits are not masked yet (cleared whenever the rows change).
        self._premasked: list[int] | None = None
        self.overlap_masks = masks_overlap_by_default() if overlap_masks is None else overlap_masks

    @property
    def num_rows(self) -> int:
        return len(self._rows)

    @property
    def done(self) -> bool:
        """No live rows: every admitted row has finished."""
        return not self._rows

    def groups(self) -> list[Group]:
        """The groups with live rows, in order of arrival."""
        return list(dict.fromkeys(r.group for r in self._rows))

    @property
    def cache_slots(self) -> int:
        """Batch rows x cache length: the memory the running batch holds, in tokens."""
        return 0 if self._cache is None else self._cache.batch_size * self._cache.capacity

    @torch.inference_mode()
    def add(self, prompts: Sequence[Sequence[int]], config: GenerationConfig,
            processor: LogitsProcessor | None = None, owner: object = None) -> Group:
        """Prefill `prompts` and merge them into the batch; they take part from the next step."""
        if not isinstance(config, GenerationConfig):
            raise TinyLMError(f"config must be a GenerationConfig, got {type(config).__name__}")
        if config.num_beams != 1:
            raise TinyLMError("this decoder draws one token per row: num_beams must be 1 (beam search: generate)")
        prompts = check_prompts(self.model, prompts)
        if not prompts:
            raise TinyLMError("no prompts to generate from")
        cfg = self.model.config
        device = next(self.model.parameters()).device
        group = open_group(config, prompts, block_size=cfg.block_size, vocab_size=cfg.vocab_size,
                           tokenizer=self.tokenizer, processor=processor, device=device, owner=owner)
        width = max(map(len, prompts))
        # Room for the longest remaining generation, so no step until the next change reallocates.
        remaining = max(r.max_new - len(r.tokens) for r in self._rows + group.rows)
        if self._cache is None:
            self._cache, self._logits = prefill(self.model, prompts, width + remaining - 1)
        else:
            cache, logits = prefill(self.model, prompts)  # exactly as wide as the prompts: copied next
            self._cache.append(cache, max(self._cache.length, width) + remaining - 1)
            self._logits = torch.cat([self._logits, logits])
        self._history.add(prompts, config, cfg.vocab_size, device)
        self._rows = self._rows + group.rows
        self._layout()
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
        dead: set[int] = set()
        premasked, self._premasked = self._premasked, None
        for part in self._masking if premasked is None else ():
            processor = part.group.processor
            ids, generated = [rows[i].local for i in part.positions], [rows[i].tokens for i in part.positions]
            dead.update(part.positions[d] for d in mask_rows(processor, logits, ids, generated, part.index))
        if premasked is not None:
            dead.update(premasked)
        tokens = self._draw(logits)

        events, keep = [], []
        for i, (row, token) in enumerate(zip(rows, tokens.tolist())):
            event = row.end(None, "", "no_valid_token") if i in dead else row.accept(token)
            events.append((row.group, event))
            if row.finish_reason is None:
                keep.append(i)
        self._history.record(tokens)
        self._keep(keep)
        if self._rows:
            if len(keep) < len(rows):
                tokens = tokens[torch.tensor(keep, device=tokens.device)]
            if self._fused is None:
                out, _ = self.model(tokens[:, None], cache=self._cache, last_only=True)
                self._logits = out[:, -1]
            elif self._overlaps():
                self._overlapped_step(tokens)
            else:
                self._logits = self._fused.step_rows(tokens, self._cache)
        return events

    # --- one step's parts --------------------------------------------------------------------

    def _draw(self, logits: torch.Tensor) -> torch.Tensor:
        """One token per row, bucket by bucket (penalties applied per bucket)."""
        if len(self._buckets) == 1:
            part = self._buckets[0]
            cfg = part.group.config
            return select_tokens(self._history.penalize(logits, cfg), cfg, part.generator)
        tokens = torch.empty(len(self._rows), dtype=torch.long, device=logits.device)
        for part in self._buckets:
            cfg = part.group.config
            sub = self._history.penalize(logits[part.index], cfg, part.index)
            tokens[part.index] = select_tokens(sub, cfg, part.generator)
        return tokens

    def _overlaps(self) -> bool:
        """Whether this step computes the next mask during the forward pass (see the module notes)."""
        return (self.overlap_masks and len(self._masking) == 1 and self._masking[0].index is None
                and self._masking[0].group.processor.prepares)

    def _overlapped_step(self, tokens: torch.Tensor) -> None:
        """The forward pass on the step's thread while the processor prepares the next mask here;
        a prepared bitmask is applied by `finish`, and the next step does not mask again."""
        processor = self._masking[0].group.processor
        rows = self._rows
        self._fused.start(tokens, self._cache)
        prepared = None
        try:
            ids, generated = [r.local for r in rows], [r.tokens for r in rows]
            processor.prepare(ids, generated)
            prepared = processor.prepared_bitmask(ids, generated)
        finally:
            self._logits = self._fused.finish(None if prepared is None else prepared[0])
        if prepared is not None:
            dead = prepared[1]
            if dead:
                self._logits[dead] = 0.0  # finite, as mask_rows leaves them: the row ends, nothing is drawn
            self._premasked = dead

    # --- batch bookkeeping -------------------------------------------------------------------

    def _keep(self, keep: list[int]) -> None:
        """Keep only these rows, then trim the leading slots that are padding in every row."""
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._logits = [], None, None
            self._history = TokenHistory()
            self._masking, self._buckets = [], []
            return
        index = torch.tensor(keep, device=self._logits.device)
        self._rows = [self._rows[i] for i in keep]
        self._cache.reorder(index)
        self._cache.trim()
        self._logits = self._logits[index]
        self._history.keep(index)
        self._layout()

    def _layout(self) -> None:
        """Which positions each processor masks and each draw covers (after the rows changed)."""
        self._premasked = None  # rows joined or left: every processor masks its rows again
        device = self._logits.device
        n = len(self._rows)
        groups: dict[Group, list[int]] = {}
        buckets: dict[object, list[int]] = {}
        for i, r in enumerate(self._rows):
            g = r.group
            groups.setdefault(g, []).append(i)
            buckets.setdefault(g.generator if g.generator is not None else _sampling_key(g.config), []).append(i)

        def part(positions: list[int], group: Group, generator: torch.Generator | None = None) -> _Part:
            index = None if len(positions) == n else torch.tensor(positions, device=device)
            return _Part(positions, index, group, generator)

        self._masking = [part(p, g) for g, p in groups.items() if g.processor is not None]
        self._buckets = [part(p, self._rows[p[0]].group, self._rows[p[0]].group.generator)
                         for p in buckets.values()]

