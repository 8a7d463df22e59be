"""Assembler: CODE-2 source text -> memory image.

Syntax (tolerant where people are, canonical when printed):
  * one statement per line: `[label:] [instruction | directive] [; comment]`; blank lines
    and comment-only lines are fine;
  * mnemonics, directives and registers in any case (`adds rd, r1 ,R2`), spaces and tabs
    anywhere between tokens;
  * registers r0..r9, rA..rF; constants in decimal (`42`) or `H'2A'`; 8-bit slots also take
    `lo(label)` / `hi(label)` (the low / high byte of a label's address [decision]: CODE-2
    jumps through rD, so a label reaches code only through LLI/LHI);
  * memory operands `[rD+v]`, `[rD]` or `[v]` (the thesis table's spelling); ports `IP05`,
    `OP1F` (one or two hex digits);
  * directives `ORG v` (the address of what follows; labels on the ORG line take it) and
    `DW v` (one data word: a 16-bit constant or a label) [decision].

Thesis mode (`thesis=True`) gives the comment of LD and ST lines a meaning: the thesis
writes `LD rF,[rD+H'08'] ; rD = 0000` to state the value rD must hold, so the assembler
requires that comment on every LD/ST, checks it is a page address HH00, and emits
`LLI rD,H'00'` + `LHI rD,H'HH'` before the instruction [decision]. The program then runs on
the real machine with the meaning the thesis intended.

Errors never escape as exceptions other than `AssemblyError` (a `TinyLMError`), which
lists every problem with its line, column and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from tinylm.errors import TinyLMError
from tinylm.tasks.code2.isa import (
    ADDRESS_REGISTER,
    BY_MNEMONIC,
    DIRECTIVES,
    Instruction,
    InstructionSpec,
    Operand,
    hex8,
    hex16,
    register_name,
)

_HEX = "0123456789abcdefABCDEF"
_REGISTER_RE = re.compile(r"[rR][0-9a-fA-F]")
_PORT_RE = {Operand.IPORT: re.compile(r"IP([0-9A-F]{1,2})", re.I), Operand.OPORT: re.compile(r"OP([0-9A-F]{1,2})", re.I)}
_HINT_RE = re.compile(r"rD[ \t]*=[ \t]*([0-9A-Fa-f]{1,4})", re.I)
_WHITESPACE = " \t"
RD_COMMENT_MNEMONICS = ("LD", "ST")  # the instructions whose comment states rD


@dataclass(frozen=True)
class Diagnostic:
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class AssemblyError(TinyLMError):
    """The source does not assemble; `diagnostics` lists every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"{diagnostics[0]}{more}")


class _LineError(Exception):
    def __init__(self, column: int, message: str):
        self.column, self.message = column, message


@dataclass(frozen=True)
class LabelRef:
    """A label used as a value: `part` is "lo", "hi" or "full" (DW only)."""

    name: str
    part: str
    column: int

    def text(self) -> str:
        return self.name if self.part == "full" else f"{self.part}({self.name})"


Value = int | LabelRef


@dataclass
class Statement:
    spec: InstructionSpec | None  # None for a directive
    directive: str | None
    operands: list[Value]  # instructions: one per spec operand; directives: one value
    column: int

    def text(self) -> str:
        if self.directive == "ORG":
            return f"ORG {hex16(self.operands[0])}"  # type: ignore[arg-type]
        if self.directive == "DW":
            v = self.operands[0]
            return f"DW {v.text() if isinstance(v, LabelRef) else hex16(v)}"
        assert self.spec is not None
        texts = [_operand_text(kind, v) for kind, v in zip(self.spec.operands, self.operands)]
        return self.spec.mnemonic + (" " + ",".join(texts) if texts else "")


def _operand_text(kind: Operand, v: Value) -> str:
    if isinstance(v, LabelRef):
        return f"[rD+{v.text()}]" if kind is Operand.MEM else v.text()
    if kind in (Operand.RX, Operand.RS, Operand.RA):
        return register_name(v)
    if kind is Operand.MEM:
        return f"[rD+{hex8(v)}]"
    if kind is Operand.IMM:
        return hex8(v)
    return f"{'IP' if kind is Operand.IPORT else 'OP'}{v:02X}"


@dataclass
class ParsedLine:
    number: int
    labels: list[tuple[str, int]] = field(default_factory=list)  # (name, column)
    statement: Statement | None = None
    comment: str | None = None  # stripped text after ';', None when absent or empty
    rd_hint: int | None = None  # thesis mode: the rD value stated by the comment

    def canonical_lines(self) -> list[str]:
        """Canonical text: labels on their own lines, `INSTR ; comment`, no blank lines."""
        out = [f"{name}:" for name, _ in self.labels]
        comment = f"rD = {self.rd_hint:04X}" if self.rd_hint is not None else self.comment
        if self.statement is not None:
            out.append(self.statement.text() + (f" ; {comment}" if comment else ""))
        elif comment:
            out.append(f"; {comment}")
        return out


@dataclass
class Program:
    """A memory image: address -> word, in the order the source emitted them."""

    image: dict[int, int]
    entry: int
    labels: dict[str, int]
    lines: dict[int, int]  # address -> 1-based source line, for traces and errors

    @property
    def words(self) -> list[int]:
        return list(self.image.values())


# --- lexing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # "id", "num", "hex", "punct", "end"
    text: str
    col: int  # 1-based
    value: int = 0


# One alternative per token kind; ASCII only, so "é" in an operand is an unexpected character.
_TOKEN_RE = re.compile(
    r"(?P<ws>[ \t]+)|(?P<hex>[hH]'[^']*')|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>[0-9]+)|(?P<punct>[,\[\]+:()])"
)


def _lex(code: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(code)
    while i < n:
        if code[i] in "hH" and code[i + 1 : i + 2] == "'" and code.find("'", i + 2) < 0:
            raise _LineError(i + 1, "expected a closing quote in H'..'")
        m = _TOKEN_RE.match(code, i)
        if m is None:
            raise _LineError(i + 1, f"unexpected character {code[i]!r}")
        kind, text = m.lastgroup, m.group()
        if kind == "hex":
            body = text[2:-1]
            bad = next((k for k, c in enumerate(body) if c not in _HEX), None)
            if not body or bad is not None:
                raise _LineError(i + 3 + (bad or 0), f"expected hex digits inside H'..', found {_shown(text)}")
            toks.append(_Tok("hex", text, i + 1, int(body, 16)))
        elif kind == "num":
            toks.append(_Tok("num", text, i + 1, int(text)))
        elif kind != "ws":
            toks.append(_Tok(kind, text, i + 1))  # type: ignore[arg-type]
        i = m.end()
    toks.append(_Tok("end", "", n + 1))
    return toks


def _shown(text: str) -> str:
    return "end of line" if not text else repr(text if len(text) <= 24 else text[:21] + "...")


# --- parsing one line ---------------------------------------------------------------------


class _Cursor:
    def __init__(self, toks: list[_Tok]):
        self.toks, self.i = toks, 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def expect_punct(self, ch: str, what: str) -> None:
        t = self.tok
        if t.kind != "punct" or t.text != ch:
            raise _LineError(t.col, f"expected '{ch}' {what}, found {_shown(t.text)}")
        self.take()


def _is_register(text: str) -> bool:
    return len(text) == 2 and _REGISTER_RE.fullmatch(text) is not None


def _parse_register(cur: _Cursor) -> int:
    t = cur.tok
    if t.kind == "id" and _is_register(t.text):
        cur.take()
        return int(t.text[1], 16)
    raise _LineError(t.col, f"expected a register (r0-r9, rA-rF), found {_shown(t.text)}")


def _parse_constant(cur: _Cursor, bits: int, allow_labels: bool, full_label: bool = False) -> Value:
    t = cur.tok
    limit = (1 << bits) - 1
    article = "an" if bits == 8 else "a"
    what = f"{article} {bits}-bit constant (0-{limit} or H'{0:0{bits // 4}X}'-H'{limit:X}')"
    if t.kind in ("num", "hex"):
        if t.value > limit:
            raise _LineError(t.col, f"expected {what}, found {t.text} (too large)")
        cur.take()
        return t.value
    if allow_labels and t.kind == "id":
        low = t.text.lower()
        if low in ("lo", "hi") and cur.peek().kind == "punct" and cur.peek().text == "(":
            cur.take()
            cur.take()
            name = cur.tok
            if name.kind != "id" or _is_register(name.text):
                raise _LineError(name.col, f"expected a label name inside {low}(...), found {_shown(name.text)}")
            cur.take()
            cur.expect_punct(")", f"to close {low}(")
            return LabelRef(name.text, low, name.col)
        if full_label and not _is_register(t.text):
            cur.take()
            return LabelRef(t.text, "full", t.col)
    hint = " or lo(label)/hi(label)" if allow_labels and not full_label else (" or a label" if full_label else "")
    raise _LineError(t.col, f"expected {what}{hint}, found {_shown(t.text)}")


def _parse_memory(cur: _Cursor) -> Value:
    cur.expect_punct("[", "to open the memory operand [rD+v]")
    t = cur.tok
    if t.kind == "id" and _is_register(t.text):
        if int(t.text[1], 16) != ADDRESS_REGISTER:
            raise _LineError(t.col, f"expected rD as the base register of [rD+v], found {t.text}")
        cur.take()
        if cur.tok.kind == "punct" and cur.tok.text == "]":
            cur.take()
            return 0
        cur.expect_punct("+", "after rD in [rD+v]")
    value = _parse_constant(cur, 8, allow_labels=True)
    cur.expect_punct("]", "to close the memory operand [rD+v]")
    return value


def _parse_port(cur: _Cursor, kind: Operand) -> int:
    t = cur.tok
    m = _PORT_RE[kind].fullmatch(t.text) if t.kind == "id" else None
    if m is None:
        p = "IP" if kind is Operand.IPORT else "OP"
        raise _LineError(t.col, f"expected an {'input' if p == 'IP' else 'output'} port {p}00-{p}FF, found {_shown(t.text)}")
    cur.take()
    return int(m.group(1), 16)


def _parse_operand(cur: _Cursor, kind: Operand) -> Value:
    if kind in (Operand.RX, Operand.RS, Operand.RA):
        return _parse_register(cur)
    if kind is Operand.MEM:
        return _parse_memory(cur)
    if kind is Operand.IMM:
        return _parse_constant(cur, 8, allow_labels=True)
    return _parse_port(cur, kind)


def _mnemonic_list() -> str:
    return ", ".join(list(BY_MNEMONIC)[:6]) + ", ..."


def _parse_statement(cur: _Cursor) -> Statement:
    t = cur.take()
    word = t.text.upper()
    if word in DIRECTIVES:
        if word == "ORG":
            value = _parse_constant(cur, 16, allow_labels=False)
        else:
            value = _parse_constant(cur, 16, allow_labels=True, full_label=True)
        return Statement(None, word, [value], t.col)
    spec = BY_MNEMONIC.get(word)
    if spec is None:
        raise _LineError(
            t.col,
            f"expected an instruction ({_mnemonic_list()}), a directive (ORG, DW) or a label "
            f"followed by ':', found {_shown(t.text)}",
        )
    operands: list[Value] = []
    for k, kind in enumerate(spec.operands):
        if k:
            cur.expect_punct(",", f"between the operands of {spec.mnemonic}")
        operands.append(_parse_operand(cur, kind))
    return Statement(spec, None, operands, t.col)


def parse_line(text: str, number: int = 1, *, thesis: bool = False) -> ParsedLine:
    """Parse one source line; raises AssemblyError (one diagnostic) when it is malformed."""
    try:
        return _parse_line(text, number, thesis)
    except _LineError as e:
        raise AssemblyError([Diagnostic(number, e.column, e.message)]) from None


def _parse_line(text: str, number: int, thesis: bool) -> ParsedLine:
    try:
        return _parse_line_inner(text, number, thesis)
    except _LineError as e:
        # The thesis's outputs mix code with "Error: ..." reports; say so rather than
        # complaining about an accented letter.
        if text.lstrip(_WHITESPACE).lower().startswith("error:"):
            raise _LineError(1, "an 'Error: ...' line reports a faulty description; it has no machine code") from None
        raise e


def _parse_line_inner(text: str, number: int, thesis: bool) -> ParsedLine:
    cr = text.find("\r")
    if cr >= 0:
        raise _LineError(cr + 1, "unexpected carriage return inside a line")
    code, semi, comment = text.partition(";")
    cur = _Cursor(_lex(code))
    line = ParsedLine(number)
    while cur.tok.kind == "id" and cur.peek().kind == "punct" and cur.peek().text == ":":
        t = cur.take()
        if _is_register(t.text):
            raise _LineError(t.col, f"expected a label name, found register {t.text}")
        line.labels.append((t.text, t.col))
        cur.take()
    if cur.tok.kind == "id":
        line.statement = _parse_statement(cur)
        if cur.tok.kind != "end":
            raise _LineError(cur.tok.col, f"expected end of line or ';', found {_shown(cur.tok.text)}")
    elif cur.tok.kind != "end":
        raise _LineError(cur.tok.col, f"expected a label, an instruction or a directive, found {_shown(cur.tok.text)}")
    stripped = comment.strip(_WHITESPACE)
    line.comment = stripped or None
    stmt = line.statement
    if thesis and stmt is not None and stmt.spec is not None and stmt.spec.mnemonic in RD_COMMENT_MNEMONICS:
        line.rd_hint = _parse_hint(stripped if semi else None, len(code) + 1, stmt.spec.mnemonic)
    return line


def _parse_hint(comment: str | None, col: int, mnemonic: str) -> int:
    if comment is None:
        raise _LineError(col, f"expected '; rD = HH00' after {mnemonic} (the thesis format states rD's value)")
    m = _HINT_RE.fullmatch(comment)
    if m is None:
        raise _LineError(col + 1, f"expected 'rD = HH00' (1-4 hex digits) in the comment, found {_shown(comment)}")
    value = int(m.group(1), 16)
    if value & 0xFF:
        raise _LineError(col + 1, f"expected rD to be a page address HH00, found {value:04X}")
    return value


# --- whole programs -----------------------------------------------------------------------


def split_lines(text: str) -> list[str]:
    """Lines of a source text; a CR before each LF (Windows files) is dropped."""
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


@lru_cache(maxsize=1 << 16)
def _parse_cached(raw: str, thesis: bool) -> ParsedLine | tuple[int, str]:
    # The equivalence check assembles a prediction and its reference, which mostly share
    # lines, thousands of times: parsing each distinct line once halves its cost. Callers
    # must treat the ParsedLine as read-only.
    try:
        return _parse_line(raw, 0, thesis)
    except _LineError as e:
        return (e.column, e.message)


def parse(text: str, *, thesis: bool = False) -> tuple[list[ParsedLine], list[Diagnostic]]:
    parsed: list[ParsedLine] = []
    diags: list[Diagnostic] = []
    for number, raw in enumerate(split_lines(text), start=1):
        result = _parse_cached(raw, thesis)
        if isinstance(result, ParsedLine):
            parsed.append(replace(result, number=number))
        else:
            diags.append(Diagnostic(number, *result))
    return parsed, diags


def _hint_words(hint: int) -> list[int]:
    lli, lhi = BY_MNEMONIC["LLI"], BY_MNEMONIC["LHI"]
    return [Instruction(lli, rx=ADDRESS_REGISTER, v=0).encode(), Instruction(lhi, rx=ADDRESS_REGISTER, v=hint >> 8).encode()]


def _build(parsed: list[ParsedLine], origin: int) -> tuple[Program, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    labels: dict[str, int] = {}
    placed: list[tuple[int, ParsedLine]] = []
    addr, entry = origin, None
    for pl in parsed:
        stmt = pl.statement
        if stmt is not None and stmt.directive == "ORG":
            addr = stmt.operands[0]  # type: ignore[assignment]
        for name, col in pl.labels:
            if name in labels:
                diags.append(Diagnostic(pl.number, col, f"label '{name}' is defined twice"))
            labels[name] = addr
        if stmt is None or stmt.directive == "ORG":
            continue
        size = 3 if pl.rd_hint is not None else 1
        if addr + size > 0x10000:
            diags.append(Diagnostic(pl.number, stmt.column, "program runs past address FFFF (check ORG)"))
            continue
        placed.append((addr, pl))
        entry = addr if entry is None else entry
        addr += size

    image: dict[int, int] = {}
    lines: dict[int, int] = {}
    for addr, pl in placed:
        stmt = pl.statement
        assert stmt is not None
        try:
            values = [_resolve(v, labels) for v in stmt.operands]
        except _LineError as e:
            diags.append(Diagnostic(pl.number, e.column, e.message))
            continue
        if stmt.spec is None:
            words = [values[0]]
        else:
            fields = dict(zip(stmt.spec.operands, values))
            ins = Instruction(
                stmt.spec,
                rx=fields.get(Operand.RX, 0),
                rs=fields.get(Operand.RS, 0),
                ra=fields.get(Operand.RA, 0),
                v=next((fields[k] for k in (Operand.MEM, Operand.IMM, Operand.IPORT, Operand.OPORT) if k in fields), 0),
            )
            words = ([] if pl.rd_hint is None else _hint_words(pl.rd_hint)) + [ins.encode()]
        for k, w in enumerate(words):
            if addr + k in image:
                diags.append(Diagnostic(pl.number, stmt.column, f"address {addr + k:04X} is assigned twice (check ORG)"))
                break
            image[addr + k] = w
            lines[addr + k] = pl.number
    return Program(image, origin if entry is None else entry, labels, lines), diags


def _resolve(v: Value, labels: dict[str, int]) -> int:
    if not isinstance(v, LabelRef):
        return v
    if v.name not in labels:
        raise _LineError(v.column, f"undefined label '{v.name}'")
    addr = labels[v.name]
    return addr & 0xFF if v.part == "lo" else addr >> 8 if v.part == "hi" else addr


def check(text: str, *, origin: int = 0, thesis: bool = False) -> list[Diagnostic]:
    """Every problem in the source, in line order; an empty list means it assembles."""
    parsed, diags = parse(text, thesis=thesis)
    _, more = _build(parsed, origin)
    return sorted(diags + more, key=lambda d: (d.line, d.column))


def assemble(text: str, *, origin: int = 0, thesis: bool = False) -> Program:
    """Assemble source text; raises AssemblyError listing every problem."""
    parsed, diags = parse(text, thesis=thesis)
    program, more = _build(parsed, origin)
    diags = sorted(diags + more, key=lambda d: (d.line, d.column))
    if diags:
        raise AssemblyError(diags)
    return program


def canonicalize(text: str, *, thesis: bool = False) -> str:
    """The canonical spelling of a valid source: fixed case and spacing, H'..' constants,
    labels alone on their lines, no blank lines. Raises AssemblyError when it is invalid."""
    parsed, diags = parse(text, thesis=thesis)
    _, more = _build(parsed, 0)
    if diags or more:
        raise AssemblyError(sorted(diags + more, key=lambda d: (d.line, d.column)))
    return "\n".join(out for pl in parsed for out in pl.canonical_lines())
