"""CODE-2: the machine, its assembly language and the Spanish -> assembly task (the UGR thesis).

`isa` is the single source of truth for the instruction set; the assembler, disassembler,
emulator, grammar and data generator are derived from it. Public API:

    assemble(text, *, origin=0, thesis=False) -> Program        (raises AssemblyError)
    check(text, *, origin=0, thesis=False) -> list[Diagnostic]
    canonicalize(text, *, thesis=False) -> str
    disassemble(words | {addr: word}, *, origin=0, addresses=False) -> str
    Emulator(program, *, inputs=..., registers=..., memory=..., step_limit=...).run(trace=...) -> RunResult
    equivalent(predicted, reference, *, variant="auto", trials=3, seed=0) -> Equivalence(equal, reason)
    is_valid_line(line, variant="thesis") -> bool;  syntax_check(text, variant="thesis") -> list[Diagnostic]
    grammar_ebnf(variant="thesis") -> str (GBNF for XGrammar);  grammar_lark(variant) -> str
    generate_examples(preset, n, seed) -> list[Example];  generate_dataset(out_dir, preset, n, seed) -> manifest
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use (PEP 562), so `tinylm --help`, which imports every command module,
# does not load the assembler, emulator and generator.
_EXPORTS = {
    "tinylm.tasks.code2.assembler": ("AssemblyError", "Diagnostic", "Program", "assemble", "canonicalize", "check"),
    "tinylm.tasks.code2.disassembler": ("disassemble", "disassemble_word"),
    "tinylm.tasks.code2.emulator": ("Emulator", "EmulatorError", "RunResult"),
    "tinylm.tasks.code2.equivalence": ("Equivalence", "equivalent"),
    "tinylm.tasks.code2.generator": ("Example", "generate_dataset", "generate_examples"),
    "tinylm.tasks.code2.grammar": ("GrammarChecker", "grammar_ebnf", "grammar_lark"),
    "tinylm.tasks.code2.isa": ("SPECS", "Instruction", "decode"),
    "tinylm.tasks.code2.validate": ("is_valid_line", "line_problem", "syntax_check"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
