"""`tinylm code2 translate MODEL -i` through piped stdin, and --precision, on the tiny CODE-2 model."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from tinylm.cli.main import main
from tinylm.tasks.code2.interactive import read_blocks
from tinylm.tasks.code2.translate import load_translator, precision_of, translate

BLOCKS = ["Suma r1 y r2 y guarda el resultado en r3\nLee DAC1 y almacénalo en el registro 0",
          "resta r1 a r2 y guarda en r4"]
LATENCY = re.compile(r"^; \d+\.\d ms$")


@pytest.fixture
def torch_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantized layers on torch's ops (the same numbers as the C++ kernels): these tests are
    about the command, and a first kernel build takes a minute."""
    import importlib

    # importlib: the package's own name `quantize` is the function, not this module.
    monkeypatch.setattr(importlib.import_module("tinylm.transforms.quantize"), "kernels", lambda: None)


def _answers(out: str) -> list[tuple[str, str]]:
    """(answer, latency line) pairs of the output: each answer is followed by its latency line and
    an empty line (an answer may hold empty lines of its own, so split at the latency lines)."""
    pairs, current, lines = [], [], iter(out.split("\n"))
    for line in lines:
        if LATENCY.match(line):
            pairs.append(("\n".join(current), line))
            current = []
            assert next(lines) == ""
        else:
            current.append(line)
    assert current == [""]  # the output ends with the last separator
    return pairs


def _run(args: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_read_blocks_splits_on_empty_lines():
    lines = iter(["a", "b", "", "", "   ", "c", None])
    assert list(read_blocks(lambda prompt: next(lines))) == ["a\nb", "c"]
    assert list(read_blocks(lambda prompt: None)) == []


def test_two_piped_blocks_give_two_answers_with_latency(tiny_code2_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture):
    stdin = f"{BLOCKS[0]}\n\n\n{BLOCKS[1]}\n"  # the end of input ends the last block
    code, out, err = _run(["code2", "translate", str(tiny_code2_model), "-i"], stdin, monkeypatch, capsys)
    assert code == 0 and err == ""
    answers = _answers(out)
    assert len(answers) == 2 and all(LATENCY.match(latency) for _, latency in answers)
    assert "es>" not in out  # no prompts when stdin is not a terminal
    lm = load_translator(tiny_code2_model)
    assert [a for a, _ in answers] == [translate(lm, b) for b in BLOCKS]


def test_int8_on_the_fly_gives_the_int8_models_answers(tiny_code2_model: Path, torch_ops: None,
                                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    code, out, _ = _run(["code2", "translate", str(tiny_code2_model), "-i", "--precision", "int8", "--run"],
                        BLOCKS[1] + "\n\n", monkeypatch, capsys)
    assert code == 0
    lm = load_translator(tiny_code2_model, "int8")
    assert precision_of(lm.model) == "int8"
    (answer, latency), = _answers(out)
    assert LATENCY.match(latency) and answer.startswith(translate(lm, BLOCKS[1]) + "\n; emulator")


def test_a_quantized_folder_is_used_as_saved(tiny_code2_model: Path, tmp_path: Path, torch_ops: None,
                                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    from tinylm.transforms.quantize import quantize_checkpoint

    folder = tmp_path / "int4"
    quantize_checkpoint(tiny_code2_model, folder, "int4", text="Suma r1 y r2 y guarda el resultado en r3 " * 3)
    assert precision_of(load_translator(folder).model) == "int4"
    code, out, _ = _run(["code2", "translate", str(folder), "-i", "--precision", "int4"], BLOCKS[1], monkeypatch, capsys)
    assert code == 0 and len(_answers(out)) == 1
    code, _, err = _run(["code2", "translate", str(folder), "-i", "--precision", "int8"], BLOCKS[1], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "already quantized (int4)" in err


@pytest.mark.parametrize("args, message", [
    (["-i", "--precision", "int3"], "unknown precision 'int3'"),
    (["extra words", "-i"], "give only the model"),
])
def test_bad_interactive_input_is_one_line(args: list[str], message: str, tiny_code2_model: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    code, out, err = _run(["code2", "translate", str(tiny_code2_model), *args], BLOCKS[1], monkeypatch, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
