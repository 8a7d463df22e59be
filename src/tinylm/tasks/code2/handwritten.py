"""The hand-written CODE-2 development set: Spanish as people type it, not as the generator does.

The generated splits come from the same templates as the training data, so they measure how well
a model learned the generator. These descriptions were typed by hand (never generated, never
filled into templates) to measure the Spanish beyond it: other verbs, other word orders,
requests, registers and addresses spelled the way students write them, missing accents, typos,
and the errors people make (registers that do not exist, missing or malformed addresses). They
are for evaluation only: never train or select a model on them.

Two files beside this module, one JSON object a line, `{"input", "output", "meta"}`:
  * handwritten_data/thesis.jsonl: the thesis format (LD/ST with `; rD = HH00`, ADDS, SUBS, `Error:`);
  * handwritten_data/full.jsonl: the full-ISA format (`--preset full`); it has no `Error:` lines, since
    the full format has none.
`meta` holds `categories` (the union of `line_categories`, one list per input line), `n_lines`,
`spans` (full format: output lines per input line, as the generator's meta), `ops` (a tag per
input line, written by hand apart from the output text, from which the tests derive the output
a second time) and, where a convention decides a reading, `note`.

The references follow the generator's conventions wherever they decide a reading:
  * an address is hexadecimal however it is written ("la celda 100" is H'0100'; H'..', 0x.. and a
    trailing h only mark it); in the full format a constant, a port or an rD offset is decimal
    unless so marked ("Mete 100 en rA" is 100, "Mete 100h en rC" is 256);
  * "suma A y B", "A más B", "añade B a A", "acumula B en A" -> ADDS d,A,B; "A menos B",
    "resta B a A", "quita/sustrae/descuenta B de A", "a A réstale B" -> SUBS d,A,B;
  * a register exists when it is one hex digit (r0-rF, "registro C", "el 6" after "registro");
    numbers 16-255 and letters G-Z are invalid registers; r10-r15 ("registro 12") are left out
    as ambiguous (decimal 12 or an invalid name?);
  * full format: an absolute address sets rD first (`LLI rD,H'00'`, `LHI rD,H'hi'` only when the
    page is not 0), labels are written in lower case as the generator writes them.
The quoted token of an `Error:` line is a verbatim span of its input line: `rg` is
reported as 'g' and `MEM689` as 'MEM689', as the generator now reports them too (its quotes are
read from the final sentence, case kept).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from tinylm.errors import TinyLMError

PRESETS = ("thesis", "full")

# Categories, for per-category reporting (an example has every category of its lines).
CATEGORIES: dict[str, str] = {
    "verb_synonym": "the operation is named by a less usual verb (añade, agrega, acumula, sustrae, quita, "
    "descuenta, lee, trae, obtén, recupera, mete, pasa, almacena, escribe, graba, vuelca, copia, pon, deja...)",
    "dest_first": "the destination is named before the operation or its sources "
    "('Deja en r2 lo que resulte de sumar r5 y r6', 'Al registro 9 llévale r1 más r4', 'r4 = r5 - r6')",
    "dest_last": "the destination is named last, after the operation and its sources",
    "sub_order": "a subtraction whose minuend is not just the first register named "
    "('resta r5 a r9', 'quita r1 de r2', 'a r3 réstale r4'): the operand order decides",
    "request": "a question or a request ('¿puedes…?', 'quiero que…', 'por favor', 'necesito que…')",
    "register_spelling": "a register written as people do: R4, 'registro 4', 'registro A', 'el registro a', 'el 6'",
    "address_notation": "an address written H'..', 0x.. or with an h suffix",
    "address_word": "the address named by 'celda', 'posición', 'memoria', 'casilla' (not only 'dirección')",
    "address_4digit": "a four-hex-digit address (0A00 too): the page goes to rD, the low byte is the offset",
    "ld_st_order": "a load or store whose direction the word order, not the verb, tells "
    "('Pasa el contenido de r3 a la posición 40' stores; 'Guarda en r2 lo que haya en 1A' loads)",
    "casing": "not in sentence case: all capitals, all lower case, Title Case or inverted (caps lock)",
    "no_accents": "Spanish accents left out (direccion, posicion, sumale, guardalo)",
    "punctuation": "punctuation beyond the plain sentence: a final period, commas, ¿?, parentheses, '=', '<-'",
    "typo": "a small typo a reader still understands (swapped, missing or doubled letters)",
    "number_notation": "a constant, port or offset written in decimal, 0x.., H'..' or with an h suffix "
    "(decimal unless marked; addresses are hexadecimal)",
    "error_register": "an Error line about a register (one that does not exist like r16/rG, a missing one, "
    "a malformed one)",
    "error_address": "an Error line about an address (missing, not hexadecimal, more than 4 digits)",
    "constant": "an immediate constant (LLI, or LLI + LHI for 16 bits)",
    "port": "an input or output port (IN, OUT)",
    "shift": "a shift, or a multiplication or division by a power of two",
    "logic": "NAND, NOT or AND (NOT and AND built from NAND)",
    "control_flow": "labels, branches, calls, RET and HALT",
    "relative_memory": "a memory access at rD plus an offset",
}

# The categories the set must cover, per format.
REQUIRED: dict[str, tuple[str, ...]] = {
    "thesis": (
        "verb_synonym", "dest_first", "dest_last", "sub_order", "request", "register_spelling",
        "address_notation", "address_word", "address_4digit", "ld_st_order", "casing", "no_accents",
        "punctuation", "typo", "error_register", "error_address",
    ),
    "full": (
        "verb_synonym", "dest_first", "dest_last", "sub_order", "request", "register_spelling",
        "address_notation", "address_word", "address_4digit", "ld_st_order", "casing", "no_accents",
        "punctuation", "typo", "number_notation", "constant", "port", "shift", "logic", "control_flow",
        "relative_memory",
    ),
}  # fmt: skip


def load_handwritten(preset: str) -> list[dict[str, Any]]:
    """The hand-written examples of one output format ("thesis" or "full"), in file order."""
    if preset not in PRESETS:
        raise TinyLMError(f"no hand-written CODE-2 set for preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    path = resources.files("tinylm.tasks.code2") / "handwritten_data" / f"{preset}.jsonl"
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
