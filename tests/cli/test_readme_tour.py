"""The newcomer's path: every command of README.md's tour is one the CLI accepts, and the cheap
ones run as written, on tiny models put where the tour expects them (runs/shk/best,
runs/code2/model) in a scratch folder. The README's Python example runs there too."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from tinylm.cli.main import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"
# What is too slow for a test (training, the full dataset or test split, a server that
# never returns, an interactive loop); the parser still checks each of them.
NOT_RUN = {"train", "bench", "serve", "eval-task", "compare-grammar", "gen-data", "-i", "distill", "finetune", "tune",
           "pipeline"}
PROGRAM = "LLI r1,H'05'\nADDS r2,r1,r1\nHALT\n"


def readme_block(heading: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def tour_commands() -> list[list[str]]:
    commands = []
    for line in readme_block("## A tour", "bash").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            commands.append(words[:cut])
            words = words[cut + 1 :]
    return commands


COMMANDS = tour_commands()


def test_the_tour_is_read():
    verbs = [c[1] for c in COMMANDS]
    assert len(COMMANDS) >= 15 and {"train", "generate", "code2", "serve", "eval-task"} <= set(verbs)
    assert all(c[0] == "tinylm" for c in COMMANDS)


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[1:3]) for c in COMMANDS])
def test_every_tour_command_parses(argv):
    args = build_parser().parse_args(argv[1:])  # argparse exits (SystemExit) on anything it refuses
    assert callable(args.func)


@pytest.fixture(scope="module")
def tour_folder(tmp_path_factory, tiny_code2_model):
    """A scratch folder laid out as the tour leaves it: a text model, the CODE-2 model, the input files."""
    from tinylm.checkpoint import save_checkpoint
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tokenizers import train_tokenizer

    root = tmp_path_factory.mktemp("tour")
    text = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: Ay me!\n" * 20
    torch.manual_seed(0)
    tok = train_tokenizer("char", [text + '{}":,0123456789'])
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16, position="rope",
                            norm="rmsnorm", ffn="swiglu", bias=False))  # llama-style: the GGUF export takes it
    save_checkpoint(root / "runs/shk/best", model, tok)
    shutil.copytree(tiny_code2_model, root / "runs/code2/model")
    (root / "some.txt").write_text(text, encoding="utf-8")
    (root / "prog.asm").write_text(PROGRAM, encoding="utf-8")
    (root / "schema.json").write_text('{"type": "object", "properties": {"n": {"type": "integer"}}}', encoding="utf-8")
    return root


RUN = [c for c in COMMANDS if not NOT_RUN & set(c[1:3]) and "-i" not in c]


@pytest.mark.parametrize("argv", RUN, ids=[" ".join(c[1:3]) for c in RUN])
def test_cheap_tour_commands_run_as_written(argv, tour_folder, monkeypatch, capsys):
    monkeypatch.chdir(tour_folder)
    assert main(argv[1:]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if argv[1:3] == ["code2", "run"]:
        assert "r2=000A" in out  # 5 + 5: the program ran
    if argv[1:3] == ["code2", "translate"]:
        assert "; emulator" in out


def test_the_python_example_runs(tour_folder, monkeypatch, capsys):
    import tinylm

    monkeypatch.chdir(tour_folder)
    exec(compile(readme_block("Python:", "python"), "README.md", "exec"), {})
    seeded = tinylm.load("runs/shk/best").generate("ROMEO:", max_new_tokens=100, temperature=0.8, seed=1)
    out = capsys.readouterr().out
    assert out.startswith(seeded + "\n") and len(out) > len(seeded) + 1  # then the streamed pieces


def test_after_the_demo_ones_own_sentence_is_one_printed_command(tmp_path, monkeypatch, capsys):
    """`tinylm demo` ends with the exact command that translates one's own sentence; it runs as printed."""
    from tinylm.tasks.code2.recipes import RECIPES

    from tiny_code2 import tiny_code2_recipe

    tiny = tiny_code2_recipe().to_dict()
    monkeypatch.setitem(RECIPES, "code2-thesis", {k: v for k, v in tiny.items() if k != "name"})
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--budget-minutes", "1", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "| measure | test split (templates) | hand-written set |" in out  # both, side by side
    assert os.path.isfile("runs/demo/eval-handwritten/report.json")
    command = out.rstrip().splitlines()[-1]
    argv = shlex.split(command)
    assert argv[:3] == ["tinylm", "code2", "translate"] and Path(argv[3]) == Path("runs/demo/train/model")
    assert main(argv[1:]) == 0
    assert "; emulator" in capsys.readouterr().out
    # Without a model, translate finds the demo's.
    assert main(["code2", "translate", "Suma r1 y r2 y guarda el resultado en r3"]) == 0
    assert capsys.readouterr().out.strip()
    assert os.path.isdir("runs/demo/train/model")
