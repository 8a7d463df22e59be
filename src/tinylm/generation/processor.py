"""The one hook where outside code can restrict which tokens may come next.

A grammar (XGrammar), a list of allowed words, a ban on some ids: all of them are a
`LogitsProcessor`. The engine drives it like this, every step:

    processor(logits, rows, generated)    # mask: set disallowed tokens to -inf, in place
                                          # (may return the rows left with no allowed token)
    ... the engine picks one token per row ...
    processor.advance(row, token)         # tell each row's state which token was chosen
    processor.is_finished(row)            # True: the row is complete (finish_reason "stop")

`rows` are stable ids: the index of the prompt in `generate`'s list (or, in beam search,
prompt_index * num_beams + beam). A row whose logits are all -inf after masking has no
valid continuation: it ends with finish_reason "no_valid_token" instead of sampling.

Beam search reshuffles its beams every step. Before advancing, it calls
`reorder(rows, parents)`: row rows[i] now continues the sequence that row parents[i] had
(a parent may have several children, so a stateful processor must copy, e.g. xgrammar's
`GrammarMatcher.fork()`). Stateless processors only implement `__call__`.

Overlap. A processor whose mask takes real work (a grammar's bitmask) may also implement
`prepare(rows, generated)`, which the decoder calls right after a step's `advance` calls,
while the model's forward pass runs on another thread (the fused C++ step, which needs
neither the GIL nor this thread): it computes what the next `__call__` needs, so that call
has little left to do. `__call__` must give the same mask whether or not `prepare` ran (the
decoder prepares only where it can overlap, and rows can change before `__call__`). A processor
whose whole mask is a packed bitmask may also hand it over, `prepared_bitmask(rows, generated)`:
the decoder then masks the logits in C++ as the fused step returns them (`FusedDecodeStep.finish`)
and does not call `__call__` for that step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch


class LogitsProcessor(ABC):
    @abstractmethod
    def __call__(self, logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> list[int] | None:
        """Mask `logits` (len(rows), V) in place. Row i belongs to sequence rows[i], which
        has generated the ids generated[i] so far (the prompt not included). Returns None,
        or, if the processor knows them, the rows i left with no allowed token (the engine
        then does not scan the logits for them)."""

    def advance(self, row: int, token_id: int) -> None:
        """Row `row` has just chosen `token_id` (a token this processor allowed)."""

    def is_finished(self, row: int) -> bool:
        """Whether row `row` is complete and must stop (checked after each advance)."""
        return False

    def reorder(self, rows: Sequence[int], parents: Sequence[int]) -> None:
        """Beam search: row rows[i] continues the state row parents[i] had before this call."""

    def prepare(self, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        """Optional: get ready for the next `__call__` with exactly these rows (see Overlap)."""

    def prepared_bitmask(self, rows: Sequence[int], generated: Sequence[Sequence[int]]
                         ) -> tuple[torch.Tensor, list[int]] | None:
        """Optional, after `prepare`: the whole mask `__call__` would apply to exactly these rows,
        as a packed bitmask (at least len(rows) rows of ceil(V / 32) int32 words; bit t % 32 of
        word t // 32 set where token t is allowed), and the rows i with nothing allowed; or None
        (then the decoder calls `__call__`). The decoder calls it at most once per prepare."""
        return None

    @property
    def prepares(self) -> bool:
        """Whether `prepare` does anything (the decoder overlaps nothing for processors without it)."""
        return type(self).prepare is not LogitsProcessor.prepare
