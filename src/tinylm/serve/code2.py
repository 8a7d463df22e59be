"""/v1/code2/translate: Spanish -> CODE-2 assembly, checked by the assembler and run on the emulator.

The prompts are built as tinylm.tasks.code2.translate builds them (one per line for a
line model, in the checkpoint's own format) but decoded by the server's scheduler, so
translations share the continuous batch with completions. The run follows
`run_translation` (Error lines are answers, not code; a HALT is appended; registers start
at r<i> = i so "suma r1 y r2 en r3" visibly gives r3 = 3) and also reports the memory
words the program wrote.
"""

from __future__ import annotations

from typing import Any

from tinylm.api import LanguageModel
from tinylm.data.paired import encode_prompt
from tinylm.errors import TinyLMError


def translation_prompts(lm: LanguageModel, text: str) -> tuple[Any, list[list[int]]]:
    """The model's Code2Task and the token ids of each prompt (raises for a non-CODE-2 model)."""
    from tinylm.tasks.code2.translate import model_task

    task = model_task(lm)
    prompts = task.prompts(text)
    if not prompts:
        raise TinyLMError("nothing to translate: the description is empty")
    return task, [encode_prompt(lm.tokenizer, p) for p in prompts]


def run_assembly(assembly: str, preset: str) -> dict[str, Any]:
    """Assemble and run; never raises for a bad program (the answer says what went wrong)."""
    from tinylm.tasks.code2 import AssemblyError, assemble, syntax_check
    from tinylm.tasks.code2.emulator import Emulator
    from tinylm.tasks.code2.equivalence import CODE_ORIGIN
    from tinylm.tasks.code2.errors_catalogue import is_error_line
    from tinylm.tasks.code2.isa import register_name
    from tinylm.tasks.code2.translate import DEMO_REGISTERS

    lines = [ln for ln in assembly.split("\n") if ln.strip()]
    errors = [ln for ln in lines if is_error_line(ln)]
    code = [ln for ln in lines if not is_error_line(ln)]
    answer: dict[str, Any] = {
        "assembly": assembly,
        "valid": not syntax_check(assembly, preset),
        "problems": [str(d) for d in syntax_check(assembly, preset)],
        "error_lines": errors,
        "assembles": False,
        "status": "not assembled",
        "message": "",
        "registers": {register_name(i): v for i, v in enumerate(DEMO_REGISTERS)},
        "flags": {},
        "memory": {},
        "outputs": [],
    }
    try:
        program = assemble("\n".join(code + ["HALT"]), origin=CODE_ORIGIN, thesis=preset == "thesis")
    except AssemblyError as e:
        answer["message"] = str(e)
        return answer
    emu = Emulator(program, registers=DEMO_REGISTERS)
    before = emu.memory.tolist()
    result = emu.run()
    answer.update(
        assembles=True, status=result.status, message=result.message,
        registers={register_name(i): v for i, v in enumerate(emu.regs)},
        flags=dict(emu.flags),
        memory={f"{a:04X}": w for a, (w, old) in enumerate(zip(emu.memory, before)) if w != old},
        outputs=[{"port": p, "value": v} for p, v in emu.outputs],
    )
    return answer
