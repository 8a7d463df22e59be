"""Data generator: the thesis design, the full preset's coverage, determinism and files."""

from __future__ import annotations

import collections
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylm.errors import TinyLMError
from tinylm.tasks.code2 import isa, templates
from tinylm.tasks.code2.assembler import assemble
from tinylm.tasks.code2.emulator import Emulator
from tinylm.tasks.code2.generator import (
    BLOCK_WEIGHTS,
    _constant_lines,
    generate_dataset,
    generate_examples,
    split_examples,
)
from tinylm.tasks.code2.validate import is_valid_line, syntax_check


@pytest.fixture(scope="module")
def thesis():
    return generate_examples("thesis", 3000, seed=42)


@pytest.fixture(scope="module")
def full():
    return generate_examples("full", 3000, seed=42)


def test_deterministic_for_a_seed():
    a = generate_examples("thesis", 200, seed=1)
    assert a == generate_examples("thesis", 200, seed=1)
    assert a != generate_examples("thesis", 200, seed=2)
    assert generate_examples("full", 100, seed=1) == generate_examples("full", 100, seed=1)


def test_thesis_lines_are_aligned_and_valid(thesis):
    for ex in thesis:
        inputs, outputs = ex.input.split("\n"), ex.output.split("\n")
        assert len(inputs) == len(outputs) == ex.meta["n_lines"]
        assert all(is_valid_line(o, "thesis") for o in outputs), ex.output
        for out, kind, errs, inst in zip(outputs, ex.meta["error_kinds"], ex.meta["errors"], ex.meta["instructions"]):
            assert out.startswith("Error: ") == bool(errs) == (kind is not None)
            assert out.startswith("Error: ") or out.split()[0] == inst
            if inst in ("ADDS", "SUBS") and errs:
                assert kind == "reg"
        assert ex.meta["preset"] == "thesis"


def test_thesis_design_figures(thesis):
    lengths = collections.Counter(ex.meta["n_lines"] for ex in thesis)
    assert set(lengths) <= set(range(1, 12))
    total = sum(BLOCK_WEIGHTS)
    for n, w in enumerate(BLOCK_WEIGHTS, start=1):
        assert abs(lengths[n] / len(thesis) - w / total) < 0.03, (n, lengths[n])
    lines = [e for ex in thesis for e in ex.meta["errors"]]
    assert 0.18 < sum(bool(e) for e in lines) / len(lines) < 0.22
    kinds = collections.Counter(i for ex in thesis for i in ex.meta["instructions"])
    assert set(kinds) == {"LD", "ST", "ADDS", "SUBS"}
    assert max(kinds.values()) / min(kinds.values()) < 1.15
    codes = {c for ex in thesis for e in ex.meta["errors"] for c in e}
    assert codes == {"register_empty", "register_invalid", "register_malformed", "address_empty",
                     "address_non_hex", "address_too_long"}  # fmt: skip
    input_lines = [ln for ex in thesis for ln in ex.input.split("\n")]
    assert any(ln.isupper() for ln in input_lines) and any(ln == ln.lower() for ln in input_lines)
    assert any(ln == ln.title() and ln != ln.lower() for ln in input_lines)


def test_thesis_templates_count():
    assert all(len(t) >= 9 for t in templates.THESIS.values())


def test_subtraction_follows_the_spanish(thesis):
    """ "sustrae X de Y" and "resta X a Y" are Y - X; "Y menos X" too [spec decision]."""
    patterns = [
        (re.compile(r"^sustrae r(\w) de r(\w) y pon el resultado en r(\w)$", re.I), (3, 2, 1)),
        (re.compile(r"^resta r(\w) a r(\w) y almacena el resultado en r(\w)$", re.I), (3, 2, 1)),
        (re.compile(r"^calcula r(\w) menos r(\w) y guarda en r(\w)$", re.I), (3, 1, 2)),
    ]
    seen = 0
    for ex in thesis:
        for text, out in zip(ex.input.split("\n"), ex.output.split("\n")):
            for pattern, (d, s, t) in patterns:
                m = pattern.match(text)
                if m and not out.startswith("Error"):
                    regs = [m.group(k).upper() for k in (d, s, t)]
                    assert out == f"SUBS r{regs[0]},r{regs[1]},r{regs[2]}", (text, out)
                    seen += 1
    assert seen > 20


def test_thesis_addresses_split_into_page_and_offset(thesis):
    pattern = re.compile(r"^lee (?:la dirección )?([0-9a-f]{1,4}) y almacénalo en r(\w)$", re.I)
    seen = 0
    for ex in thesis:
        for text, out in zip(ex.input.split("\n"), ex.output.split("\n")):
            m = pattern.match(text)
            if m and not out.startswith("Error"):
                addr = int(m.group(1), 16)
                assert out == f"LD r{m.group(2).upper()},[rD+H'{addr & 0xFF:02X}'] ; rD = {addr >> 8:02X}00"
                seen += 1
    assert seen > 5


def test_unique_and_split_without_overlap(thesis):
    keys = [ex.input + "|" + ex.output for ex in thesis]
    assert len(set(keys)) == len(keys)
    parts = split_examples(thesis)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [2100, 600, 300]
    sets = [{ex.input + "|" + ex.output for ex in parts[k]} for k in ("train", "valid", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_default_size_splits_like_the_thesis():
    parts = split_examples(list(range(36_000)))
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [25_200, 7_200, 3_600]


def test_full_outputs_assemble_and_cover_the_isa(full):
    mnemonics = collections.Counter()
    for ex in full:
        assert not syntax_check(ex.output, "full"), ex.output
        assemble(ex.output)
        assert sum(ex.meta["spans"]) == len(ex.output.split("\n"))
        assert len(ex.input.split("\n")) == ex.meta["n_lines"]
        mnemonics.update(ln.split()[0] for ln in ex.output.split("\n") if not ln.endswith(":"))
    assert set(mnemonics) == set(isa.MNEMONICS)


def test_full_wording_variety(full):
    text = "\n".join(ex.input for ex in full)
    assert re.search(r"0x[0-9A-F]+", text, re.I) and re.search(r"H'[0-9A-F]+'", text, re.I)
    assert re.search(r"\b\d{3,5}\b", text)
    assert "dirección" in text and "direccion" in text.lower()  # with and without accents
    assert any(ln.isupper() for ln in text.split("\n"))
    idioms = {k for ex in full for k in ex.meta["instructions"]}
    assert {"LLI+LHI", "IN+OUT", "NOT", "AND", "SHL*n", "SHR*n", "label", "BZ->label", "CALLR->label"} <= idioms


def test_at_least_ten_phrasings_per_instruction():
    t = templates
    per_instruction = {
        "LD": t.THESIS_LD + t.LD_REL, "ST": t.THESIS_ST + t.ST_REL, "LLI": t.CONST + t.LLI, "LHI": t.LHI,
        "IN": t.IN, "OUT": t.OUT, "ADDS": t.ADDS, "SUBS": t.SUBS, "NAND": t.NAND, "SHL": t.SHL, "SHR": t.SHR,
        "SHRA": t.SHRA, "B": t.BRANCH + t.BRANCH_IF, "CALL": t.CALL + t.CALL_IF, "RET": t.RET, "HALT": t.HALT,
    }  # fmt: skip
    assert len(per_instruction) == len(isa.BY_OPCODE)
    for name, phrasings in per_instruction.items():
        assert len(set(phrasings)) >= 10, name


@given(st.integers(0, 15), st.integers(0, 0xFFFF))
def test_constant_idiom_loads_the_value(reg, value):
    lines = _constant_lines(reg, value)
    assert len(lines) == (1 if value < 256 else 2)
    emu = Emulator(assemble("\n".join(lines + ["HALT"])), registers=[0xFFFF] * 16)
    assert emu.run().ok and emu.regs[reg] == value


def test_generate_dataset_writes_jsonl_splits(tmp_path):
    manifest = generate_dataset(tmp_path / "d", preset="thesis", n=100, seed=3)
    assert manifest["splits"] == {"train": 70, "valid": 20, "test": 10}
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["n"] == 100
    rows = [json.loads(ln) for ln in (tmp_path / "d" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 70 and set(rows[0]) == {"input", "output", "meta"}
    assert rows[0]["input"] == generate_examples("thesis", 100, seed=3)[0].input


def test_bad_arguments():
    with pytest.raises(TinyLMError, match="unknown preset"):
        generate_examples("nope", 10)
    with pytest.raises(TinyLMError, match="at least 1"):
        generate_examples("thesis", 0)
