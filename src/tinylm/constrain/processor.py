"""GrammarProcessor: the LogitsProcessor that keeps every row of a generation inside a grammar.

One XGrammar GrammarMatcher per row (per beam in beam search) follows what the row has
generated. Each step the engine calls the processor; for the live rows it

1. fills one bitmask row per matcher (bit = 1: the token may come next), all rows in one
   call into XGrammar's C++ (BatchGrammarMatcher);
2. applies the bitmask to the logits in place (disallowed -> -inf), before penalties,
   temperature, top-k/p and the draw, so every sampling control works on what is left,
   and returns the rows with nothing allowed, read off the bitmask (the engine then does
   not scan the logits for them);
3. after the draw, `advance(row, token)` records the chosen token; the matchers take the
   step's tokens just before the next mask is filled.

Everything in 1 depends only on the tokens already chosen, not on the logits:
`prepare(rows, generated)` does it ahead, and the decoder calls it while the model computes
the logits it will mask on the fused step's own thread. The UTF-8 guard's bans are folded
into the bitmask as cleared bits (NumPy on a few words a row), and the rows with nothing
allowed are read off it, so the whole mask is the bitmask: `prepared_bitmask` hands it to
the decoder, which applies it in C++ as the step's logits come out (no torch call at all),
and `__call__` applies it with XGrammar's kernel (one call) where the decoder does not
overlap. The logits are the same either way.

Every call into XGrammar crosses its FFI layer, and between two decode steps the model has
pushed XGrammar's code and tables out of the CPU caches: a fill that takes 1 us in a tight
loop takes 25-40 us there (bench machine). So the processor makes few calls and makes
them back to back, where each warms the next: per step one accept (all rows) and one fill
(all rows); the bitmask is allocated once (rows x ceil(V / 32) int32) and reused, and
whether a row is finished is known without asking (it chose a stop token).
On top of the grammar, the tokenizer's Utf8Guard (utf8.py) keeps the bytes valid UTF-8.

Ends. Where the grammar may end, eos is allowed; where it must end, only eos is. Choosing
eos terminates the matcher, `is_finished` turns true and the row ends with finish_reason
"stop". A state that allows no token at all (a vocabulary that cannot spell what the
grammar needs) leaves the row's logits all -inf: the engine ends it with
"no_valid_token", never a crash or a loop. max_new_tokens can still cut a row short
("length"): the text is then a prefix of a sentence, not a sentence.

Rows and reuse. Matchers are made on demand: a row whose `generated` is shorter or longer
than what its matcher has accepted (a new generation with the same processor, a row it
has never seen) gets a fresh matcher that replays `generated`. So one processor can serve
many generate() calls, streams included. Beam search reorders beams with
`reorder(rows, parents)`: each child takes its parent's matcher, or a `fork()` of it when
the parent has several children.

Several grammars: pass one CompiledGrammar per prompt; row r uses grammar r // num_beams
(beam search numbers rows prompt * num_beams + beam).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tinylm.constrain.backend import xgrammar, xgrammar_core
from tinylm.constrain.compiler import CompiledGrammar
from tinylm.errors import TinyLMError
from tinylm.generation import LogitsProcessor

NEG_INF = float("-inf")


@dataclass(slots=True)
class _Row:
    matcher: Any  # xgrammar.GrammarMatcher, behind by the tokens still pending
    length: int  # tokens generated, pending ones included
    stopped: bool = False  # chose a stop token: the grammar is complete
    open_lead: bool = False  # its bytes end in the lead byte 0xED (utf8.py)


class GrammarProcessor(LogitsProcessor):
    def __init__(self, grammars: CompiledGrammar | Sequence[CompiledGrammar], *, num_beams: int = 1) -> None:
        self._xgr = xgrammar()
        self._grammars = [grammars] if isinstance(grammars, CompiledGrammar) else list(grammars)
        if not self._grammars:
            raise TinyLMError("GrammarProcessor needs at least one grammar")
        if not all(isinstance(g, CompiledGrammar) for g in self._grammars):
            raise TinyLMError("GrammarProcessor takes compiled grammars (tinylm.constrain.compile_grammar)")
        sizes = {g.vocab_size for g in self._grammars}
        if len(sizes) != 1 or len({g.tokenizer_key for g in self._grammars}) != 1:
            raise TinyLMError("the grammars of one processor must be compiled for the same tokenizer and vocab_size")
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise TinyLMError(f"num_beams must be a positive integer, got {num_beams!r}")
        self.vocab_size = sizes.pop()
        self.num_beams = num_beams
        self._rows: dict[int, _Row] = {}
        self._pending: list[tuple[_Row, int]] = []  # (row, token) chosen but not yet given to its matcher
        self._ready: tuple[list[int], list[int]] | None = None  # (rows, lengths) the mask was prepared for
        self._dead: list[int] = []  # the prepared mask's rows with nothing allowed
        self._stop_ids = frozenset(self._grammars[0].compiled.tokenizer_info.stop_token_ids)
        self._guard = self._grammars[0].guard
        self._bitmask = self._xgr.allocate_token_bitmask(1, self.vocab_size)
        self._bitmask_words = self._bitmask.numpy()  # the same memory, as NumPy words
        # The bits that stand for tokens (the last word has unused high bits).
        valid = np.zeros(32 * self._bitmask_words.shape[1], dtype=np.uint8)
        valid[: self.vocab_size] = 1
        self._valid_bits = np.packbits(valid, bitorder="little").view(np.int32)
        self._kernel = _cpu_kernel()
        self._never_words = None if self._guard.never is None else _allowed_words(self._guard.never.numpy())
        self._after_lead_words = _allowed_words(self._guard.after_lead.numpy())
        self._batch_fill = self._xgr.BatchGrammarMatcher().batch_fill_next_token_bitmask
        self._batch_accept = self._xgr.BatchGrammarMatcher.batch_accept_token

    def __call__(self, logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> list[int]:
        n, width = logits.shape
        if width != self.vocab_size:
            raise TinyLMError(
                f"the grammar was compiled for {self.vocab_size} tokens but the model has {width}; "
                "compile it with the model's vocab_size"
            )
        ready, self._ready = self._ready, None
        # Prepared during the forward pass, or filled now: either way one call applies the bitmask.
        dead = self._dead if self._is_ready(ready, rows, generated) else self._fill(rows, generated)
        bitmask = self._bitmask  # rows 0..n-1 are this step's; no slicing, which is one more torch call
        if self._kernel is not None and logits.device.type == "cpu" and logits.dtype == torch.float32:
            words = bitmask.shape[1]
            self._kernel(logits.data_ptr(), (n, width), logits.stride(), bitmask.data_ptr(), (n, words), (words, 1),
                         width, None, "float32")
        else:
            self._xgr.apply_token_bitmask_inplace(logits, bitmask[:n].to(logits.device, non_blocking=True))
        return dead

    def prepare(self, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        """The next `__call__`'s mask, now: the decoder calls this while the forward pass runs
        on the fused step's thread. Accept the step's tokens, fill the bitmask."""
        self._ready = None
        self._dead = self._fill(rows, generated)
        self._ready = (list(rows), [len(g) for g in generated])  # only a finished mask counts as prepared

    def prepared_bitmask(self, rows: Sequence[int], generated: Sequence[Sequence[int]]
                         ) -> tuple[torch.Tensor, list[int]] | None:
        ready, self._ready = self._ready, None
        return (self._bitmask, self._dead) if self._is_ready(ready, rows, generated) else None

    @staticmethod
    def _is_ready(ready: tuple[list[int], list[int]] | None, rows: Sequence[int],
                  generated: Sequence[Sequence[int]]) -> bool:
        return ready is not None and ready[0] == list(rows) and ready[1] == [len(g) for g in generated]

    def _fill(self, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> list[int]:
        """The pending tokens to the matchers, then one bitmask row per row (bit 1: allowed),
        with the UTF-8 guard's bans folded in; returns the rows with nothing allowed."""
        self._flush()
        n = len(rows)
        self._reserve(n)
        matchers, leads = [], []
        for i, (row, tokens) in enumerate(zip(rows, generated)):
            state = self._rows.get(row)
            if state is None or state.length != len(tokens):
                state = self._start(row, tokens)
            matchers.append(state.matcher)
            if state.open_lead:
                leads.append(i)
        if n == 1:
            matchers[0].fill_next_token_bitmask(self._bitmask, 0)
        else:
            self._batch_fill(matchers, self._bitmask)
        words = self._bitmask_words[:n]
        # The guard's bans as cleared bits: a NumPy call on 12 words a row, not a torch call on V logits.
        if self._never_words is not None:
            np.bitwise_and(words, self._never_words, out=words)
        for i in leads:
            np.bitwise_and(words[i], self._after_lead_words, out=words[i])
        # Nothing allowed = no bit set among the vocabulary's.
        allowed = np.bitwise_and(words, self._valid_bits).any(axis=1)
        return np.flatnonzero(~allowed).tolist() if not allowed.all() else []

    def _reserve(self, n: int) -> None:
        if self._bitmask.shape[0] < n:
            self._bitmask = self._xgr.allocate_token_bitmask(n, self.vocab_size)
            self._bitmask_words = self._bitmask.numpy()

    def advance(self, row: int, token_id: int) -> None:
        self._ready = None
        state = self._rows[row]
        self._pending.append((state, token_id))
        state.length += 1
        state.stopped = token_id in self._stop_ids
        state.open_lead = token_id in self._guard.ends_in_lead

    def is_finished(self, row: int) -> bool:
        state = self._rows.get(row)
        return state is not None and state.stopped

    def reorder(self, rows: Sequence[int], parents: Sequence[int]) -> None:
        self._ready = None
        self._flush()  # a child must fork its parent's matcher as it is now
        targets = set(rows)
        # Rows that are not reassigned keep their matchers, so their children fork.
        kept = {r: state for r, state in self._rows.items() if r not in targets}
        taken = {id(state) for state in kept.values()}
        for row, parent in zip(rows, parents):
            state = self._rows.get(parent)
            if state is None:
                continue
            if id(state) in taken:
                state = _Row(state.matcher.fork(), state.length, state.stopped, state.open_lead)
            taken.add(id(state))
            kept[row] = state
        self._rows = kept

    def _flush(self) -> None:
        """Give the matchers the tokens chosen since the last mask, in one call."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        matchers, tokens = [state.matcher for state, _ in pending], [token for _, token in pending]
        if len(set(map(id, matchers))) == len(matchers):  # one token per matcher: one call for all
            _check_accepted(tokens, self._batch_accept(matchers, tokens))
        else:
            _check_accepted(tokens, [m.accept_token(t) for m, t in zip(matchers, tokens)])

    def _start(self, row: int, tokens: Sequence[int]) -> _Row:
        grammar = self._grammars[0] if len(self._grammars) == 1 else self._grammar_of(row)
        matcher = self._xgr.GrammarMatcher(grammar.compiled)
        for token in tokens:
            if not matcher.accept_token(int(token)):
                raise TinyLMError(f"row {row} has already generated text outside the grammar {grammar.grammar}")
        last = int(tokens[-1]) if tokens else None
        state = _Row(matcher, len(tokens), last in self._stop_ids, last in self._guard.ends_in_lead)
        self._rows[row] = state
        return state

    def _grammar_of(self, row: int) -> CompiledGrammar:
        prompt = row // self.num_beams
        if prompt >= len(self._grammars):
            raise TinyLMError(f"{len(self._grammars)} grammars were given, but prompt {prompt} has none")
        return self._grammars[prompt]


def _allowed_words(banned: np.ndarray) -> np.ndarray:
    """A (V,) bool ban as bitmask words with the banned tokens' bits 0 and every other bit 1."""
    bits = np.ones(32 * ((banned.shape[0] + 31) // 32), dtype=np.uint8)
    bits[: banned.shape[0]] = ~banned
    return np.packbits(bits, bitorder="little").view(np.int32)


def _check_accepted(tokens: Sequence[int], accepted: Sequence[Any]) -> None:
    for ok, token in zip(accepted, tokens):
        if not ok:
            # The engine only draws tokens the mask allowed; anything else is a bug, not user input.
            raise RuntimeError(f"the grammar rejected token {token}, which its mask had allowed")


def _cpu_kernel() -> Any:
    """XGrammar's CPU masking kernel without its Python wrapper, or None if this version lacks it.

    Between two decode steps the model evicts everything else from the CPU caches, and the
    wrapper's checks and tensor attribute reads then cost as much as the masking itself
    (about 30 of 55 microseconds on the bench machine). The kernel is the one the wrapper
    calls (xgrammar.kernels.apply_token_bitmask_inplace_cpu); test_constrain_decode.py
    checks the two give the same logits."""
    try:
        return xgrammar_core().kernels.apply_token_bitmask_inplace_cpu
    except AttributeError:
        return None
