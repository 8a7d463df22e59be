"""What comes from the input is copied, not guessed: a copy constraint for CODE-2 (thesis).

Two kinds of output text are pieces of the description, and a small model sometimes
miscopies them (measured on the test split: these were most of its errors):

**Quoted tokens of `Error:` lines.** An error line quotes the offending text, e.g.

    QUITA R61 AL REGISTRO 181 Y GUARDA ...  ->  Error: registro '181' inválido y registro '61' inválido

('218' for '181', '7A5R2' for '7A5R'). Every quoted token is a verbatim span of its input
line, case kept (the output quotes only what the user wrote): a piece that starts
at a word (after opening punctuation, after the `r` of a register: 'N' in rN, '61' in R61,
after the 0x or H' of an address) and ends at a word's end (or before its closing
punctuation: '16' in 'r16,'; before an address's closing ' or h). So while the model
writes inside quotes, only tokens that keep the quoted text a prefix of such a piece are
allowed, a closing quote only after a whole piece, and never a quote inside a token. This
covers every error kind with a token (invalid or malformed register, non-hexadecimal or
too long address).

**The address of a memory line.** `LEE LA DIRECCIÓN 1AD0 Y GUÁRDALA EN R4` becomes
`LD r4,[rD+H'D0'] ; rD = 1A00`: the offset is the address's low byte and the comment its
high byte, both digits of one hexadecimal word of the input (1 to 4 digits, read as
0-padded to 4; bare or written 0x.., H'..', ..h). The model wrote `rD = 1D00` or `AD00` (the "D" of "rD" pulls): after
`[rD+` only `H'lo'` of an input word may follow, and after ` ; rD =` only ` hi00` of the
word whose low byte was written, then the end of the line.

Both never forbid a correct answer (tests teacher-force every reference of the data
through them) and leave everything else, valid instructions and message words, to the
model. A token that straddles the start of a span (none in the recipes' vocabularies)
goes unchecked: the constraint stays sound, only less strict.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

import torch

from tinylm.generation import LogitsProcessor
from tinylm.tasks.code2.errors_catalogue import PREFIX

QUOTE = "'"
_QUOTE_BYTE = QUOTE.encode()  # 0x27 is never part of a multi-byte UTF-8 character
_PREFIX_BYTES = PREFIX.encode()
OFFSET_ANCHOR = "[rD+"  # then H'lo'
HIGH_ANCHOR = " ; rD ="  # then " hi00" and the end of the line
_OFFSET = re.compile(r"\[rD\+H'([0-9A-F]{2})'")
# How an address word may be written: bare, 0x.., H'..' or ..h (1 to 4 hex digits).
_ADDRESS_WORD = re.compile(r"([0-9A-F]{1,4})|0X([0-9A-F]{1,4})|H'([0-9A-F]{1,4})'|([0-9A-F]{1,4})H")
_OPENING = "¿¡([\"«"
_CLOSING = ".,;:!?)]\"»"


def _word_bounds(word: str, a: int) -> tuple[set[int], set[int]]:
    """Where a piece may start and end inside the word at offset `a`: at its edges, inside
    its punctuation (¿r4, r16, 12345.), after a register's r and an address's 0x or H',
    before an address's closing ' or h suffix."""
    core_start = a + len(word) - len(word.lstrip(_OPENING))
    core_end = a + len(word.rstrip(_CLOSING))
    # anywhere in the punctuation runs: a malformed register may be punctuation itself ('!' in "r!?")
    starts, ends = set(range(a, core_start + 1)), set(range(core_end, a + len(word) + 1))
    core = word[core_start - a : core_end - a]
    if core[:1] in ("r", "R"):
        starts.add(core_start + 1)
    if core[:2].upper() in ("0X", "H'"):
        starts.add(core_start + 2)
    if core[-1:] in ("'", "h", "H") and len(core) > 1:
        ends.add(core_end - 1)
    return starts, ends


def quotable_pieces(line: str) -> set[str]:
    """The pieces of `line`, verbatim (case kept), that a quote may hold: from a word start
    (see _word_bounds) to a word end, inner spaces allowed ('0A G'), never a quote inside."""
    starts: set[int] = set()
    ends: set[int] = set()
    for m in re.finditer(r"\S+", line):
        s, e = _word_bounds(m.group(), m.start())
        starts |= s
        ends |= e
    return {line[i:j] for i in starts for j in ends if j > i and QUOTE not in line[i:j] and "\n" not in line[i:j]}


def input_addresses(line: str) -> set[str]:
    """The addresses a memory line of `line` may use: its words that read as a hexadecimal
    address (bare, 0x.., H'..', ..h; any case), as 4 upper-case digits."""
    found = set()
    for word in line.upper().split():
        m = _ADDRESS_WORD.fullmatch(word.strip(_OPENING + _CLOSING))
        if m:
            found.add(next(g for g in m.groups() if g).zfill(4))
    return found


class CopiedFromInput(LogitsProcessor):
    """Mask tokens that would make a quoted token of an `Error:` line, or the address of a
    memory line, differ from the input.

    `sources[p]` is the input line of prompt p; with beam search, row r belongs to prompt
    r // num_beams. Stateless: each call reads the row's text so far from its ids."""

    def __init__(self, tokenizer, sources: Sequence[str], num_beams: int = 1) -> None:
        self.tokenizer, self.num_beams = tokenizer, num_beams
        # Quotes are checked on bytes: a byte-level token may hold half of an accented letter
        # ('É' in "RÉSTALE" may take two tokens), and its text alone would read as U+FFFD.
        self.pieces = [{p.encode("utf-8") for p in quotable_pieces(s)} for s in sources]
        self.prefixes = [{p[:k] for p in pieces for k in range(1, len(p) + 1)} for pieces in self.pieces]
        self.addresses = [input_addresses(s) for s in sources]
        specials = tokenizer.special_ids
        self.bytes = [b"" if i in specials else tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
        self.texts = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self.with_quote = [i for i, b in enumerate(self.bytes) if _QUOTE_BYTE in b]
        self.by_text: dict[str, list[int]] = {}
        for i, t in enumerate(self.texts):
            if t:
                self.by_text.setdefault(t, []).append(i)
        self.sorted_texts = sorted((t, i) for i, t in enumerate(self.texts) if t)  # tokens starting with x: a range

    def __call__(self, logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> None:
        for i, (row, ids) in enumerate(zip(rows, generated)):
            raw = b"".join(self.bytes[t] for t in ids).rsplit(b"\n", 1)[-1]
            p = row // self.num_beams
            if raw.startswith(_PREFIX_BYTES):
                in_quote = raw.count(_QUOTE_BYTE) % 2 == 1
                partial = raw[raw.rfind(_QUOTE_BYTE) + 1 :] if in_quote else b""
                candidates = range(len(self.bytes)) if in_quote else self.with_quote
                banned = [v for v in candidates if not self._fits(p, in_quote, partial, self.bytes[v])]
                if banned:
                    logits[i, banned] = float("-inf")
            elif raw.startswith((b"LD ", b"ST ")) and self.addresses[p]:
                line = raw.decode("utf-8", errors="replace")
                allowed = self._address_tokens(p, line)
                if allowed is not None:
                    keep = logits[i, allowed].clone()
                    logits[i] = float("-inf")
                    logits[i, allowed] = keep

    def _address_tokens(self, p: int, line: str) -> list[int] | None:
        """The tokens that keep a memory line's address a copy of an input word (None: no limit)."""
        addresses = self.addresses[p]
        high = line.find(HIGH_ANCHOR)
        if high >= 0:  # writing the comment: the high byte of the address whose low byte was written
            offset = _OFFSET.search(line)
            targets = {f" {a[:2]}00" for a in addresses if offset and a[2:] == offset.group(1)}
            written, ends_line = line[high + len(HIGH_ANCHOR) :], True
        elif (start := line.find(OFFSET_ANCHOR)) >= 0:
            targets = {f"H'{a[2:]}'" for a in addresses}
            written, ends_line = line[start + len(OFFSET_ANCHOR) :], False
        else:
            return None
        rests = [t[len(written) :] for t in targets if t.startswith(written)]
        if not rests or (not ends_line and "" in rests):
            return None  # the span is complete (or already off every target: leave it to the model)
        allowed: set[int] = set()
        for rest in rests:
            if ends_line:
                if rest == "":
                    allowed.add(self.tokenizer.eos_id)
                rest += "\n"
            for k in range(1, len(rest) + 1):
                allowed.update(self.by_text.get(rest[:k], ()))
            allowed.update(self._tokens_starting_with(rest))
        return sorted(allowed)

    def _tokens_starting_with(self, text: str) -> list[int]:
        """Ids of the tokens longer than `text` that start with it."""
        ids = []
        for t, i in self.sorted_texts[bisect.bisect_right(self.sorted_texts, (text, len(self.texts))) :]:
            if not t.startswith(text):
                break
            ids.append(i)
        return ids

    def _fits(self, p: int, in_quote: bool, partial: bytes, token: bytes) -> bool:
        """Whether writing `token` keeps every quote of the line a piece of input p."""
        if not token:
            return not in_quote  # end of sequence (or an empty special token) inside a quote: never
        for k in range(len(token)):
            byte = token[k : k + 1]
            if byte == _QUOTE_BYTE:
                if in_quote and partial not in self.pieces[p]:
                    return False
                in_quote, partial = not in_quote, b""
            elif in_quote:
                partial += byte
                if byte == b"\n" or partial not in self.prefixes[p]:
                    return False
        return True
