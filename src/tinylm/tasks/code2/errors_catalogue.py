"""The canonical Spanish `Error: ...` lines of the thesis task.

The thesis's own labels disagree about accents and spacing ("vacia"/"vacía",
"digitos"/"dígitos"); this project uses one correctly accented catalogue [decision], and
the generator, the grammar, the line validator and the equivalence check all read it from
here. A line reports every problem of its description, joined with " y ": register
problems first (in operand order), then address problems; for one address, "contiene
caracteres no hexadecimales" comes before "excede 4 dígitos" (the thesis's order).

The quoted token is the offending text exactly as the user wrote it, a verbatim span of
the input line: 'g' for rg, 'MEM689' for MEM689, '16' for r16 (a register's
token is the text after its `r`). It never holds a quote. validate.quote_problems checks
an output against its input; copy_constraint makes the decoder keep to it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PREFIX = "Error: "
JOINER = " y "


@dataclass(frozen=True)
class Problem:
    code: str
    template: str  # "{tok}" marks the quoted token, if any

    @property
    def has_token(self) -> bool:
        return "{tok}" in self.template

    def message(self, tok: str = "") -> str:
        return self.template.format(tok=tok)


CATALOGUE: tuple[Problem, ...] = (
    Problem("register_empty", "registro vacío (ambiguo)"),
    Problem("register_invalid", "registro '{tok}' inválido"),
    Problem("register_malformed", "registro '{tok}' mal formado"),
    Problem("address_empty", "dirección vacía (ambigua)"),
    Problem("address_non_hex", "dirección '{tok}' contiene caracteres no hexadecimales"),
    Problem("address_too_long", "dirección '{tok}' excede 4 dígitos"),
)
BY_CODE = {p.code: p for p in CATALOGUE}

# A quoted token: anything but a quote or a line break, at least one character.
TOKEN_PATTERN = r"[^'\n\r]+"


def error_line(problems: list[tuple[str, str]]) -> str:
    """`Error: ` plus the messages of (code, token) pairs, joined with " y "."""
    return PREFIX + JOINER.join(BY_CODE[code].message(tok) for code, tok in problems)


def _message_regex(p: Problem) -> str:
    head, _, tail = p.template.partition("{tok}")
    if not p.has_token:
        return f"(?:{re.escape(p.template)})"
    return f"(?:{re.escape(head)}{TOKEN_PATTERN}{re.escape(tail)})"


_ANY_MESSAGE = "|".join(_message_regex(p) for p in CATALOGUE)
ERROR_LINE_RE = re.compile(f"{re.escape(PREFIX)}(?:{_ANY_MESSAGE})(?:{re.escape(JOINER)}(?:{_ANY_MESSAGE}))*")


def is_error_line(line: str) -> bool:
    """Whether the line claims to be an error report (canonical or not)."""
    return line.lstrip().lower().startswith("error")


def is_canonical_error_line(line: str) -> bool:
    return ERROR_LINE_RE.fullmatch(line) is not None


def _strip_accents(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


_SPLIT_RE = re.compile(r"\s+y\s+")


def normalize_error_line(line: str) -> tuple[str, ...]:
    """A comparison key that keeps the meaning and forgets the surface.

    Used by the equivalence check [decision]: case, accents and whitespace are ignored (the
    thesis's commonest model mistakes, "dirección'mem689'" for "dirección 'mem689'", are
    surface slips), and the " y "-joined problems are compared as a multiset, since their
    order does not change what is wrong. A wrong word ("vaca" for "vacía") still differs.
    """
    text = line.strip()
    if text.lower().startswith("error"):
        text = text[5:].lstrip(" \t:")
    # Split on " y " only outside quotes, so a token such as 'a y b' stays whole.
    parts: list[str] = []
    current: list[str] = []
    for i, chunk in enumerate(text.split("'")):
        if i % 2 == 0:
            pieces = _SPLIT_RE.split(chunk)
            current.append(pieces[0])
            for piece in pieces[1:]:
                parts.append("'".join(current))
                current = [piece]
        else:
            current.append(chunk)
    parts.append("'".join(current))
    keys = ["".join(_strip_accents(p).casefold().split()) for p in parts]
    return tuple(sorted(k for k in keys if k))
