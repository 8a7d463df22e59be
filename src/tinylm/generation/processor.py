"""The one hook where outside code can restrict which tokens may come next.

A grammar (XGrammar), a list of allowed words, a ban on some ids: all of them are a
`LogitsProcessor`. The engine drives it like this, every step:

    processor(logits, rows, generated)    # mask: set disallowed tokens to -inf, in place
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
`prepare(rows, generated)`: compute what the next `__call__` for exactly these rows will
need. The decoder calls it on a worker thread right after a step's `advance` calls, while
the model's forward pass runs (torch releases the GIL inside its kernels), and waits for
it before touching the processor again. `__call__` must give the same mask whether or not
`prepare` ran (the decoder can be told not to use the thread, and rows can change between
`prepare` and `__call__`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch


class LogitsProcessor(ABC):
    @abstractmethod
    def __call__(self, logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        """Mask `logits` (len(rows), V) in place. Row i belongs to sequence rows[i], which
        has generated the ids generated[i] so far (the prompt not included)."""

    def advance(self, row: int, token_id: int) -> None:
        """Row `row` has just chosen `token_id` (a token this processor allowed)."""

    def is_finished(self, row: int) -> bool:
        """Whether row `row` is complete and must stop (checked after each advance)."""
        return False

    def reorder(self, rows: Sequence[int], parents: Sequence[int]) -> None:
        """Beam search: row rows[i] continues the state row parents[i] had before this call."""

    def prepare(self, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        """Optional: precompute the next `__call__`'s mask for these rows, on a worker thread."""

    @property
    def prepares(self) -> bool:
        """Whether `prepare` does anything (the decoder starts no thread for processors without it)."""
        return type(self).prepare is not LogitsProcessor.prepare
