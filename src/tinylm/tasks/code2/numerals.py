"""Hex hints: every decimal numeral of a description is shown with its hexadecimal value.

The full preset writes constants, ports and offsets in decimal ("Asigna 12728 a r4",
"el puerto de entrada 20"), and CODE-2 wants them in hex (`LLI r4,H'B8'`, `LHI r4,H'31'`,
`IN rA,IP14`). Converting a five-digit decimal to hex is long arithmetic with carries,
which a 0.9M-parameter model trained for 15 minutes gets wrong on about one line in
twenty; it was 80 % of the full preset's errors. So the input is annotated before the
model sees it, the way translation systems treat numbers: "12728" becomes
"12728 {31B8}". The model still decides, from the words around it, whether a numeral is
decimal (use the hint), already hex ("la dirección 5523" is H'5523': ignore it), a
shift count or a register, and which byte goes where. The annotation is deterministic
and applied the same way in training and in every prediction (Code2Task.prompts), and
the checkpoint records it (config.extra["code2"]["hex_hints"]).
"""

from __future__ import annotations

import re

# A run of digits that is a whole word: not part of "r12", "0x1A", "3ch" or "H'05'".
_NUMERAL = re.compile(r"(?<![\w'])\d+(?![\w'])")
MAX_VALUE = 0xFFFF


def _hint(match: re.Match[str]) -> str:
    value = int(match.group())
    if value > MAX_VALUE:
        return match.group()
    return f"{match.group()} {{{value:02X}}}" if value < 256 else f"{match.group()} {{{value:04X}}}"


def add_hex_hints(line: str) -> str:
    """'Asigna 12728 a r4' -> 'Asigna 12728 {31B8} a r4' (values up to FFFF; others unchanged)."""
    return _NUMERAL.sub(_hint, line)
