"""Utf8Guard: keep constrained output valid UTF-8 where XGrammar's character classes let surrogates through.

XGrammar matches character classes by code point and accepts the three-byte encodings of
the surrogates U+D800-U+DFFF (0xED 0xA0-0xBF 0x80-0xBF): `[^a]` accepts b"\\xed\\xa0\\x80"
(measured with xgrammar 0.2.8). Those bytes are not UTF-8; the text would decode to
U+FFFD characters that the grammar never allowed (a JSON string of at most 8 characters
came out as 10). Overlong forms and code points above U+10FFFF it already refuses.

A byte-level vocabulary (byte-fallback char tokens, BPE byte tokens) can spell them, so
the processor adds two rules to the grammar's mask:
- after a row whose bytes end in the lead byte 0xED, no token that starts with 0xA0-0xBF;
- never a token that holds 0xED 0xA0-0xBF itself (none in vocabularies learned from text).
A row only ends in 0xED in the middle of a character from U+D000 to U+DFFF, so the extra
work is nil at almost every step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
LEAD = 0xED


@dataclass(frozen=True)
class Utf8Guard:
    after_lead: torch.Tensor  # (V,) bool: tokens that must not follow a row ending in 0xED
    never: torch.Tensor | None  # (V,) bool: tokens holding a surrogate; None when there are none
    ends_in_lead: frozenset[int]  # tokens whose last byte is 0xED

    @classmethod
    def build(cls, vocab: list[bytes], vocab_size: int) -> "Utf8Guard":
        after_lead = torch.zeros(vocab_size, dtype=torch.bool)
        never = torch.zeros(vocab_size, dtype=torch.bool)
        ends = set()
        for token_id, data in enumerate(vocab):
            if data and 0xA0 <= data[0] <= 0xBF:
                after_lead[token_id] = True
            if _SURROGATE.search(data):
                never[token_id] = True
            if data and data[-1] == LEAD:
                ends.add(token_id)
        return cls(after_lead, never if bool(never.any()) else None, frozenset(ends))
