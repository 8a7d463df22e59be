"""A grammar of Spanish paraphrases for the broad data style: the building blocks.

The templates (templates.py) fix one sentence per row; people write the same request in many
more ways. Here a sentence is put together from parts: verbs with their synonyms, each in three
moods (an order "suma", a request "¿puedes sumar...?", a wish "quiero que sumes"), with a
pronoun where Spanish attaches one ("guárdalo", "guardarlo", "lo guardes"); the operands in
either order (destination first or last); registers and addresses spelled as people spell
them; and noise a reader still understands (case, missing accents, punctuation, small typos).
broad.py chooses the constructions for each instruction and computes the reference output
from the operands, never from the words, so every sentence keeps its meaning.

Reading conventions (the same as the hand-written set's): an address is hexadecimal however it
is written (bare, 0x.., H'..', ..h); "registro N" names a register only for one hex digit
(decimal 10-15 would be ambiguous, so it is never written); "el 6" names a register only
right after another register named "el registro ...".
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tinylm.tasks.code2.generator import _below, _choice, _hex_token, _mark, _strip_accents

# --- verbs and moods -----------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    inf: str  # sumar
    imp: str  # suma (tú)
    subj: str  # sumes (quiero que ...)
    stem: str  # súma: the order with the stress marked, for an attached pronoun (súmalo)


def _verbs(rows: str) -> dict[str, Verb]:
    table = {}
    for row in rows.strip().splitlines():
        inf, imp, subj, stem = row.split()
        table[imp] = Verb(inf, imp, subj, stem)
    return table


VERBS = _verbs("""
sumar suma sumes súma
añadir añade añadas añáde
agregar agrega agregues agréga
acumular acumula acumules acumúla
restar resta restes résta
sustraer sustrae sustraigas sustráe
quitar quita quites quíta
descontar descuenta descuentes descuénta
cargar carga cargues cárga
leer lee leas lée
traer trae traigas tráe
obtener obtén obtengas obtén
recuperar recupera recuperes recupéra
meter mete metas méte
pasar pasa pases pása
guardar guarda guardes guárda
almacenar almacena almacenes almacéna
escribir escribe escribas escríbe
grabar graba grabes grába
volcar vuelca vuelques vuélca
copiar copia copies cópia
poner pon pongas pon
dejar deja dejes déja
calcular calcula calcules calcúla
llevar lleva lleves lléva
mandar manda mandes mánda
asignar asigna asignes asígna
salvar salva salves sálva
coger coge cojas cóge
tomar toma tomes tóma
hacer haz hagas haz
inicializar inicializa inicialices inicialíza
enviar envía envíes envía
sacar saca saques sáca
multiplicar multiplica multipliques multiplíca
dividir divide dividas divíde
desplazar desplaza desplaces despláza
aplicar aplica apliques aplíca
negar niega niegues niéga
invertir invierte inviertas inviérte
""")

MOODS = ("imp", "inf", "subj")


@dataclass(frozen=True)
class Clause:
    """A verb, the pronoun attached to it (lo, la, le or none) and the words after it."""

    verb: str
    rest: str = ""
    clitic: str = ""

    def render(self, mood: str) -> str:
        v = VERBS[self.verb]
        if mood == "inf":
            head = v.inf + self.clitic
        elif mood == "subj":
            head = f"{self.clitic} {v.subj}" if self.clitic else v.subj
        else:
            head = v.stem + self.clitic if self.clitic else v.imp
        return head + self.rest


Part = str | Clause


def render(parts: Sequence[Part], mood: str) -> str:
    return "".join(p if isinstance(p, str) else p.render(mood) for p in parts)


# Requests around a sentence, by mood; an order may also stand alone.
REQUESTS = {
    "imp": (("{}", 12), ("{}, por favor", 1), ("Por favor, {}", 1), ("por favor {}", 1), ("{} (por favor)", 1)),
    "inf": (("¿Puedes {}?", 3), ("¿Podrías {}?", 2), ("Puedes {}?", 1), ("¿Me puedes {}?", 1), ("Necesito {}", 1)),
    "subj": (("Quiero que {}", 3), ("Necesito que {}", 2), ("Por favor, quiero que {}", 1)),
}
_REQUESTS = {m: tuple(f for f, w in forms for _ in range(w)) for m, forms in REQUESTS.items()}


def sentence(rng: random.Random, parts: Sequence[Part]) -> str:
    """The parts in a mood chosen at random (an order most of the time); a sentence that does
    not start with a verb stays an order."""
    mood = "imp"
    if isinstance(parts[0], Clause):
        mood = _choice(rng, ("imp",) * 6 + ("inf",) * 2 + ("subj",) * 2)
    form = _choice(rng, _REQUESTS[mood])
    body = render(parts, mood)
    if not form.startswith("{}"):  # "Por favor, en r9 carga ...": the sentence goes on in lower case
        body = body[:1].lower() + body[1:]
    return form.format(body)


# --- operands ------------------------------------------------------------------------------


def register(rng: random.Random, n: int, allow_el: bool = False) -> str:
    """A valid register r0-rF as people write it; `allow_el`: "el 6" may stand for r6."""
    x = f"{n:X}"
    roll = rng.random()
    if allow_el and n < 10 and roll < 0.5:
        return f"el {n}"
    roll = rng.random()
    if roll < 0.35:
        return f"r{x}"
    if roll < 0.45:
        return f"r{x.lower()}"
    if roll < 0.55:
        return f"R{x}"
    if roll < 0.85:
        return f"{_choice(rng, ('el registro', 'el registro', 'registro'))} {x if rng.random() < 0.7 else x.lower()}"
    return f"el registro r{x}"


def bad_register(rng: random.Random, k: int) -> tuple[str, str, bool]:
    """A register phrase naming no register r0-rF, with its designator marked as span k;
    returns (phrase, catalogue code, whether the message quotes a token)."""
    roll = rng.random()
    if roll < 0.15:
        return _choice(rng, ("r", "el registro", "registro")), "register_empty", False
    if roll < 0.5:
        d = _choice(rng, "GHIJKLMNOPQSTUVWXYZghijklmnopqstuvwxyz")  # not R: "el registro rr" reads oddly
        code = "register_invalid"
    elif roll < 0.85:
        d = str(16 + _below(rng, 240))  # 10-15 are left out: decimal or hex? ambiguous
        code = "register_invalid"
    else:
        d = _choice(rng, ("#", "$", "?", "%", "&", "*", "@", "!", "#1", "$A", "%2"))
        code = "register_malformed"
    form = _choice(rng, ("r{}", "r{}", "R{}", "el registro {}", "el registro r{}"))
    return form.format(_mark(k, d)), code, True


ADDRESS_WORDS = (
    ("la dirección", 3), ("la posición", 2), ("la celda", 2), ("la memoria", 1), ("memoria", 1),
    ("la posición de memoria", 1), ("la dirección de memoria", 1), ("la casilla", 1), ("", 3),
)  # fmt: skip
_ADDRESS_WORDS = tuple(f for f, w in ADDRESS_WORDS for _ in range(w))
_NAMED_ADDRESS_WORDS = tuple(f for f in _ADDRESS_WORDS if f)  # a missing address still names its word


def address_token(rng: random.Random) -> tuple[str, int]:
    """1-4 hex digits (leading zeros kept: 0A00 is a four-digit address), bare or marked as
    hexadecimal, in either case; and its value."""
    digits = _hex_token(rng, 1 + _below(rng, 4))
    value = int(digits, 16)
    if rng.random() < 0.3:
        digits = digits.lower()
    form = _choice(rng, ("{}",) * 6 + ("0x{}", "H'{}'", "{}h"))
    return form.format(digits), value


def address(rng: random.Random, bare_ok: bool = True) -> tuple[str, int]:
    """An address phrase ("la celda 1A", "0x0A00", "la posición H'40'") and its value. A bare
    token needs `bare_ok` and more than one character (a lone "a" reads as a preposition)."""
    tok, value = address_token(rng)
    word = _choice(rng, _ADDRESS_WORDS)
    if not word and (not bare_ok or len(tok) == 1):
        word = "la dirección"
    return f"{word} {tok}".strip(), value


def bad_address(rng: random.Random, k: int, bad: str) -> str:
    """An address phrase around a bad token (marked as span k; empty: a word and no number)."""
    word = _choice(rng, _ADDRESS_WORDS if bad else _NAMED_ADDRESS_WORDS)
    return f"{word} {_mark(k, bad)}".strip()


# --- noise ---------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-zÁÉÍÓÚÜÑáéíóúüñ]+")
_LOOKS_LIKE_OPERAND = re.compile(r"[0-9A-Fa-f]+|[rR][0-9A-Fa-f]", re.ASCII)
_SPACES = re.compile(r" {2,}")


def finish(text: str) -> str:
    """Contractions (also at the start: "A el registro" -> "Al registro"), single spaces, a
    capital first letter (after an opening ¿ too)."""
    s = " " + text + " "
    s = s.replace(" de el ", " del ").replace(" a el ", " al ")
    if s.startswith((" A el ", " De el ")):
        s = s.replace(" A el ", " Al ", 1).replace(" De el ", " Del ", 1)
    s = _SPACES.sub(" ", s).strip(" ").replace(" ,", ",").replace(" ?", "?")
    i = 1 if s.startswith(("¿", "¡")) else 0
    return s[:i] + s[i : i + 1].upper() + s[i + 1 :]


def _in_token(text: str, start: int, end: int) -> bool:
    """Whether letters at [start, end) touch a digit, a quote or a mark: part of a token."""
    around = text[start - 1 : start] + text[end : end + 1]
    return any(ch.isdigit() or ch == "'" or "\ue000" <= ch <= "\ue0ff" for ch in around)


def typo(rng: random.Random, text: str) -> str:
    """One small typo (two letters swapped, one dropped or doubled) in a plain word of five or
    more letters: never in an operand, a marked token or a number."""
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= 5 and not _LOOKS_LIKE_OPERAND.fullmatch(m.group())
             and not _in_token(text, m.start(), m.end())]
    if not words:
        return text
    m = _choice(rng, words)
    w = m.group()
    i = 1 + _below(rng, len(w) - 2)  # keep the first letter: the word stays recognizable
    kind = _below(rng, 3)
    if kind == 0:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif kind == 1:
        w = w[:i] + w[i + 1 :]
    else:
        w = w[:i] + w[i] + w[i:]
    return text[: m.start()] + w + text[m.end() :]


CASES = (("asis", 10), ("lower", 3), ("upper", 2), ("capitalize", 1), ("title", 1), ("swap", 1))
_CASES = tuple(c for c, w in CASES for _ in range(w))


def noise(rng: random.Random, text: str) -> tuple[str, str]:
    """Accents, a typo and the final punctuation applied to `text`; returns it and the case
    variant to apply once the marked tokens are read (generator._resolve)."""
    if rng.random() < 0.25:
        text = _strip_accents(text)
    if rng.random() < 0.1:
        text = typo(rng, text)
    if rng.random() < 0.1 and text.count(" y ") >= 2:  # "Suma r1 y r2, y guárdalo en r3" (not "r1, y r2")
        i = text.rfind(" y ")
        text = text[:i] + "," + text[i:]
    if not text.endswith(("?", ".")):
        roll = rng.random()
        if roll < 0.25:
            text += "."
        elif roll < 0.28:
            text += _choice(rng, ("!", ";", " ."))
    return text, _choice(rng, _CASES)
