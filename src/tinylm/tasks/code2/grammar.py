"""Grammars of the task's output, generated from the ISA table and the error catalogue.

Two variants (see validate.py for the exact languages): "thesis" (LD/ST with the
`; rD = HH00` comment, ADDS, SUBS, canonical `Error: ...` lines) and "full" (every
instruction, labels, comments, ORG, DW). The rules are built once as a small expression tree
and printed in two dialects:
  * GBNF / EBNF as XGrammar reads it: `xgrammar.Grammar.from_ebnf(text, root_rule_name="root")`;
  * Lark (Earley), for environments without xgrammar.
`root` is a whole output (lines joined by "\\n"); `line` is one line.
Only canonical spellings are in the language, so constrained decoding produces exactly what
the data generator prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from tinylm.tasks.code2 import errors_catalogue
from tinylm.tasks.code2.isa import SPECS, Operand
from tinylm.tasks.code2.validate import THESIS_INSTRUCTIONS, VARIANTS, check_variant

# --- a tiny grammar expression tree -------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    """A character class in bracket syntax without the brackets, e.g. "0-9A-F" or "^'\\n"."""

    body: str


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    items: tuple


@dataclass(frozen=True)
class Rep:
    item: object
    op: str  # "*", "+", "?"


def seq(*items: object) -> Seq:
    out: list[object] = []
    for i in items:
        i = Lit(i) if isinstance(i, str) else i
        if out and isinstance(i, Lit) and isinstance(out[-1], Lit):
            out[-1] = Lit(out[-1].text + i.text)  # "LD" " " reads better as "LD "
        else:
            out.append(i)
    return Seq(tuple(out))


def alt(*items: object) -> Alt:
    return Alt(tuple(Lit(i) if isinstance(i, str) else i for i in items))


# --- the rules ------------------------------------------------------------------------------

_HEX = Ref("hex")
_REG = Ref("reg")


def _operand(kind: Operand, imm: Ref) -> object:
    if kind in (Operand.RX, Operand.RS, Operand.RA):
        return _REG
    if kind is Operand.MEM:
        return seq("[rD+", imm, "]")
    if kind is Operand.IMM:
        return imm
    return seq("IP" if kind is Operand.IPORT else "OP", _HEX, _HEX)


def _instruction(spec, imm: Ref, hint: bool) -> Seq:
    items: list[object] = [spec.mnemonic]
    for k, kind in enumerate(spec.operands):
        items.append(" " if k == 0 else ",")
        items.append(_operand(kind, imm))
    if hint:
        items += [" ; rD = ", _HEX, _HEX, "00"]
    return seq(*items)


def _common_rules() -> dict[str, object]:
    return {
        "hex": Cls("0-9A-F"),
        "reg": seq("r", _HEX),
        "h8": seq("H'", _HEX, _HEX, "'"),
    }


def _thesis_rules() -> dict[str, object]:
    rules = _common_rules()
    specs = [s for s in SPECS if s.mnemonic in THESIS_INSTRUCTIONS]
    rules["instr"] = alt(*(_instruction(s, Ref("h8"), s.mnemonic in ("LD", "ST")) for s in specs))
    messages = []
    for p in errors_catalogue.CATALOGUE:
        head, _, tail = p.template.partition("{tok}")
        messages.append(seq(head, Ref("tok"), tail) if p.has_token else Lit(p.template))
    rules["msg"] = alt(*messages)
    rules["tok"] = Rep(Cls("^'\\n\\r"), "+")
    rules["error"] = seq(errors_catalogue.PREFIX, Ref("msg"), Rep(seq(errors_catalogue.JOINER, Ref("msg")), "*"))
    rules["line"] = alt(Ref("instr"), Ref("error"))
    return rules


def _full_rules() -> dict[str, object]:
    rules = _common_rules()
    rules["h16"] = seq("H'", _HEX, _HEX, _HEX, _HEX, "'")
    word = Rep(Cls("A-Za-z0-9_"), "*")
    # Any identifier except a register name (r0-rF, either case), which the assembler refuses.
    rules["label"] = alt(
        seq(Cls("A-QS-Za-qs-z_"), word),
        Cls("rR"),
        seq(Cls("rR"), Cls("G-Zg-z_"), word),
        seq(Cls("rR"), Cls("0-9A-Fa-f"), Rep(Cls("A-Za-z0-9_"), "+")),
    )
    rules["byte"] = alt(seq("lo(", Ref("label"), ")"), seq("hi(", Ref("label"), ")"))
    rules["imm"] = alt(Ref("h8"), Ref("byte"))
    rules["instr"] = alt(*(_instruction(s, Ref("imm"), False) for s in SPECS))
    rules["directive"] = alt(seq("ORG ", Ref("h16")), seq("DW ", alt(Ref("h16"), Ref("label"), Ref("byte"))))
    # Comment text as the canonical printer leaves it: no line breaks, no outer spaces/tabs.
    rules["ctext"] = seq(Cls("^ \\t\\n\\r"), Rep(seq(Rep(Cls("^\\n\\r"), "*"), Cls("^ \\t\\n\\r")), "?"))
    rules["line"] = alt(
        seq(alt(Ref("instr"), Ref("directive")), Rep(seq(" ; ", Ref("ctext")), "?")),
        seq(Ref("label"), ":"),
        seq("; ", Ref("ctext")),
    )
    return rules


def _rules(variant: str) -> dict[str, object]:
    check_variant(variant)
    rules = _thesis_rules() if variant == "thesis" else _full_rules()
    rules["root"] = seq(Ref("line"), Rep(seq("\n", Ref("line")), "*"))
    return rules


# --- printing -------------------------------------------------------------------------------


def _render(e: object, dialect: str) -> str:
    if isinstance(e, Lit):
        return json.dumps(e.text, ensure_ascii=False)
    if isinstance(e, Cls):
        return f"[{e.body}]" if dialect == "gbnf" else f"/[{e.body}]/"
    if isinstance(e, Ref):
        return e.name
    if isinstance(e, Seq):
        return " ".join(_render(i, dialect) for i in e.items)
    if isinstance(e, Alt):
        return "(" + " | ".join(_render(i, dialect) for i in e.items) + ")"
    if isinstance(e, Rep):
        return f"({_render(e.item, dialect)}){e.op}"
    raise TypeError(e)


def _print(variant: str, dialect: str) -> str:
    header = f"CODE-2 task output, variant {variant!r}; generated from tinylm.tasks.code2.isa"
    arrow = "::=" if dialect == "gbnf" else ":"
    comment = "#" if dialect == "gbnf" else "//"
    rules = _rules(variant)
    order = ["root", "line"] + [n for n in rules if n not in ("root", "line")]
    body = "\n".join(f"{name} {arrow} {_render(rules[name], dialect)}" for name in order)
    return f"{comment} {header}\n{body}\n"


@lru_cache(maxsize=None)
def grammar_ebnf(variant: str = "thesis") -> str:
    """GBNF text for XGrammar (`Grammar.from_ebnf(text, root_rule_name="root")`)."""
    return _print(variant, "gbnf")


@lru_cache(maxsize=None)
def grammar_lark(variant: str = "thesis") -> str:
    """The same grammar for Lark: `Lark(text, start="root")` (Earley)."""
    return _print(variant, "lark")


class GrammarChecker:
    """Accept/reject strings with XGrammar (optional dependency `tinylm[grammar]`)."""

    def __init__(self, variant: str = "thesis", root: str = "root"):
        try:
            import xgrammar as xgr
        except ImportError as e:  # pragma: no cover - depends on the environment
            from tinylm.errors import TinyLMError

            raise TinyLMError("the grammar checker needs xgrammar: pip install 'tinylm[grammar]'") from e
        grammar = xgr.Grammar.from_ebnf(grammar_ebnf(variant), root_rule_name=root)
        compiler = xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)
        self._matcher = xgr.GrammarMatcher(compiler.compile_grammar(grammar), terminate_without_stop_token=True)

    def accepts(self, text: str) -> bool:
        m = self._matcher
        m.reset()
        return m.accept_string(text) and m.is_terminated()


__all__ = ["VARIANTS", "GrammarChecker", "grammar_ebnf", "grammar_lark"]
