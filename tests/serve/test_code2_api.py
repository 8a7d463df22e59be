"""/v1/code2/translate (the CODE-2 plug-in's route): the offline translation, assembled and run."""

from __future__ import annotations

import httpx
import pytest

import tinylm
from tinylm.tasks.code2.emulator import Emulator
from tinylm.tasks.code2.assembler import assemble
from tinylm.tasks.code2.translate import run_translation, translate


def run_answer(assembly: str) -> dict:
    return run_translation(assembly, "thesis").to_dict()


def test_a_known_program_runs_and_reports_registers_and_memory():
    program = "ADDS r3,r1,r2\nST [rD+H'12'],r3 ; rD = 0100\nError: registro 'Z' inválido"
    answer = run_answer(program)
    assert answer["valid"] and answer["assembles"] and answer["status"] == "halted"
    assert answer["registers"]["r3"] == 3 and answer["registers"]["r1"] == 1
    assert answer["memory"] == {"0112": 3}
    assert answer["error_lines"] == ["Error: registro 'Z' inválido"]
    # Independently: the same code run by hand on the emulator (thesis mode loads rD from the comment).
    code = "ADDS r3,r1,r2\nST [rD+H'12'],r3 ; rD = 0100\nHALT"
    emu = Emulator(assemble(code, origin=0x8000, thesis=True), registers=tuple(range(16)))
    emu.run()
    assert list(answer["registers"].values()) == list(emu.regs) and int(emu.memory[0x0112]) == 3


def test_a_bad_program_is_an_answer_not_an_error():
    answer = run_answer("ADDS r3,r1\nfoo")
    assert not answer["valid"] and not answer["assembles"] and answer["status"] == "not assembled"
    assert answer["problems"] and answer["message"]


@pytest.mark.parametrize("text", ["Suma r1 y r2 y guarda el resultado en r3",
                                  "Lee DAC1 y almacénalo en el registro 0\nCOPIA LO QUE HAY EN DF216 A RD"])
def test_translate_endpoint_equals_the_offline_translator(code2_server, code2_checkpoint, text):
    r = httpx.post(code2_server.url + "/v1/code2/translate", json={"text": text}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    lm = tinylm.load(code2_checkpoint)
    # Line by line: offline, a batch's length limit follows its longest prompt, while each
    # server row has its own (this random model never stops on its own, so limits show).
    assert body["assembly"] == "\n".join(translate(lm, line) for line in text.split("\n"))
    expected = run_answer(body["assembly"])
    assert {k: body[k] for k in expected} == expected
    assert len(body["registers"]) == 16 and body["preset"] == "thesis"


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   \n  "}, {"text": 5}, {"text": "a", "x": 1},
                                  {"text": "a", "max_tokens": 0}])
def test_translate_rejects_bad_requests(code2_server, body):
    r = httpx.post(code2_server.url + "/v1/code2/translate", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["message"]
