"""Quoted tokens come from the input: a copy constraint for CODE-2's `Error:` lines.

An error line quotes the offending text of its description, e.g.

    QUITA R61 AL REGISTRO 181 Y GUARDA ...  ->  Error: registro '181' inválido y registro '61' inválido

A small model gets the messages right but sometimes miscopies the quoted text ('218' for
'181', '7A5R2' for '7A5R'). Copying is not something to guess: every quoted token of the
dataset is a piece of its input line, compared without case, that starts at a word (or
right after the `r` of a register: 'N' in rN, '61' in R61) and ends at a word's end
(checked on all 53 231 quoted tokens of the thesis data). So while the model writes
inside quotes, this processor allows only tokens that keep the quoted text a prefix of
such a piece, and a closing quote only after a whole piece. It never forbids a correct
answer, and it leaves valid lines and the message words to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tinylm.generation import LogitsProcessor
from tinylm.tasks.code2.errors_catalogue import PREFIX

QUOTE = "'"


def quotable_pieces(line: str) -> set[str]:
    """Upper-cased pieces of `line` a quote may hold: from a word start (or after a word's
    leading r/R) to a word end; inner spaces allowed ('0A G')."""
    s = line.upper()
    starts = [i for i in range(len(s)) if not s[i].isspace()
              and (i == 0 or s[i - 1].isspace() or (s[i - 1] == "R" and (i == 1 or s[i - 2].isspace())))]
    ends = [j for j in range(1, len(s) + 1) if not s[j - 1].isspace() and (j == len(s) or s[j].isspace())]
    return {s[i:j] for i in starts for j in ends if j > i}


class QuotedFromInput(LogitsProcessor):
    """Mask tokens that would make a quoted token of an `Error:` line differ from the input.

    `sources[p]` is the input line of prompt p; with beam search, row r belongs to prompt
    r // num_beams. Stateless: each call reads the row's text so far from its ids."""

    def __init__(self, tokenizer, sources: Sequence[str], num_beams: int = 1) -> None:
        self.tokenizer, self.num_beams = tokenizer, num_beams
        self.pieces = [quotable_pieces(s) for s in sources]
        self.prefixes = [{p[:k] for p in pieces for k in range(1, len(p) + 1)} for pieces in self.pieces]
        self.texts = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self.with_quote = [i for i, t in enumerate(self.texts) if QUOTE in t]

    def __call__(self, logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        for i, (row, ids) in enumerate(zip(rows, generated)):
            line = self.tokenizer.decode(list(ids)).split("\n")[-1]
            if not line.startswith(PREFIX):
                continue
            p = row // self.num_beams
            in_quote = line.count(QUOTE) % 2 == 1
            partial = line[line.rfind(QUOTE) + 1 :] if in_quote else ""
            candidates = range(len(self.texts)) if in_quote else self.with_quote
            banned = [v for v in candidates if not self._fits(p, in_quote, partial, self.texts[v])]
            if banned:
                logits[i, banned] = float("-inf")

    def _fits(self, p: int, in_quote: bool, partial: str, text: str) -> bool:
        """Whether writing `text` keeps every quote of the line a piece of input p."""
        if not text:
            return not in_quote  # end of sequence (or an empty special token) inside a quote: never
        for ch in text:
            if ch == QUOTE:
                if in_quote and partial.upper() not in self.pieces[p]:
                    return False
                in_quote, partial = not in_quote, ""
            elif in_quote:
                partial += ch
                if ch == "\n" or partial.upper() not in self.prefixes[p]:
                    return False
        return True
