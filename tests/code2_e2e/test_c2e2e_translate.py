"""`tinylm code2 translate` on a tiny saved model, and running translations on the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

import tinylm
from tinylm.cli.main import main
from tinylm.errors import TinyLMError
from tinylm.evaluation.harness import predict
from tinylm.generation import GenerationConfig
from tinylm.tasks.code2.translate import model_task, run_translation, translate, translate_many

TEXT = "Suma r1 y r2 y guarda el resultado en r3"


def test_translate_command_prints_assembly_and_registers(tiny_code2_model: Path, capsys: pytest.CaptureFixture):
    assert main(["code2", "translate", TEXT, "Lee DAC1 y almacénalo en el registro 0",
                 "--model", str(tiny_code2_model), "--run"]) == 0
    out = capsys.readouterr().out
    assert "; emulator" in out


def test_translate_matches_the_harness(tiny_code2_model: Path):
    lm = tinylm.load(tiny_code2_model)
    config = GenerationConfig(temperature=0, max_new_tokens=10)
    texts = [TEXT, "Suma r1 y r2 y guarda el resultado en r3\n  \nresta r1 a r2 y guarda en r4"]
    task = model_task(lm)
    assert translate_many(lm, texts, config) == predict(lm, task, texts, config)[0]
    assert translate(lm, texts[1], config).count("\n") >= 1  # two lines in, (at least) two answers out
    with pytest.raises(TinyLMError, match="empty"):
        translate(lm, " \n ", config)


def test_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["code2", "translate", TEXT, "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model at" in err


def test_a_model_of_another_task_is_refused(tiny_code2_model: Path):
    lm = tinylm.load(tiny_code2_model)
    lm.model.config.extra = {}
    with pytest.raises(TinyLMError, match="not a CODE-2 model"):
        model_task(lm)


def test_run_translation_uses_the_thesis_format_and_skips_error_lines():
    run = run_translation("ADDS r3,r1,r2\nError: registro 'G' inválido\nLD r0,[rD+H'C1'] ; rD = DA00")
    assert run.status == "halted" and run.error_lines == ["Error: registro 'G' inválido"]
    assert run.registers[3] == 1 + 2  # r<i> starts at i
    assert run.registers[0xD] == 0xDA00  # the comment loaded rD before the LD
    assert run.registers[0] == 0  # memory starts zeroed
    bad = run_translation("ADDS r3,r1")
    assert bad.status == "not assembled" and bad.state_text == ""


def test_model_then_text_and_the_older_form_agree(tiny_code2_model: Path, capsys: pytest.CaptureFixture):
    assert main(["code2", "translate", str(tiny_code2_model), TEXT]) == 0
    new = capsys.readouterr().out
    assert main(["code2", "translate", TEXT, "--model", str(tiny_code2_model)]) == 0
    assert capsys.readouterr().out == new == translate(tinylm.load(tiny_code2_model), TEXT) + "\n"
    assert main(["code2", "translate", str(tiny_code2_model)]) == 2
    assert "give the description after the model" in capsys.readouterr().err
    assert main(["code2", "translate", "runs/nowhere/model", TEXT]) == 2
    assert "no model at runs/nowhere/model" in capsys.readouterr().err
