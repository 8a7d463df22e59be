"""`tinylm code2 translate MODEL -i`: the UGR thesis's interactive translator, on any precision.

    $ tinylm code2 translate runs/code2-thesis/model -i --precision int8
    es> Suma r1 y r2 y guarda el resultado en r3
    ..> Lee DAC1 y almacénalo en el registro 0
    ..>
    ADDS r3,r1,r2
    LD r0,[rD+H'C1'] ; rD = DA00
    ; 41.2 ms                                    (an example latency)

A description may span several lines; an empty line ends it. Each answer is followed by
its latency (the translation alone, in milliseconds) on a `;` line, which CODE-2 reads as
a comment, and an empty line. Ctrl-D (end of input) or Ctrl-C leaves. When stdin is not a
terminal (a pipe, a file) the same blocks are read and answered without prompts or banner,
so `tinylm code2 translate MODEL -i < descriptions.txt` translates a file of blocks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig

PROMPT, CONTINUATION = "es> ", "..> "


def read_blocks(read_line: Callable[[str], str | None]) -> Iterator[str]:
    """Descriptions of one or more lines, each ended by an empty line (or the end of input);
    `read_line(prompt)` returns a line without its newline, or None at the end of input."""
    lines: list[str] = []
    while True:
        line = read_line(CONTINUATION if lines else PROMPT)
        if line is None or not line.strip():
            if lines:
                yield "\n".join(lines)
                lines = []
            if line is None:
                return
        else:
            lines.append(line)


def _terminal_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def _piped_line(stream: TextIO) -> Callable[[str], str | None]:
    def read(prompt: str) -> str | None:
        line = stream.readline()
        return line.rstrip("\r\n") if line else None

    return read


def interactive(lm: LanguageModel, config: GenerationConfig, *, run: bool = False, stdin: TextIO | None = None,
                stdout: TextIO | None = None) -> int:
    """Translate blocks from stdin until it ends (or Ctrl-C); returns the exit code (0)."""
    from tinylm.tasks.code2.translate import model_task, precision_of, run_translation, translate

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    preset = model_task(lm).preset  # refuses a model of another task before the first prompt
    tty = stdin.isatty() and stdin is sys.stdin  # input() reads sys.stdin: its prompts and line editing
    if tty:
        print(f"CODE-2 translator: {lm.path} ({precision_of(lm.model)}). Write a description in Spanish, one or "
              f"more lines, and end it with an empty line; Ctrl-D leaves.", file=sys.stderr)
    read_line = _terminal_line if tty else _piped_line(stdin)
    try:
        for text in read_blocks(read_line):
            t0 = time.perf_counter()
            try:
                assembly = translate(lm, text, config)
            except TinyLMError as e:  # one bad block (too long for the context): say why, keep going
                print(f"tinylm: error: {e}", file=sys.stderr)
                continue
            ms = 1000 * (time.perf_counter() - t0)
            print(assembly, file=stdout)
            if run:
                print(run_report(run_translation(assembly, preset)), file=stdout)
            print(f"; {ms:.1f} ms\n", file=stdout, flush=True)
    except KeyboardInterrupt:
        if tty:
            print(file=sys.stderr)  # leave the terminal on a fresh line
    return 0


def run_report(run) -> str:
    """A TranslationRun as `;` comment lines: the emulator's verdict and final state."""
    lines = [f"; emulator ({'registers r<i> = i' if run.assembles else 'not run'}): {run.message}"]
    if run.assembles:
        lines += [f"; {line}" for line in run.state_text.split("\n")]
    return "\n".join(lines)
