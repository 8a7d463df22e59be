"""`tinylm code2 ...` in-process (exit codes, output) and once through the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinylm.cli.main import main

SPEC_LINES = """ADDS rD,r1,r2
LD rF,[rD+H'08'] ; rD = 0000
ST [rD+H'45'],r3 ; rD = DA00
LLI r1,H'2A'
IN r2,IP05
OUT OP01,r2
SHL r3
LLI rD,lo(end)
BZ
CALLR
end:
HALT
"""

THESIS_BLOCK = """Error: dirección vacía (ambigua)
SUBS rD,r2,r2
SUBS rD,r7,r9
LD rF,[rD+H'08'] ; rD = 0000
LD rA,[rD+H'01'] ; rD = 0000
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.s"
    path.write_text(SPEC_LINES, encoding="utf-8")
    return path


def test_asm_disasm_round_trip(tmp_path, spec_file, capsys):
    hex_path = tmp_path / "spec.hex"
    assert main(["code2", "asm", str(spec_file), "-o", str(hex_path)]) == 0
    words = [ln for ln in hex_path.read_text().splitlines() if not ln.startswith(("//", "@"))]
    assert words[:7] == ["6D12", "0F08", "1345", "212A", "4205", "5201", "9300"]
    capsys.readouterr()
    assert main(["code2", "disasm", str(hex_path)]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[:3] == ["ADDS rD,r1,r2", "LD rF,[rD+H'08']", "ST [rD+H'45'],r3"]
    again = tmp_path / "again.s"
    again.write_text(listing, encoding="utf-8")
    assert main(["code2", "asm", str(again)]) == 0
    assert capsys.readouterr().out == hex_path.read_text()


def test_asm_thesis_mode_and_stdout(spec_file, capsys):
    assert main(["code2", "asm", str(spec_file), "--thesis"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2:6] == ["6D12", "2D00", "3D00", "0F08"]  # rD <- 0000 before the LD


def test_asm_errors_list_every_diagnostic_then_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.s"
    bad.write_text("ADDS rD,r1\nLLI r1,999\nHALT\n", encoding="utf-8")
    assert main(["code2", "asm", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{bad}:1:11: expected ',' between the operands of ADDS, found end of line"
    assert err[1].startswith(f"{bad}:2:8: expected an 8-bit constant")
    assert err[-1] == f"tinylm: error: {bad}: 2 assembly errors"


def test_thesis_block_with_an_error_line(tmp_path, capsys):
    block = tmp_path / "block.txt"
    block.write_text(THESIS_BLOCK, encoding="utf-8")
    assert main(["code2", "check", str(block)]) == 0
    assert "5 lines, all valid thesis output" in capsys.readouterr().out
    assert main(["code2", "asm", str(block), "--thesis"]) == 2
    assert ":1:1: an 'Error: ...' line reports a faulty description" in capsys.readouterr().err
    block.write_text(THESIS_BLOCK.replace("vacía", "vaca"), encoding="utf-8")
    assert main(["code2", "check", str(block)]) == 2
    assert ":1:1: not a canonical error line" in capsys.readouterr().err


def test_run_with_inputs_and_trace(tmp_path, capsys):
    prog = tmp_path / "echo.s"
    prog.write_text("IN r2,IP05\nIN r3,IP05\nOUT OP01,r2\nOUT OP01,r3\nHALT\n", encoding="utf-8")
    assert main(["code2", "run", str(prog), "--input", "7,H'2A'", "--trace"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "0000  4205  IN r2,IP05           r2=0007"
    assert "halted at 0004; 5 steps, 38 cycles" in out
    assert out[-1] == "outputs: OP01=0007 OP01=002A"


def test_run_a_hex_file(tmp_path, capsys):
    hex_path = tmp_path / "p.hex"
    hex_path.write_text("@0000\n2105\nF000\n", encoding="utf-8")
    assert main(["code2", "run", str(hex_path)]) == 0
    assert "r1=0005" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["code2", "run", "{d}/loop.s", "--max-steps", "50"], "step limit of 50"),
        (["code2", "run", "{d}/echo.s"], "no input left for IP05"),
        (["code2", "run", "{d}/echo.s", "--input", "seven"], "--input: expected a number"),
        (["code2", "asm", "{d}/missing.s"], "file not found"),
        (["code2", "disasm", "{d}/bad.hex"], "line 2: expected a hex word"),
        (["code2", "run", "{d}/loop.s", "--max-steps", "0"], "--max-steps must be at least 1"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "loop.s").write_text("loop: LLI rD,lo(loop)\nBR\n", encoding="utf-8")
    (tmp_path / "echo.s").write_text("IN r2,IP05\nHALT\n", encoding="utf-8")
    (tmp_path / "bad.hex").write_text("@0000\nXYZ\n", encoding="utf-8")
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tinylm: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_gen_data(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["code2", "gen-data", "--preset", "full", "--out", str(out), "--n", "50", "--seed", "3"]) == 0
    assert "wrote 50 full examples (templates style, seed 3)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.jsonl", "train.jsonl", "valid.jsonl"]
    row = json.loads((out / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(row) == {"input", "output", "meta"}
    broad = tmp_path / "broad"
    assert main(["code2", "gen-data", "--preset", "thesis", "--style", "broad", "--out", str(broad), "--n", "40"]) == 0
    assert "wrote 40 thesis examples (broad style, seed 42)" in capsys.readouterr().out
    assert json.loads((broad / "manifest.json").read_text(encoding="utf-8"))["style"] == "broad"


def test_grammar_command(tmp_path, capsys):
    assert main(["code2", "grammar", "--variant", "full"]) == 0
    assert "root ::= line" in capsys.readouterr().out
    out = tmp_path / "thesis.lark"
    assert main(["code2", "grammar", "--lark", "-o", str(out)]) == 0
    assert "root : line" in out.read_text(encoding="utf-8")


def test_code2_without_subcommand_prints_help(capsys):
    assert main(["code2"]) == 2
    assert "gen-data" in capsys.readouterr().out


def test_console_script(tmp_path, spec_file):
    script = Path(sys.executable).parent / "tinylm"
    if not script.exists():
        pytest.skip("the tinylm console script is not installed")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([str(script), "code2", "run", str(spec_file)], capture_output=True, text=True, env=env)
    # IN r2,IP05 has no input: a clean one-line error, exit 2.
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("tinylm: error: ")
    done = subprocess.run(
        [str(script), "code2", "run", str(spec_file), "--input", "9"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "outputs: OP01=0009" in done.stdout
