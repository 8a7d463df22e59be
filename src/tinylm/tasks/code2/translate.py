"""Spanish -> CODE-2 with a trained model, and a run of the result on the emulator.

    lm = tinylm.load("runs/code2-thesis/model")
    asm = translate(lm, "Suma r1 y r2 y guarda el resultado en r3")      # "ADDS r3,r1,r2"
    run = run_translation(asm, preset="thesis")                          # final registers

The model's checkpoint says how it was trained (config.extra["code2"]): a line model gets
each non-blank line of the description as its own prompt (in one batch), a block model the
whole text. Decoding is greedy unless a GenerationConfig says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig
from tinylm.tasks.code2.task import Code2Task, create


# What `code2 translate --precision` offers: the float model, or its weights quantized on load
# with the weight-only transforms of tinylm.transforms.quantize (int4: groups of 32 inputs).
PRECISIONS = ("fp32", "int8", "int4")


def load_translator(path: str | os.PathLike, precision: str | None = None) -> LanguageModel:
    """The checkpoint at `path` at `precision`: a float checkpoint is quantized on the fly (int8,
    int4); a folder already quantized (`tinylm quantize`) is used as saved, and `precision`, if
    given, must name its method."""
    from tinylm.checkpoint import load_model
    from tinylm.tokenizers import TOKENIZER_FILENAME, load_tokenizer
    from tinylm.transforms import prepare_for_inference
    from tinylm.transforms.quantize import quantize

    if precision is not None and precision not in PRECISIONS:
        raise TinyLMError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    path = Path(path)
    model = load_model(path)
    if not (path / TOKENIZER_FILENAME).is_file():
        raise TinyLMError(f"checkpoint {path} has no {TOKENIZER_FILENAME}")
    saved = precision_of(model)
    if precision is not None and precision != saved:
        if saved != "fp32":
            raise TinyLMError(f"{path} is already quantized ({saved}); leave out --precision, or give the float "
                              f"checkpoint for {precision}")
        quantize(model, precision)
    return LanguageModel(prepare_for_inference(model), load_tokenizer(path / TOKENIZER_FILENAME), path)


def precision_of(model) -> str:
    """fp32, or the quantization method of a GPT's weights."""
    from tinylm.transforms.quantize import METHODS

    return next((t.name for t in model.transforms if t.name in METHODS), "fp32")


def model_task(lm: LanguageModel) -> Code2Task:
    """The Code2Task a checkpoint was trained for (its unit and data preset)."""
    extra = lm.model.config.extra or {}
    if extra.get("task") != "code2":
        raise TinyLMError(f"{lm.path or 'this model'} is not a CODE-2 model (config.extra has no task 'code2')")
    return create(extra, None, None)


def translate_many(lm: LanguageModel, texts: list[str], config: GenerationConfig | None = None) -> list[str]:
    from tinylm.evaluation.harness import predict

    task = model_task(lm)
    texts = list(texts)
    if any(not task.prompts(t) for t in texts):
        raise TinyLMError("nothing to translate: the description is empty")
    config = config or GenerationConfig(temperature=0.0, max_new_tokens=lm.model.config.block_size)
    return predict(lm, task, texts, config)[0]


def translate(lm: LanguageModel, text: str, config: GenerationConfig | None = None) -> str:
    return translate_many(lm, [text], config)[0]


# Registers before a demonstration run: r<i> holds i, so "suma r1 y r2 en r3" visibly gives r3 = 3.
DEMO_REGISTERS = tuple(range(16))


@dataclass
class TranslationRun:
    """A translation checked and run: what `translate --run`, the demo and /v1/code2/translate show."""

    assembly: str
    valid: bool  # every line is a valid canonical output line of the preset
    problems: list[str]  # why not, one diagnostic a line
    error_lines: list[str]  # the Error: lines of the output (answers, not code)
    assembles: bool
    status: str  # "halted", an emulator error, or "not assembled"
    message: str
    registers: list[int]  # r0..rF after the run (before it, when it did not assemble)
    flags: dict[str, bool] = field(default_factory=dict)
    memory: dict[int, int] = field(default_factory=dict)  # the words the program changed, by address
    outputs: list[tuple[int, int]] = field(default_factory=list)  # (port, value) in order
    state_text: str = ""  # registers, flags and outputs as `tinylm code2 run` prints them

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the HTTP API (registers by name, memory by 4-digit hex address)."""
        from tinylm.tasks.code2.isa import register_name

        return {
            "assembly": self.assembly, "valid": self.valid, "problems": self.problems, "error_lines": self.error_lines,
            "assembles": self.assembles, "status": self.status, "message": self.message,
            "registers": {register_name(i): v for i, v in enumerate(self.registers)}, "flags": self.flags,
            "memory": {f"{a:04X}": w for a, w in self.memory.items()},
            "outputs": [{"port": p, "value": v} for p, v in self.outputs],
        }


def run_translation(assembly: str, preset: str = "thesis", registers: tuple[int, ...] = DEMO_REGISTERS) -> TranslationRun:
    """Check the output's syntax, assemble its non-Error lines (thesis format: LD/ST load rD
    from their comment), add a HALT, run them from `registers` and zeroed memory; never
    raises for a bad program (the answer says what went wrong)."""
    from tinylm.tasks.code2.assembler import AssemblyError, assemble
    from tinylm.tasks.code2.emulator import Emulator
    from tinylm.tasks.code2.equivalence import CODE_ORIGIN
    from tinylm.tasks.code2.errors_catalogue import is_error_line
    from tinylm.tasks.code2.validate import syntax_check

    lines = [ln for ln in assembly.split("\n") if ln.strip()]
    errors = [ln for ln in lines if is_error_line(ln)]
    code = [ln for ln in lines if not is_error_line(ln)] + ["HALT"]
    problems = [str(d) for d in syntax_check(assembly, preset)]
    checked = dict(assembly=assembly, valid=not problems, problems=problems, error_lines=errors)
    try:
        program = assemble("\n".join(code), origin=CODE_ORIGIN, thesis=preset == "thesis")
    except AssemblyError as e:
        return TranslationRun(**checked, assembles=False, status="not assembled", message=str(e),
                              registers=list(registers))
    emu = Emulator(program, registers=registers)
    before = emu.memory.tolist()
    result = emu.run()
    return TranslationRun(
        **checked, assembles=True, status=result.status, message=result.message, registers=list(emu.regs),
        flags=dict(emu.flags), memory={a: w for a, (w, old) in enumerate(zip(emu.memory.tolist(), before)) if w != old},
        outputs=list(emu.outputs), state_text=emu.state_text(),
    )
