"""`tinylm code2 ...`: assemble, disassemble, run, check and generate data for CODE-2.

    tinylm code2 asm FILE [-o OUT.hex] [--thesis]       source -> hex image (stdout without -o)
    tinylm code2 disasm FILE.hex [-o OUT] [--addresses] hex image -> canonical source
    tinylm code2 run FILE [--trace] [--input V ...]      run a source or .hex file to HALT
    tinylm code2 check FILE [--variant thesis|full]      is every line a canonical output line?
    tinylm code2 grammar [--variant V] [--lark] [-o OUT] the output grammar (GBNF for XGrammar)
    tinylm code2 gen-data --preset thesis|full --out DIR [--style templates|broad] [--n N] [--seed S]
    tinylm code2 train --preset thesis|full [--out DIR] [--budget-minutes M]   (train_cli.py)
    tinylm code2 translate MODEL "Suma r1 y r2 y guarda el resultado en r3" [--run]   (train_cli.py)

The hex format is described in hexfile.py (one 4-digit word per line, `@AAAA` for
addresses, `//` comments). Every mistake in the user's files ends as a TinyLMError: one
line, exit status 2; assembly diagnostics are listed on stderr first, one per line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinylm.errors import TinyLMError


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TinyLMError(f"file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise TinyLMError(f"cannot read {path}: {e}") from None


def _assemble_file(path: str, thesis: bool):
    from tinylm.tasks.code2.assembler import AssemblyError, assemble

    try:
        return assemble(_read_text(path), thesis=thesis)
    except AssemblyError as e:
        for d in e.diagnostics:
            print(f"{path}:{d.line}:{d.column}: {d.message}", file=sys.stderr)
        n = len(e.diagnostics)
        raise TinyLMError(f"{path}: {n} assembly error{'s' if n > 1 else ''}") from None


def _load_image(path: str, thesis: bool):
    """A .hex file as is, anything else assembled from source."""
    from tinylm.tasks.code2.hexfile import read_hex

    if Path(path).suffix.lower() == ".hex":
        return read_hex(path)
    return _assemble_file(path, thesis)


def _write_or_print(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from tinylm.atomic_files import atomic_write

    with atomic_write(out) as f:
        f.write(text if text.endswith("\n") else text + "\n")
    print(f"wrote {out}", file=sys.stderr)


def _cmd_asm(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.hexfile import format_hex

    program = _assemble_file(args.file, args.thesis)
    _write_or_print(format_hex(program.image), args.out)
    return 0


def _cmd_disasm(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.disassembler import disassemble
    from tinylm.tasks.code2.hexfile import read_hex

    image = read_hex(args.file)
    _write_or_print(disassemble(image, addresses=args.addresses), args.out)
    return 0


def _parse_value(text: str) -> int:
    t = text.strip()
    try:
        if t[:2].upper() == "H'" and t.endswith("'"):
            value = int(t[2:-1], 16)
        elif t[:2].lower() == "0x":
            value = int(t[2:], 16)
        else:
            value = int(t, 10)
    except ValueError:
        raise TinyLMError(f"--input: expected a number (42, 0x2A or H'2A'), found {text!r}") from None
    if not 0 <= value <= 0xFFFF:
        raise TinyLMError(f"--input: {text} does not fit in 16 bits")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.emulator import Emulator

    if args.max_steps < 1:
        raise TinyLMError(f"--max-steps must be at least 1, got {args.max_steps}")
    inputs = [_parse_value(v) for chunk in args.input for v in chunk.split(",") if v.strip()]
    emu = Emulator(_load_image(args.file, args.thesis), inputs=inputs, step_limit=args.max_steps)
    result = emu.run(trace=print if args.trace else None)
    print(f"{result.message}; {result.steps} steps, {result.cycles} cycles")
    print(emu.state_text())
    if not result.ok:
        raise TinyLMError(f"{args.file}: {result.message}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.validate import syntax_check

    text = _read_text(args.file)
    diags = syntax_check(text, args.variant)
    for d in diags:
        print(f"{args.file}:{d.line}:{d.column}: {d.message}", file=sys.stderr)
    if diags:
        raise TinyLMError(f"{args.file}: {len(diags)} line(s) are not valid {args.variant} output")
    n = len([ln for ln in text.split("\n") if ln.strip()])
    print(f"{args.file}: {n} lines, all valid {args.variant} output")
    return 0


def _cmd_grammar(args: argparse.Namespace) -> int:
    from tinylm.tasks.code2.grammar import grammar_ebnf, grammar_lark

    _write_or_print((grammar_lark if args.lark else grammar_ebnf)(args.variant), args.out)
    return 0


def _cmd_gen_data(args: argparse.Namespace) -> int:
    import time

    from tinylm.tasks.code2.generator import generate_dataset

    start = time.perf_counter()
    m = generate_dataset(args.out, preset=args.preset, n=args.n, seed=args.seed, style=args.style)
    s = m["splits"]
    print(
        f"wrote {m['n']} {m['preset']} examples ({m['style']} style, seed {m['seed']}) to {args.out}: "
        f"train {s['train']}, valid {s['valid']}, test {s['test']}; "
        f"{m['error_lines']} of {m['lines']} lines are errors; {time.perf_counter() - start:.1f} s"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "code2",
        help="CODE-2 assembler, disassembler, emulator and Spanish->assembly data generator",
        description="The CODE-2 toolchain: assemble, disassemble, run, check outputs, generate data.",
    )
    sub = parser.add_subparsers(dest="code2_command", metavar="SUBCOMMAND")

    def show_help(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)

    p = sub.add_parser("asm", help="assemble a source file into a hex image")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", metavar="OUT", help="write the hex image here (default: stdout)")
    p.add_argument("--thesis", action="store_true", help="the thesis format: LD/ST need '; rD = HH00' and load rD")
    p.set_defaults(func=_cmd_asm)

    p = sub.add_parser("disasm", help="disassemble a hex image into canonical source")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", metavar="OUT", help="write the listing here (default: stdout)")
    p.add_argument("--addresses", action="store_true", help="add each word's address as a comment")
    p.set_defaults(func=_cmd_disasm)

    p = sub.add_parser("run", help="run a source or .hex file on the emulator until HALT")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--trace", action="store_true", help="print one line per step: PC, word, instruction, changes")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="V[,V...]",
        help="values read by IN, in order whatever the port (decimal, 0x2A or H'2A'); repeatable",
    )
    p.add_argument("--max-steps", type=int, default=100_000, help="stop a runaway program after this many steps")
    p.add_argument("--thesis", action="store_true", help="assemble in the thesis format (see asm)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="check that every line is a valid canonical output line")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--variant", choices=("thesis", "full"), default="thesis")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("grammar", help="print the grammar of valid outputs (GBNF for XGrammar, or Lark)")
    p.add_argument("--variant", choices=("thesis", "full"), default="thesis")
    p.add_argument("--lark", action="store_true", help="print the Lark version instead of GBNF")
    p.add_argument("-o", "--out", metavar="OUT", help="write the grammar here (default: stdout)")
    p.set_defaults(func=_cmd_grammar)

    p = sub.add_parser("gen-data", help="generate the Spanish->CODE-2 dataset as JSONL splits")
    p.add_argument("--preset", choices=("thesis", "full"), required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=36_000, help="number of unique examples (default 36000)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--style", choices=("templates", "broad"), default="templates",
                   help="templates: the generator's templates (the thesis's design, default); "
                        "broad: about 30 %% templates, 70 %% paraphrases (what the recipes train on)")
    p.set_defaults(func=_cmd_gen_data)

    from tinylm.tasks.code2.train_cli import register_train_commands

    register_train_commands(sub)
