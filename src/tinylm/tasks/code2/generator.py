"""Data generator: Spanish descriptions -> CODE-2 assembly, as JSONL {"input", "output", "meta"}.

Preset "thesis" reproduces the thesis dataset's design: LD, ST, ADDS, SUBS; blocks of 1-11
lines (weights 1,1,2,3,4,5,5,4,3,2,1); about 11 templates per instruction; a case variant per
line (lower, UPPER, Capitalized, Title, as written); each line erroneous with probability 0.2
(bad register, bad address or both, answered by the canonical catalogue); line i of the
input maps to line i of the output. LD/ST name a 1-4 hex digit address, printed split in
two: `LD rX,[rD+H'lo'] ; rD = hi00`.

Preset "full" covers every instruction and the common idioms (constants via LLI + LHI, port
echo, shifts as *2 and /2, NAND-based NOT and AND, conditional branches and calls to labels
with their rD set-up, RET, HALT), numbers in decimal and hexadecimal, accents dropped on some
lines, varied case. One sentence may need several output lines; `meta["spans"]` gives how
many output lines each input line produced. Every "full" output assembles.

An error line quotes the offending text as the final sentence shows it, case variant included
(a verbatim span of the input).

Style "templates" (the default) is exactly the above; style "broad" (broad.py) mixes these
lines with paraphrases, about 30/70, drawn from its own random stream, so the templates
style's sentences never change.

Examples are unique by input + "|" + output (the thesis's key) and split 70/20/10 in
generation order, so the splits share no example. Everything is drawn from one
`random.Random(seed)`: the same seed gives the same files.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_write, write_json
from tinylm.tasks.code2 import templates as T
from tinylm.tasks.code2.errors_catalogue import error_line
from tinylm.tasks.code2.isa import ADDRESS_REGISTER, BY_MNEMONIC, CONDITIONS, Instruction

PRESETS = ("thesis", "full")
# "templates": the templates alone (the thesis's own design; the thesis comparison uses it);
# "broad": about 30 % template lines and 70 % paraphrases (broad.py).
STYLES = ("templates", "broad")
DEFAULT_N = 36_000
DEFAULT_SEED = 42
SPLITS = (("train", 0.7), ("valid", 0.2), ("test", 0.1))
BLOCK_WEIGHTS = (1, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1)  # block lengths 1..11
ERROR_RATE = 0.2
CASE_VARIANTS = ("lower", "upper", "capitalize", "title", "asis")
_HEX = "0123456789ABCDEF"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Example:
    input: str
    output: str
    meta: dict

    def to_json(self) -> str:
        return json.dumps({"input": self.input, "output": self.output, "meta": self.meta}, ensure_ascii=False)


@dataclass
class _Line:
    """One described line: its sentence, its output lines and what went into it."""

    text: str
    outputs: list[str]
    kind: str
    template: int
    errors: list[str] = field(default_factory=list)  # catalogue codes
    error_kind: str | None = None  # "reg", "dir" or "both"
    # An error line waits for the line's final casing: (code, k) pairs, k the marked span
    # (see _mark) whose verbatim text the message quotes, or None for a message without one.
    pending: list[tuple[str, int | None]] | None = None
    final: bool = False  # text already in its final form (a broad-style paraphrase: broad.py)


# --- shared wording helpers ----------------------------------------------------------------


def _choice(rng: random.Random, items: Sequence[_T]) -> _T:
    # One rng.random() per draw: several times faster than rng.choice / randrange, which
    # matters at ~15 draws per line and 200 000 lines per dataset.
    return items[int(rng.random() * len(items))]


def _below(rng: random.Random, n: int) -> int:
    return int(rng.random() * n)


def _between(rng: random.Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def _hex_token(rng: random.Random, digits: int) -> str:
    return f"{_below(rng, 16**digits):0{digits}X}"


def _flatten(forms: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """Integer weights as repetitions, so one _choice draws a weighted item."""
    return tuple(f for f, w in forms for _ in range(w))


_REGISTER_FORMS = _flatten(T.REGISTER_FORMS)
_ADDRESS_FORMS = _flatten(T.ADDRESS_FORMS)
_BLOCK_LENGTHS = tuple(n for n, w in enumerate(BLOCK_WEIGHTS, start=1) for _ in range(w))
_SPACES = re.compile(" {2,}")


def _finish(sentence: str) -> str:
    """Spanish contractions, single spaces, capital first letter."""
    s = sentence.replace(" de el ", " del ").replace(" a el ", " al ")
    if "  " in s:
        s = _SPACES.sub(" ", s)
    s = s.strip(" ").replace(" ,", ",")
    return s[:1].upper() + s[1:]


def _case_variant(s: str, variant: str) -> str:
    if variant == "swap":  # caps lock left on (the broad style's noise)
        return s.swapcase()
    if variant == "lower":
        return s.lower()
    if variant == "upper":
        return s.upper()
    if variant == "capitalize":
        return s.capitalize()
    if variant == "title":
        return s.title()
    return s


_ACCENTS = str.maketrans("áéíóúüÁÉÍÓÚÜ", "aeiouuAEIOUU")


def _strip_accents(s: str) -> str:
    # ñ stays: people typing without accents still have the key.
    return s.translate(_ACCENTS)


# The quoted token of an Error line is the user's own text, verbatim: the
# offending span is marked while the sentence is built and read back once the sentence has
# its final case. Private-use code points, which no template or token contains.
_MARK_BASE = 0xE000
_MARKED = re.compile("([\ue000-\ue0ff])(.*?)([\ue000-\ue0ff])")


def _mark(k: int, tok: str) -> str:
    """Span k around `tok` (an empty token stays unmarked: its message quotes nothing)."""
    return f"{chr(_MARK_BASE + 2 * k)}{tok}{chr(_MARK_BASE + 2 * k + 1)}" if tok else ""


def _unmark(text: str) -> tuple[str, dict[int, tuple[int, int]]]:
    """The text without marks, and where each marked span k lies in it."""
    spans: dict[int, tuple[int, int]] = {}
    out: list[str] = []
    pos = 0
    for m in _MARKED.finditer(text):
        out.append(text[pos : m.start()])
        start = sum(map(len, out))
        spans[(ord(m.group(1)) - _MARK_BASE) // 2] = (start, start + len(m.group(2)))
        out.append(m.group(2))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), spans


def _resolve(line: _Line, recase: Callable[[str], str]) -> None:
    """Give `line` its final text (`recase` applied) and, for an error line, its message,
    quoting each marked span as it now reads in the text."""
    if line.pending is None:  # nothing marked: a valid line
        line.text = recase(line.text)
        return
    clean, spans = _unmark(line.text)
    final = recase(clean)
    if len(final) != len(clean):  # casing that changes lengths would move the spans
        raise AssertionError(f"casing changed the length of {clean!r}")
    line.text = final
    problems = _dedupe([(code, "" if k is None else final[slice(*spans[k])]) for code, k in line.pending])
    line.outputs = [error_line(problems)]
    line.errors = [c for c, _ in problems]
    line.pending = None


def _register_phrase(rng: random.Random, designator: str) -> str:
    return _choice(rng, _REGISTER_FORMS).format(x=designator)


@lru_cache(maxsize=None)
def _ins_text(mnemonic: str, rx: int, rs: int, ra: int, v: int) -> str:
    return Instruction(BY_MNEMONIC[mnemonic], rx=rx, rs=rs, ra=ra, v=v).text()


def _ins(mnemonic: str, rx: int = 0, rs: int = 0, ra: int = 0, v: int = 0) -> str:
    return _ins_text(mnemonic, rx, rs, ra, v)


# --- preset "thesis" -----------------------------------------------------------------------


def _bad_register(rng: random.Random) -> tuple[str, tuple[str, str]]:
    """A register designator that is not r0-rF, and the problem it causes."""
    roll = rng.random()
    if roll < 0.2:
        return "", ("register_empty", "")
    if roll < 0.55:
        d = _choice(rng, "GHIJKLMNOPQRSTUVWXYZ")
        return d, ("register_invalid", d)
    if roll < 0.85:
        d = str(_between(rng, 16, 255))
        return d, ("register_invalid", d)
    d = _choice(rng, ["#", "$", "?", "%", "&", "*", "@", "!"])
    d = _choice(rng, [d, d + _choice(rng, _HEX), _choice(rng, _HEX) + d, d * 2])
    return d, ("register_malformed", d)


def _bad_address(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    """An address token that is not 1-4 hex digits, and its problems (catalogue order)."""
    roll = rng.random()
    if roll < 0.2:
        return "", [("address_empty", "")]
    if roll < 0.5:
        tok = _hex_token(rng, _choice(rng, (5, 6)))
    elif roll < 0.75:
        tok = f"mem{_between(rng, 100, 999)}"
    else:
        chars = [_choice(rng, _HEX) for _ in range(_between(rng, 2, 5))]
        noise = _choice(rng, "GHJKLMNPQRSTUVWXYZ?$#%")
        chars.insert(_between(rng, 0, len(chars)), noise)
        if rng.random() < 0.3:  # a stray space inside, like the thesis's '0A G'
            chars.insert(_between(rng, 1, len(chars) - 1), " ")
        tok = "".join(chars)
    problems = []
    if any(c not in _HEX for c in tok):
        problems.append(("address_non_hex", tok))
    if len(tok) > 4:
        problems.append(("address_too_long", tok))
    return tok, problems


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for p in problems:
        if p not in seen:
            seen.append(p)
    return seen


def _thesis_memory_line(rng: random.Random, mnemonic: str) -> _Line:
    erroneous = rng.random() < ERROR_RATE
    kind = _choice(rng, ("reg", "dir", "both")) if erroneous else None
    pending: list[tuple[str, int | None]] = []
    reg = _below(rng, 16)
    designator = f"{reg:X}"
    if kind in ("reg", "both"):
        bad, (code, _) = _bad_register(rng)
        designator = _mark(0, bad)
        pending.append((code, 0 if bad else None))
    if kind in ("dir", "both"):
        bad, addr_problems = _bad_address(rng)
        tok = _mark(1, bad)
        pending += [(code, 1 if bad else None) for code, _ in addr_problems]
    else:
        tok = _hex_token(rng, _between(rng, 1, 4))
    table = T.THESIS[mnemonic]
    k = _below(rng, len(table))
    addr_phrase = _choice(rng, _ADDRESS_FORMS).format(x=tok)
    text = _finish(table[k].format(reg=_register_phrase(rng, designator), addr=addr_phrase, a=tok))
    if pending:
        return _Line(text, [], mnemonic, k, [c for c, _ in pending], kind, pending)
    value = int(tok, 16)
    out = f"{_ins(mnemonic, rx=reg, v=value & 0xFF)} ; rD = {value >> 8:02X}00"
    return _Line(text, [out], mnemonic, k)


def _thesis_alu_line(rng: random.Random, mnemonic: str) -> _Line:
    regs = [_below(rng, 16) for _ in range(3)]  # d, s, t
    designators = [f"{r:X}" for r in regs]
    pending: list[tuple[str, int | None]] = []
    if rng.random() < ERROR_RATE:
        n_bad = rng.choices((1, 2, 3), weights=(16, 3, 1))[0]
        for pos in sorted(rng.sample(range(3), n_bad)):
            bad, (code, _) = _bad_register(rng)
            designators[pos] = _mark(pos, bad)
            pending.append((code, pos if bad else None))
    table = T.THESIS[mnemonic]
    k = _below(rng, len(table))
    d, s, t = (_register_phrase(rng, x) for x in designators)
    text = _finish(table[k].format(d=d, s=s, t=t))
    if pending:
        return _Line(text, [], mnemonic, k, [c for c, _ in pending], "reg", pending)
    return _Line(text, [_ins(mnemonic, rx=regs[0], rs=regs[1], ra=regs[2])], mnemonic, k)


def _thesis_block(rng: random.Random) -> list[_Line]:
    n = _choice(rng, _BLOCK_LENGTHS)
    lines = []
    for _ in range(n):
        mnemonic = _choice(rng, ("LD", "ST", "ADDS", "SUBS"))
        if mnemonic in ("LD", "ST"):
            line = _thesis_memory_line(rng, mnemonic)
        else:
            line = _thesis_alu_line(rng, mnemonic)
        variant = _choice(rng, CASE_VARIANTS)
        _resolve(line, lambda text: _case_variant(text, variant))
        lines.append(line)
    return lines


# --- preset "full" -------------------------------------------------------------------------


def _number(rng: random.Random, v: int) -> str:
    """A number as people write it: decimal, 0x.., H'..' or ..h."""
    width = 2 if v < 256 else 4
    return _choice(rng, (str(v), str(v), f"0x{v:0{width}X}", f"H'{v:0{width}X}'", f"{v:X}h" if v >= 10 else str(v)))


def _constant_lines(reg: int, value: int) -> list[str]:
    """A 16-bit constant: LLI sets the low byte and clears the high one; LHI only if needed."""
    out = [_ins("LLI", rx=reg, v=value & 0xFF)]
    if value >> 8:
        out.append(_ins("LHI", rx=reg, v=value >> 8))
    return out


def _label_setup(label: str) -> list[str]:
    # rD <- the label's address: the low byte first (LLI clears the high byte), then the high.
    return [f"LLI rD,lo({label})", f"LHI rD,hi({label})"]


def _cond_phrase(rng: random.Random, cond: int) -> str:
    return _choice(rng, T.CONDITIONS[cond])


class _FullBuilder:
    """Sentences of the full preset; each method returns one _Line."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def _pick(self, table: tuple[str, ...]) -> tuple[int, str]:
        k = _below(self.rng, len(table))
        return k, table[k]

    def _reg(self, exclude: tuple[int, ...] = ()) -> tuple[int, str]:
        r = _choice(self.rng, [i for i in range(16) if i not in exclude])
        return r, _register_phrase(self.rng, f"{r:X}")

    def _line(self, kind: str, table: tuple[str, ...], outputs: list[str], **fmt: str) -> _Line:
        k, template = self._pick(table)
        return _Line(_finish(template.format(**fmt)), outputs, kind, k)

    def memory_absolute(self) -> _Line:
        rng = self.rng
        mnemonic = _choice(rng, ("LD", "ST"))
        # Storing rD itself would store the set-up page, not rD's value: leave rD out of ST.
        r, rp = self._reg(exclude=(ADDRESS_REGISTER,) if mnemonic == "ST" else ())
        tok = _hex_token(rng, _between(rng, 1, 4))
        value = int(tok, 16)
        outputs = _constant_lines(ADDRESS_REGISTER, value & 0xFF00) + [_ins(mnemonic, rx=r, v=value & 0xFF)]
        addr = _choice(rng, _ADDRESS_FORMS).format(x=tok)
        return self._line(mnemonic, T.THESIS[mnemonic], outputs, reg=rp, addr=addr, a=tok)

    def memory_relative(self) -> _Line:
        mnemonic = _choice(self.rng, ("LD", "ST"))
        r, rp = self._reg()
        v = _below(self.rng, 256)
        table = T.LD_REL if mnemonic == "LD" else T.ST_REL
        return self._line(mnemonic, table, [_ins(mnemonic, rx=r, v=v)], r=rp, v=_number(self.rng, v))

    def constant(self) -> _Line:
        rng = self.rng
        r, rp = self._reg()
        value = _below(rng, 256) if rng.random() < 0.4 else _below(rng, 65536)
        kind = "LLI" if value < 256 else "LLI+LHI"
        return self._line(kind, T.CONST, _constant_lines(r, value), r=rp, v=_number(rng, value))

    def byte_load(self) -> _Line:
        r, rp = self._reg()
        v = _below(self.rng, 256)
        mnemonic = _choice(self.rng, ("LLI", "LHI"))
        table = T.LLI if mnemonic == "LLI" else T.LHI
        return self._line(mnemonic, table, [_ins(mnemonic, rx=r, v=v)], r=rp, v=_number(self.rng, v))

    def port(self) -> _Line:
        rng = self.rng
        r, rp = self._reg()
        p = _below(rng, 256)
        if rng.random() < 0.5:
            return self._line("IN", T.IN, [_ins("IN", rx=r, v=p)], r=rp, p=_number(rng, p))
        return self._line("OUT", T.OUT, [_ins("OUT", rx=r, v=p)], r=rp, p=_number(rng, p))

    def echo(self) -> _Line:
        rng = self.rng
        r, rp = self._reg()
        p, q = _below(rng, 256), _below(rng, 256)
        outputs = [_ins("IN", rx=r, v=p), _ins("OUT", rx=r, v=q)]
        return self._line("IN+OUT", T.ECHO, outputs, r=rp, p=_number(rng, p), q=_number(rng, q))

    def alu(self) -> _Line:
        mnemonic = _choice(self.rng, ("ADDS", "SUBS", "NAND"))
        (d, dp), (s, sp), (t, tp) = self._reg(), self._reg(), self._reg()
        table = {"ADDS": T.ADDS, "SUBS": T.SUBS, "NAND": T.NAND}[mnemonic]
        return self._line(mnemonic, table, [_ins(mnemonic, rx=d, rs=s, ra=t)], d=dp, s=sp, t=tp)

    def logic(self) -> _Line:
        (d, dp), (s, sp), (t, tp) = self._reg(), self._reg(), self._reg()
        if self.rng.random() < 0.5:  # NOT x = x NAND x
            return self._line("NOT", T.NOT, [_ins("NAND", rx=d, rs=s, ra=s)], d=dp, s=sp)
        outputs = [_ins("NAND", rx=d, rs=s, ra=t), _ins("NAND", rx=d, rs=d, ra=d)]  # AND = NOT NAND
        return self._line("AND", T.AND, outputs, d=dp, s=sp, t=tp)

    def shift(self) -> _Line:
        rng = self.rng
        r, rp = self._reg()
        roll = rng.random()
        if roll < 0.3:
            return self._line("SHL", T.SHL, [_ins("SHL", rx=r)], r=rp)
        if roll < 0.55:
            return self._line("SHR", T.SHR, [_ins("SHR", rx=r)], r=rp)
        if roll < 0.8:
            return self._line("SHRA", T.SHRA, [_ins("SHRA", rx=r)], r=rp)
        n = _choice(rng, (2, 3))
        if rng.random() < 0.5:
            return self._line("SHL*n", T.MUL, [_ins("SHL", rx=r)] * n, r=rp, k=str(1 << n))
        return self._line("SHR*n", T.DIV, [_ins("SHR", rx=r)] * n, r=rp, k=str(1 << n))

    def raw_jump(self) -> _Line:
        rng = self.rng
        family = _choice(rng, ("B", "CALL"))
        plain, conditional = (T.BRANCH, T.BRANCH_IF) if family == "B" else (T.CALL, T.CALL_IF)
        cond = 0 if rng.random() < 0.3 else _between(rng, 1, 4)
        mnemonic = f"{family}{CONDITIONS[cond]}"
        if cond == 0:
            return self._line(mnemonic, plain, [mnemonic])
        return self._line(mnemonic, conditional, [mnemonic], cond=_cond_phrase(rng, cond))

    def goto_label(self, label: str, call: bool) -> _Line:
        rng = self.rng
        cond = 0 if rng.random() < 0.3 else _between(rng, 1, 4)
        mnemonic = f"{'CALL' if call else 'B'}{CONDITIONS[cond]}"
        if call:
            plain, conditional = T.CALL_LABEL, T.CALL_LABEL_IF
        else:
            plain, conditional = T.GOTO_LABEL, T.GOTO_LABEL_IF
        outputs = _label_setup(label) + [mnemonic]
        if cond == 0:
            return self._line(mnemonic + "->label", plain, outputs, label=label)
        return self._line(mnemonic + "->label", conditional, outputs, label=label, cond=_cond_phrase(rng, cond))

    def label(self, name: str, subroutine: bool = False) -> _Line:
        return self._line("label", T.SUBROUTINE if subroutine else T.LABEL, [f"{name}:"], label=name)

    def ret(self) -> _Line:
        return self._line("RET", T.RET, ["RET"])

    def halt(self) -> _Line:
        return self._line("HALT", T.HALT, ["HALT"])

    # How often each kind of simple sentence is drawn (weights as repetitions).
    SIMPLE = _flatten((
        ("memory_absolute", 4), ("memory_relative", 2), ("constant", 4), ("byte_load", 2), ("port", 3),
        ("echo", 1), ("alu", 5), ("logic", 2), ("shift", 3), ("raw_jump", 1), ("ret", 1),
    ))  # fmt: skip

    def simple(self) -> _Line:
        return getattr(self, _choice(self.rng, self.SIMPLE))()


_STRUCTURES = _flatten((("plain", 6), ("branch", 2), ("call", 2)))


def _full_block(rng: random.Random, builder: type[_FullBuilder] = _FullBuilder) -> list[_Line]:
    b = builder(rng)
    structure = _choice(rng, _STRUCTURES)
    lines: list[_Line]
    if structure == "plain":
        lines = [b.simple() for _ in range(_between(rng, 1, 6))]
        if rng.random() < 0.3:
            lines.append(b.halt())
    elif structure == "branch":  # forward only, so the block cannot loop forever
        name = _choice(rng, T.LABEL_NAMES)
        lines = [b.simple() for _ in range(_between(rng, 0, 2))]
        lines.append(b.goto_label(name, call=False))
        lines += [b.simple() for _ in range(_between(rng, 1, 3))]
        lines.append(b.label(name))
        lines += [b.simple() for _ in range(_between(rng, 0, 2))]
        if rng.random() < 0.5:
            lines.append(b.halt())
    else:
        name = _choice(rng, T.SUBROUTINE_NAMES)
        lines = [b.simple() for _ in range(_between(rng, 0, 2))]
        lines.append(b.goto_label(name, call=True))
        lines += [b.simple() for _ in range(_between(rng, 0, 1))]
        lines.append(b.halt())
        lines.append(b.label(name, subroutine=True))
        lines += [b.simple() for _ in range(_between(rng, 1, 3))]
        lines.append(b.ret())
    for line in lines:
        if line.final:
            continue
        text = _strip_accents(line.text) if rng.random() < 0.3 else line.text
        line.text = _case_variant(text, _choice(rng, CASE_VARIANTS))
    return lines


# --- assembling the dataset ----------------------------------------------------------------

_BLOCKS = {"thesis": _thesis_block, "full": _full_block}


def _example(preset: str, lines: list[_Line], style: str = "templates") -> Example:
    meta = {
        "preset": preset,
        "n_lines": len(lines),
        "instructions": [ln.kind for ln in lines],
        "templates": [ln.template for ln in lines],
        "error_kinds": [ln.error_kind for ln in lines],
        "errors": [ln.errors for ln in lines],
    }
    if preset == "full":
        meta["spans"] = [len(ln.outputs) for ln in lines]
    if style != "templates":
        meta["style"] = style  # "templates" of a paraphrased line: -1
    return Example("\n".join(ln.text for ln in lines), "\n".join(o for ln in lines for o in ln.outputs), meta)


def generate_examples(preset: str = "thesis", n: int = DEFAULT_N, seed: int = DEFAULT_SEED,
                      style: str = "templates") -> list[Example]:
    """`n` unique examples (key input + "|" + output), deterministic for (preset, n, seed, style).
    The "templates" style draws exactly what it always drew (the thesis split stays the same)."""
    if preset not in _BLOCKS:
        raise TinyLMError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if style not in STYLES:
        raise TinyLMError(f"unknown data style {style!r}; expected one of {', '.join(STYLES)}")
    if n < 1:
        raise TinyLMError(f"--n must be at least 1, got {n}")
    if style == "templates":
        rng = random.Random(f"code2/{preset}/{seed}")
        make = _BLOCKS[preset]
    else:
        from tinylm.tasks.code2.broad import BLOCKS  # broad.py builds on this module

        rng = random.Random(f"code2/{preset}/{style}/{seed}")
        make = BLOCKS[preset]
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise TinyLMError(f"could not draw {n} unique {preset} examples (only {len(examples)} found)")
        ex = _example(preset, make(rng), style)
        key = ex.input + "|" + ex.output
        if key not in seen:
            seen.add(key)
            examples.append(ex)
    return examples


def split_examples(examples: list[Example]) -> dict[str, list[Example]]:
    """70/20/10 in order; rounding leftovers go to test."""
    n = len(examples)
    n_train = round(n * SPLITS[0][1])
    n_valid = round(n * SPLITS[1][1])
    return {
        "train": examples[:n_train],
        "valid": examples[n_train : n_train + n_valid],
        "test": examples[n_train + n_valid :],
    }


def generate_dataset(
    out_dir: str | os.PathLike, preset: str = "thesis", n: int = DEFAULT_N, seed: int = DEFAULT_SEED,
    style: str = "templates",
) -> dict:
    """Write train/valid/test.jsonl and manifest.json into `out_dir`; returns the manifest."""
    examples = generate_examples(preset, n, seed, style)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TinyLMError(f"--out {out} exists and is not a folder")
    counts = {}
    for name, part in split_examples(examples).items():
        with atomic_write(out / f"{name}.jsonl") as f:
            for ex in part:
                f.write(ex.to_json() + "\n")
        counts[name] = len(part)
    n_error_lines = sum(1 for ex in examples for e in ex.meta["errors"] if e)
    n_lines = sum(ex.meta["n_lines"] for ex in examples)
    manifest = {
        "task": "code2",
        "preset": preset,
        "style": style,
        "seed": seed,
        "n": len(examples),
        "splits": counts,
        "lines": n_lines,
        "error_lines": n_error_lines,
        "format": "JSONL, one object per line: input (Spanish, one sentence per line), output (CODE-2), meta",
    }
    write_json(out / "manifest.json", manifest)
    return manifest
