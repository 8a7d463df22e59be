"""Is a model's output well-formed? Line-level checks for the two output variants.

  * "thesis": the thesis dataset's lines, exactly as the generator prints them:
    `LD rX,[rD+H'HH'] ; rD = HH00`, `ST [rD+H'HH'],rX ; rD = HH00`, `ADDS rX,rY,rZ`,
    `SUBS rX,rY,rZ`, or a canonical `Error: ...` line (see errors_catalogue).
  * "full": any canonical line of the full language: an instruction (optionally
    ` ; comment`), a label line `name:`, a comment line `; text`, `ORG H'HHHH'`, `DW ...`.

A line is valid when it assembles *and* is already in canonical form, which is the same
language the generated grammar (grammar.py) describes; tests hold the two to agreement.
"""

from __future__ import annotations

from tinylm.errors import TinyLMError
from tinylm.tasks.code2 import errors_catalogue
from tinylm.tasks.code2.assembler import AssemblyError, Diagnostic, LabelRef, ParsedLine, check, parse_line, split_lines

VARIANTS = ("thesis", "full")
THESIS_INSTRUCTIONS = ("LD", "ST", "ADDS", "SUBS")


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise TinyLMError(f"unknown CODE-2 output variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def _thesis_shape_ok(pl: ParsedLine) -> bool:
    stmt = pl.statement
    if pl.labels or stmt is None or stmt.spec is None or stmt.spec.mnemonic not in THESIS_INSTRUCTIONS:
        return False
    if any(isinstance(v, LabelRef) for v in stmt.operands):
        return False
    return pl.rd_hint is not None or pl.comment is None  # ADDS/SUBS carry no comment


def line_problem(line: str, variant: str = "thesis") -> str | None:
    """None when `line` is a valid canonical line of `variant`, else what is wrong with it."""
    check_variant(variant)
    if variant == "thesis" and errors_catalogue.is_error_line(line):
        if errors_catalogue.is_canonical_error_line(line):
            return None
        return "not a canonical error line (Error: <message>[ y <message>...] from the catalogue)"
    try:
        pl = parse_line(line, thesis=variant == "thesis")
    except AssemblyError as e:
        d = e.diagnostics[0]
        return f"column {d.column}: {d.message}"
    if variant == "thesis" and not _thesis_shape_ok(pl):
        return "not a thesis-format line (LD, ST with '; rD = HH00', ADDS, SUBS, or Error: ...)"
    canonical = pl.canonical_lines()
    if not canonical:
        return "blank line: nothing to assemble"
    if canonical != [line]:
        return f"not in canonical form; expected {' / '.join(canonical)!r}"
    return None


def quote_problems(output: str, description: str) -> list[str]:
    """What an output quotes that its description did not say: for every `Error:` line, each
    quoted token (quotes paired left to right) must be a non-empty verbatim span of the
    description, case kept, and no token may hold a quote (an odd number of quotes leaves one
    inside; a quote in the middle of a token splits it into pieces that are not spans). Whether
    the message around the quotes is the catalogue's is syntax_check's business. [] when all
    is well."""
    problems = []
    for number, line in enumerate(output.split("\n"), start=1):
        if not errors_catalogue.is_error_line(line):
            continue
        parts = line.split("'")
        if len(parts) % 2 == 0:
            problems.append(f"line {number}: an odd number of quotes (a quote inside a token, or one unclosed)")
        for token in parts[1:-1:2]:
            if not token or token not in description:
                problems.append(f"line {number}: '{token}' is not a piece of the description")
    return problems


def is_valid_line(line: str, variant: str = "thesis") -> bool:
    return line_problem(line, variant) is None


def syntax_check(text: str, variant: str = "thesis") -> list[Diagnostic]:
    """Every problem of a whole output, one Diagnostic per bad line (column 1 when the line
    parses but is not canonical); then, for "full", label problems across lines. A single
    trailing newline is allowed."""
    check_variant(variant)
    lines = split_lines(text[:-1] if text.endswith("\n") else text)
    diags = []
    for number, line in enumerate(lines, start=1):
        problem = line_problem(line, variant)
        if problem is not None:
            column = 1
            if problem.startswith("column "):
                head, _, problem = problem.partition(": ")
                column = int(head.split()[1])
            diags.append(Diagnostic(number, column, problem))
    if not diags and variant == "full":
        diags = check("\n".join(lines))
    return diags
