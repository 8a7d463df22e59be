"""Hex hints: decimal numerals get their hex value beside them, everything else is untouched."""

from __future__ import annotations

import re

from tinylm.tasks.code2.numerals import add_hex_hints
from tinylm.tasks.code2.task import Code2Task, create, line_pairs, load_examples


def test_decimal_numerals_get_their_hex_value():
    assert add_hex_hints("Asigna 12728 A R4") == "Asigna 12728 {31B8} A R4"
    assert add_hex_hints("el puerto de entrada 20") == "el puerto de entrada 20 {14}"
    assert add_hex_hints("con 0 y 65535") == "con 0 {00} y 65535 {FFFF}"


def test_registers_hex_literals_and_large_numbers_are_left_alone():
    for text in ("suma r12 y r3", "carga 0x1A", "pon 3ch en r1", "H'05'", "vale 70000", "Lee DAC1"):
        assert add_hex_hints(text) == text


def test_hints_agree_with_the_full_presets_answers():
    # Where a decimal constant becomes an LLI/LHI pair, the hint holds exactly those bytes.
    checked = 0
    for p in line_pairs(load_examples("train", "full", n=3000)):
        m = re.fullmatch(r"LLI (r\w),H'(\w\w)'\nLHI \1,H'(\w\w)'", p["output"])
        hints = re.findall(r"\{(\w{4})\}", add_hex_hints(p["input"]))
        if m and len(hints) == 1 and not re.search(r"0x|h\b|H'", p["input"], re.I):
            assert hints[0] == m.group(3) + m.group(2), p
            checked += 1
    assert checked > 50


def test_the_task_prompts_with_hints_only_when_the_model_was_trained_with_them():
    text = "Asigna 12728 A R4\nPara el procesador"
    assert Code2Task("full").prompts(text) == ["Asigna 12728 A R4", "Para el procesador"]
    hinted = create({"code2": {"data_preset": "full", "unit": "line", "hex_hints": True}}, None, None)
    assert hinted.prompts(text) == ["Asigna 12728 {31B8} A R4", "Para el procesador"]
