"""The broad data style: the templates' lines mixed with paraphrases.

A line is one of the templates' (generator.py) with probability TEMPLATE_SHARE, else a
paraphrase put together from paraphrase.py's parts: a construction for its instruction (verb
synonyms, destination first or last, "resta a X ...", requests), operands spelled as people
spell them, and noise. The reference output is computed from the operands by the same code as
the templates' (generator._ins, _constant_lines), so the meaning never depends on the words;
error lines come from the same catalogue, quoting the offending span verbatim.

Both presets: "thesis" (LD, ST, ADDS, SUBS and their natural errors, blocks of 1-11 lines as
the thesis) and "full" (the full preset's blocks and kinds of sentence; memory, constants,
ports, ALU, NOT/AND and shifts also paraphrased; labels, jumps, RET, HALT from the templates;
no error lines).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tinylm.tasks.code2 import paraphrase as P
from tinylm.tasks.code2.generator import (
    _BLOCK_LENGTHS,
    CASE_VARIANTS,
    ERROR_RATE,
    _bad_address,
    _below,
    _case_variant,
    _choice,
    _constant_lines,
    _full_block,
    _FullBuilder,
    _ins,
    _Line,
    _number,
    _resolve,
    _thesis_alu_line,
    _thesis_memory_line,
)
from tinylm.tasks.code2.isa import ADDRESS_REGISTER
from tinylm.tasks.code2.paraphrase import Clause, Part

TEMPLATE_SHARE = 0.3  # lines taken from the templates; the rest are paraphrases


def _c(verbs: str, rest: str = "", clitic: str = "") -> tuple[str, str, str]:
    """A clause with a choice of verbs ("suma|añade"), filled in when a sentence is drawn."""
    return (verbs, rest, clitic)


STORE = "<store>"  # "y guarda el resultado en {d}" and its variants
STORE_LA = "<store la>"  # the same after a feminine object ("la suma"): "guárdala en {d}"
_STORES = (
    _c("guarda|pon|deja|almacena|mete|escribe", " el resultado en {d}"),
    _c("guarda|pon|deja|almacena|mete", " en {d}", "lo"),
    _c("guarda|pon", " en {d}"),
)

# Constructions: (parts, the destination is implied: d = s). {d} = {s} op {t}.
ADDS: tuple[tuple[list, bool], ...] = (
    ([_c("suma|añade|agrega", " {s} y {t}"), " y ", STORE], False),
    ([_c("suma", " {s} con {t}"), " y ", STORE], False),
    ([_c("suma", " {s} más {t}"), " y ", STORE], False),
    ([_c("suma", " {s} y {t} en {d}")], False),
    ([_c("suma|acumula", " {s} más {t} en {d}")], False),
    ([_c("añade|agrega|suma", " {t} a {s}"), " y ", STORE], False),
    ([_c("suma", " {t} a {s}", "le"), " y ", STORE], False),
    ([_c("calcula", " {s} más {t}"), " y ", STORE], False),
    ([_c("calcula", " la suma de {s} y {t}"), " y ", STORE_LA], False),
    ([_c("añade|agrega|suma", " {t} a {s}")], True),
    ([_c("acumula", " {t} en {s}")], True),
    ([_c("deja|pon|guarda|mete|almacena|escribe", " en {d} la suma de {s} y {t}")], False),
    ([_c("deja|pon|guarda|mete", " en {d} lo que resulte de sumar {s} y {t}")], False),
    ([_c("deja|pon|guarda", " en {d} el resultado de sumar {s} y {t}")], False),
    ([_c("pon|guarda|mete|deja", " en {d} {s} más {t}")], False),
    (["A {d} ", _c("lleva|asigna|pon", " {s} más {t}", "le")], False),
    (["En {d} ", _c("pon|guarda|mete|deja", " la suma de {s} y {t}")], False),
    (["{d} = {s} + {t}"], False),
    (["{d} <- {s} + {t}"], False),
    ([_c("haz", " {d} = {s} + {t}")], False),
)

SUBS: tuple[tuple[list, bool], ...] = (
    ([_c("resta|calcula", " {s} menos {t}"), " y ", STORE], False),
    ([_c("resta|quita|descuenta", " {t} a {s}"), " y ", STORE], False),
    ([_c("resta|quita|sustrae|descuenta", " {t} de {s}"), " y ", STORE], False),
    (["A {s} ", _c("resta|quita|descuenta", " {t}", "le"), " y ", STORE], False),
    ([_c("resta", " a {s} {t}"), " y ", STORE], False),
    ([_c("resta", " {t} a {s}", "le"), " y ", STORE], False),
    ([_c("calcula", " la diferencia entre {s} y {t}"), " y ", STORE_LA], False),
    ([_c("resta|quita|descuenta", " {t} a {s}")], True),
    ([_c("resta|quita|sustrae|descuenta", " {t} de {s}")], True),
    ([_c("resta", " a {s} {t}")], True),
    (["A {s} ", _c("resta|quita", " {t}", "le")], True),
    ([_c("deja|pon|guarda|mete|almacena", " en {d} {s} menos {t}")], False),
    ([_c("deja|pon|guarda", " en {d} la diferencia entre {s} y {t}")], False),
    ([_c("deja|pon|guarda|mete", " en {d} el resultado de restar {t} a {s}")], False),
    ([_c("deja|pon|guarda|mete", " en {d} lo que resulte de restarle {t} a {s}")], False),
    ([_c("deja|pon|guarda", " en {d} lo que queda al quitar {t} de {s}")], False),
    (["A {d} ", _c("lleva|asigna|pon", " {s} menos {t}", "le")], False),
    (["En {d} ", _c("pon|guarda|mete|deja", " {s} menos {t}")], False),
    (["{d} = {s} - {t}"], False),
    (["{d} <- {s} - {t}"], False),
    ([_c("haz", " {d} = {s} - {t}")], False),
)

# Full preset only: NAND, and NOT and AND built from it ({d} = op {s} [{t}]).
NAND = (
    ([_c("calcula|haz", " {s} NAND {t}"), " y ", STORE], False),
    ([_c("calcula|haz", " {s} nand {t} en {d}")], False),
    ([_c("deja|pon|guarda", " en {d} el NAND de {s} y {t}")], False),
    (["{d} = {s} NAND {t}"], False),
    (["{d} <- {s} nand {t}"], False),
)
NOT = (
    ([_c("invierte", " los bits de {s}"), " y ", STORE], False),
    ([_c("niega", " {s}"), " y ", STORE], False),
    ([_c("deja|pon|guarda", " en {d} el NOT de {s}")], False),
    ([_c("deja|pon|guarda", " en {d} la negación de {s}")], False),
    (["{d} = NOT {s}"], False),
    (["{d} = ~{s}"], False),
    ([_c("niega|invierte", " {s}")], True),
    ([_c("invierte", " los bits de {s}")], True),
)
AND = (
    ([_c("calcula|haz", " {s} AND {t}"), " y ", STORE], False),
    ([_c("calcula|haz", " el AND de {s} y {t}"), " y ", STORE], False),
    ([_c("deja|pon|guarda", " en {d} el AND de {s} y {t}")], False),
    (["{d} = {s} AND {t}"], False),
    (["{d} = {s} & {t}"], False),
    ([_c("aplica", " la máscara {t} a {s}"), " y ", STORE], False),
)
ALU = {"ADDS": ADDS, "SUBS": SUBS, "NAND": NAND, "NOT": NOT, "AND": AND}

# {r} the register, {a} an address phrase, {c} "el contenido de"..., {cr} the same for a register.
CONTENT = ("el contenido de", "el valor de", "lo que hay en", "lo que haya en", "el dato de", "el dato que hay en",
           "lo que contiene")
REG_CONTENT = ("el contenido de", "el valor de", "lo que hay en", "lo que tiene", "el dato de")

LD = (
    [_c("carga|mete|pon|guarda|deja|copia|lee|recupera", " en {r} {c} {a}")],
    [_c("trae|pasa|lleva", " a {r} {c} {a}")],
    [_c("lee|carga|trae|obtén|recupera|copia|coge|toma", " {c} {a}"), " y ",
     _c("guarda|pon|mete|deja|almacena|carga|escribe", " en {r}", "lo")],
    [_c("lee|carga|recupera", " {a} en {r}")],
    [_c("trae|pasa|copia|lleva", " {a} a {r}")],
    [_c("carga", " {r} con {c} {a}")],
    [_c("carga", " {r} desde {a}")],
    [_c("lee", " en {r} {a}")],
    ["En {r} ", _c("mete|pon|carga|guarda|deja", " {c} {a}")],
    [_c("recupera|obtén|lee", " {c} {a} en {r}")],
)

ST = (
    [_c("guarda|almacena|escribe|graba|vuelca|copia|pon|deja|mete|salva", " {r} en {a}")],
    [_c("guarda|almacena|escribe|graba|vuelca|copia|pon|deja|mete", " {cr} {r} en {a}")],
    [_c("pasa|copia|lleva|manda|vuelca", " {cr} {r} a {a}")],
    [_c("copia|pasa|lleva|manda", " {r} a {a}")],
    [_c("guarda|escribe|graba|pon|mete|deja|almacena|copia", " en {a} {cr} {r}")],
    [_c("guarda|escribe|graba|pon|mete|deja|almacena", " en {a} {r}")],
    ["En {a} ", _c("guarda|escribe|graba|pon|mete|deja", " {cr} {r}")],
    ["En {a} ", _c("guarda|escribe|pon", " {r}")],
    [_c("coge|toma", " {r}"), " y ", _c("guarda|almacena|escribe|graba|vuelca|copia|pon|deja", " en {a}", "lo")],
)

# Full preset only: {r} a register, {v} a number (decimal unless marked), {p} a port.
CONST = (
    [_c("mete|pon|carga|guarda|escribe", " {v} en {r}")],
    [_c("mete|pon|carga|guarda|escribe", " el valor {v} en {r}")],
    [_c("mete|pon|carga|guarda", " la constante {v} en {r}")],
    [_c("mete|pon|carga|guarda", " el número {v} en {r}")],
    [_c("asigna", " {v} a {r}")],
    [_c("carga|inicializa", " {r} con {v}")],
    [_c("carga|inicializa", " {r} con el valor {v}")],
    [_c("pon", " {r} a {v}")],
    [_c("haz", " que {r} valga {v}")],
    ["{r} = {v}"],
    ["{r} <- {v}"],
    ["En {r} ", _c("mete|pon|carga|guarda", " {v}")],
    [_c("mete|pon|carga|guarda|deja", " en {r} el valor {v}")],
    [_c("mete|pon|carga", " en {r} {v}")],
)

# An rD-relative access, {v} the offset (decimal unless marked, as the templates').
LD_REL = (
    [_c("carga|mete|pon|guarda|deja|lee", " en {r} {c} rD+{v}")],
    [_c("lee|carga|trae|recupera", " {c} rD+{v}"), " y ", _c("guarda|pon|mete|deja", " en {r}", "lo")],
    [_c("lee|carga", " la posición rD+{v} en {r}")],
    [_c("carga|trae", " en {r} la memoria en rD más {v}")],
)
ST_REL = (
    [_c("guarda|almacena|escribe|graba|pon|deja", " {r} en rD+{v}")],
    [_c("guarda|almacena|escribe|graba|pon", " {cr} {r} en la dirección rD más {v}")],
    [_c("pasa|copia|lleva", " {cr} {r} a la posición rD+{v}")],
    ["En rD+{v} ", _c("guarda|escribe|pon", " {r}")],
)

IN = (
    [_c("lee", " el puerto {p} en {r}")],
    [_c("lee", " el puerto {p}"), " y ", _c("guarda|pon|mete|deja", " en {r}", "lo")],
    [_c("mete|pon|guarda|carga", " en {r} lo que llegue por el puerto {p}")],
    [_c("mete|pon|guarda|carga", " en {r} el valor del puerto {p}")],
    [_c("carga|lee", " {r} desde el puerto {p}")],
    ["En {r} ", _c("mete|pon|lee", " el puerto de entrada {p}")],
)

OUT = (
    [_c("saca|envía|manda|escribe", " {r} por el puerto {p}")],
    [_c("envía|manda|escribe|pon|vuelca|copia", " {r} en el puerto {p}")],
    [_c("escribe|saca", " en el puerto {p} {cr} {r}")],
    [_c("envía|manda|saca", " {cr} {r} al puerto de salida {p}")],
    ["Por el puerto {p} ", _c("saca|envía|manda", " {r}")],
)

SHIFTS = {  # mnemonic, repeats -> constructions
    ("SHL", 1): ([_c("multiplica", " {r} por 2")], [_c("multiplica", " {r} por dos")],
                 [_c("desplaza", " {r} a la izquierda")], [_c("desplaza", " {r} un bit a la izquierda")],
                 [_c("haz", " un desplazamiento a la izquierda de {r}")]),
    ("SHR", 1): ([_c("divide", " {r} entre 2")], [_c("divide", " {r} por 2")], [_c("divide", " {r} entre dos")],
                 [_c("desplaza", " {r} a la derecha")], [_c("desplaza", " {r} un bit a la derecha")]),
    ("SHL", 2): ([_c("multiplica", " {r} por 4")], [_c("multiplica", " {r} por cuatro")]),
    ("SHL", 3): ([_c("multiplica", " {r} por 8")], [_c("multiplica", " {r} por ocho")]),
    ("SHR", 2): ([_c("divide", " {r} entre 4")], [_c("divide", " {r} entre cuatro")]),
    ("SHR", 3): ([_c("divide", " {r} entre 8")], [_c("divide", " {r} entre ocho")]),
    ("SHRA", 1): ([_c("desplaza", " {r} a la derecha conservando el signo")], [_c("divide", " {r} entre 2 con signo")],
                  [_c("desplaza", " aritméticamente {r} a la derecha")]),
}


def _fill(rng: random.Random, parts: Sequence, values: dict[str, str]) -> list[Part]:
    """The construction with its verbs chosen and its placeholders filled."""
    out: list[Part] = []
    for part in parts:
        if part in (STORE, STORE_LA):
            verbs, rest, clitic = _choice(rng, _STORES)
            if part == STORE_LA and clitic:
                clitic = "la"
            part = (verbs, rest, clitic)
        if isinstance(part, tuple):
            verbs, rest, clitic = part
            out.append(Clause(_choice(rng, verbs.split("|")), rest.format(**values), clitic))
        else:
            out.append(part.format(**values))
    return out


def _finish_line(rng: random.Random, line: _Line) -> _Line:
    """Noise, then the final case; the error message (if any) quotes the final text."""
    text, variant = P.noise(rng, P.finish(line.text))
    line.text = text
    _resolve(line, lambda t: _case_variant(t, variant))
    line.final = True
    return line


def _sentence(rng: random.Random, parts: Sequence, values: dict[str, str]) -> str:
    return P.sentence(rng, _fill(rng, parts, values))


# --- thesis preset -------------------------------------------------------------------------


def memory_line(rng: random.Random, mnemonic: str, preset: str = "thesis") -> _Line:
    """LD or ST, paraphrased; in the thesis preset, erroneous with probability ERROR_RATE."""
    thesis = preset == "thesis"
    kind = _choice(rng, ("reg", "dir", "both")) if thesis and rng.random() < ERROR_RATE else None
    pending: list[tuple[str, int | None]] = []
    exclude = (ADDRESS_REGISTER,) if mnemonic == "ST" and not thesis else ()
    reg = _choice(rng, [i for i in range(16) if i not in exclude])
    if kind in ("reg", "both"):
        r, code, quoted = P.bad_register(rng, 0)
        pending.append((code, 0 if quoted else None))
    else:
        r = P.register(rng, reg)
    if kind in ("dir", "both"):
        bad, problems = _bad_address(rng)
        a = P.bad_address(rng, 1, bad)
        pending += [(code, 1 if bad else None) for code, _ in problems]
        value = 0
    else:
        a, value = P.address(rng, bare_ok=thesis)  # full: never bare, where it could read as a constant
    table = LD if mnemonic == "LD" else ST
    if kind in ("dir", "both") and not bad:  # "la celda a r3" would read as the address A
        table = tuple(parts for parts in table if not any(isinstance(p, tuple) and "{a} a " in p[1] for p in parts))
    construction = _choice(rng, table)
    values = {"r": r, "a": a, "c": _choice(rng, CONTENT), "cr": _choice(rng, REG_CONTENT)}
    text = _sentence(rng, construction, values)
    if pending:
        return _finish_line(rng, _Line(text, [], mnemonic, -1, [c for c, _ in pending], kind, pending))
    ins = _ins(mnemonic, rx=reg, v=value & 0xFF)
    outputs = [f"{ins} ; rD = {value >> 8:02X}00"] if thesis else _constant_lines(ADDRESS_REGISTER, value & 0xFF00) + [ins]
    return _finish_line(rng, _Line(text, outputs, mnemonic, -1))


def alu_line(rng: random.Random, mnemonic: str, preset: str = "thesis") -> _Line:
    """ADDS or SUBS (d = s op t), and in the full preset NAND, NOT, AND, paraphrased; thesis:
    erroneous registers with probability ERROR_RATE."""
    parts, implied = _choice(rng, ALU[mnemonic])
    regs = [_below(rng, 16) for _ in range(3)]  # d, s, t
    if implied:
        regs[0] = regs[1]
    # With the destination implied (d = s), its phrase is the minuend's: only s and t can be wrong.
    positions = (1, 2) if implied else (0, 1, 2)
    bad: dict[int, tuple[str, bool]] = {}
    if preset == "thesis" and rng.random() < ERROR_RATE:
        n_bad = min(rng.choices((1, 2, 3), weights=(16, 3, 1))[0], len(positions))
        bad = {pos: ("", False) for pos in rng.sample(positions, n_bad)}
    joined = "".join(p if isinstance(p, str) else p[1] for p in parts)
    phrases: dict[int, str] = {}
    for pos in positions:
        if pos in bad:
            phrases[pos], code, quoted = P.bad_register(rng, pos)
            bad[pos] = (code, quoted)
        else:  # "el 6" only right after "el registro ..." (s y t, s más t)
            el_ok = pos == 2 and phrases.get(1, "").startswith("el registro") and any(
                f"{{s}}{sep}{{t}}" in joined for sep in (" y ", " más ", " menos "))
            phrases[pos] = P.register(rng, regs[pos], allow_el=el_ok)
    phrases.setdefault(0, phrases[1])
    pending: list[tuple[str, int | None]] = []
    for pos in (0, 1, 2):  # operand order; an implied d repeats s's problem, which _resolve dedupes
        src = 1 if implied and pos == 0 else pos
        if src in bad:
            code, quoted = bad[src]
            pending.append((code, src if quoted else None))
    text = _sentence(rng, parts, {"d": phrases[0], "s": phrases[1], "t": phrases[2]})
    if pending:
        return _finish_line(rng, _Line(text, [], mnemonic, -1, [c for c, _ in pending], "reg", pending))
    d, s, t = regs
    if mnemonic == "NOT":  # NOT x = x NAND x
        outputs = [_ins("NAND", rx=d, rs=s, ra=s)]
    elif mnemonic == "AND":  # AND = NOT NAND
        outputs = [_ins("NAND", rx=d, rs=s, ra=t), _ins("NAND", rx=d, rs=d, ra=d)]
    else:
        outputs = [_ins(mnemonic, rx=d, rs=s, ra=t)]
    return _finish_line(rng, _Line(text, outputs, mnemonic, -1))


def thesis_line(rng: random.Random) -> _Line:
    mnemonic = _choice(rng, ("LD", "ST", "ADDS", "SUBS"))
    if rng.random() < TEMPLATE_SHARE:
        line = (_thesis_memory_line if mnemonic in ("LD", "ST") else _thesis_alu_line)(rng, mnemonic)
        variant = _choice(rng, CASE_VARIANTS)
        _resolve(line, lambda text: _case_variant(text, variant))
        return line
    return (memory_line if mnemonic in ("LD", "ST") else alu_line)(rng, mnemonic, "thesis")


def thesis_block(rng: random.Random) -> list[_Line]:
    return [thesis_line(rng) for _ in range(_choice(rng, _BLOCK_LENGTHS))]


# --- full preset ---------------------------------------------------------------------------


class BroadFullBuilder(_FullBuilder):
    """The full preset's builder: each simple sentence is drawn as the templates draw it (same
    kinds, same weights) and, for the kinds with a grammar here, paraphrased 1 - TEMPLATE_SHARE
    of the time; labels, jumps, RET, HALT, byte loads and port echoes stay the templates'."""

    def simple(self) -> _Line:
        rng = self.rng
        kind = _choice(rng, self.SIMPLE)
        if kind not in self.PARAPHRASED or rng.random() < TEMPLATE_SHARE:
            return getattr(self, kind)()
        return getattr(self, self.PARAPHRASED[kind])()

    PARAPHRASED = {"memory_absolute": "_memory", "memory_relative": "_relative", "constant": "_constant",
                   "port": "_port", "alu": "_alu", "logic": "_logic", "shift": "_shift"}

    def _memory(self) -> _Line:
        return memory_line(self.rng, _choice(self.rng, ("LD", "ST")), "full")

    def _alu(self) -> _Line:
        return alu_line(self.rng, _choice(self.rng, ("ADDS", "SUBS", "NAND")), "full")

    def _logic(self) -> _Line:
        return alu_line(self.rng, _choice(self.rng, ("NOT", "AND")), "full")

    def _operand(self) -> tuple[int, dict[str, str]]:
        reg = _below(self.rng, 16)
        return reg, {"r": P.register(self.rng, reg), "cr": _choice(self.rng, REG_CONTENT),
                     "c": _choice(self.rng, CONTENT)}

    def _line_of(self, name: str, constructions: Sequence, values: dict[str, str], outputs: list[str]) -> _Line:
        return _finish_line(self.rng, _Line(_sentence(self.rng, _choice(self.rng, constructions), values), outputs,
                                            name, -1))

    def _relative(self) -> _Line:
        rng = self.rng
        reg, values = self._operand()
        v = _below(rng, 256)
        values["v"] = _number(rng, v)
        mnemonic = _choice(rng, ("LD", "ST"))
        return self._line_of(mnemonic, LD_REL if mnemonic == "LD" else ST_REL, values, [_ins(mnemonic, rx=reg, v=v)])

    def _constant(self) -> _Line:
        rng = self.rng
        reg, values = self._operand()
        value = _below(rng, 256) if rng.random() < 0.4 else _below(rng, 65536)
        values["v"] = _number(rng, value)
        return self._line_of("LLI" if value < 256 else "LLI+LHI", CONST, values, _constant_lines(reg, value))

    def _port(self) -> _Line:
        rng = self.rng
        reg, values = self._operand()
        port = _below(rng, 256)
        values["p"] = _number(rng, port)
        if rng.random() < 0.5:
            return self._line_of("IN", IN, values, [_ins("IN", rx=reg, v=port)])
        return self._line_of("OUT", OUT, values, [_ins("OUT", rx=reg, v=port)])

    def _shift(self) -> _Line:
        reg, values = self._operand()
        mnemonic, repeats = _choice(self.rng, tuple(SHIFTS))
        name = mnemonic if repeats == 1 else f"{mnemonic}*n"
        return self._line_of(name, SHIFTS[(mnemonic, repeats)], values, [_ins(mnemonic, rx=reg)] * repeats)


def full_block(rng: random.Random) -> list[_Line]:
    return _full_block(rng, BroadFullBuilder)


BLOCKS = {"thesis": thesis_block, "full": full_block}
