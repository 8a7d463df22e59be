"""The protocol runner, the table, training and the CLI, on tiny models (seconds, not minutes)."""

from __future__ import annotations

import json

import pytest
import torch

from tinylm.api import LanguageModel
from tinylm.config import ModelConfig
from tinylm.model import GPT
from tinylm.tasks.arithmetic.data import Problem, all_problems, make_pairs
from tinylm.tasks.arithmetic.protocol import STUDY_TABLES, fixed_seeds, markdown, run_heldout, run_protocol
from tinylm.tokenizers import train_tokenizer

pytest.importorskip("lark")
pytest.importorskip("sympy")


@pytest.fixture(scope="module")
def random_lm() -> LanguageModel:
    pairs = make_pairs(all_problems(20), 300, seed=0)
    tok = train_tokenizer("char", [f"{p['input']}\n{p['output']}" for p in pairs])
    torch.manual_seed(0)
    return LanguageModel(GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=96, n_layer=1, n_head=2, n_embd=32)).eval(), tok)


def test_fixed_seeds_are_fixed_and_distinct():
    seeds = fixed_seeds()
    assert seeds == fixed_seeds() and len(set(seeds)) == 100 and all(1 <= s <= 10**12 for s in seeds)


def test_protocol_grid_scores_and_grammar_mode(random_lm):
    result = run_protocol(random_lm, seeds=fixed_seeds(6), max_tokens=(20, 50))
    cells = {(c["mode"], c["max_tokens"]): c for c in result["cells"]}
    assert set(cells) == {("free", 20), ("free", 50), ("grammar", 20), ("grammar", 50)}
    assert all(c["requests"] == 6 for c in cells.values())
    assert result["target"] == 135 and result["prompt"] == Problem(9, "*", 15).prompt
    # An untrained model writes noise unless the grammar holds it: every finished constrained
    # sample parses (Lark), and the SymPy filter never refuses a grammatical text.
    for sample in result["samples"]:
        if sample["mode"] == "grammar" and sample["finish_reason"] == "stop":
            assert sample["syntactic"] and not sample["sympy_refused"]
    free = [s for s in result["samples"] if s["mode"] == "free"]
    assert sum(s["syntactic"] for s in free) < len(free)
    table = markdown(result, run_heldout(random_lm, all_problems(5)[:4], max_tokens=20))
    assert "| 20 | GBD (grammar) |" in table and "86 % / 86 % / 7.50 s" in table  # the study's 8B cell at 50
    assert "Held-out problems (4 test problems" in table


def test_study_table_is_complete():
    for model in STUDY_TABLES.values():
        assert set(model) == {(m, t) for m in ("free", "grammar") for t in (50, 100, 200)}


def test_train_writes_a_loadable_checkpoint(tmp_path):
    import tinylm
    from tinylm.tasks.arithmetic.train import train
    from tinylm.training.recipe import load_recipe

    recipe = load_recipe("arithmetic").replace(
        model={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 96},
        train=dict(max_steps=3, batch_size=8, warmup_steps=1, eval_every=0, eval_batches=2, log_every=1),
        settings=dict(n_train=200, n_val=64, max_operand=6))
    summary = train(recipe, tmp_path / "run", quiet=True)
    lm = tinylm.load(summary.model_dir)
    assert lm.model.config.extra["arithmetic"] == {"max_operand": 6, "seed": 0}
    assert lm.prompt_format.name == "paired"
    assert summary.steps == 3 and (tmp_path / "run" / "data" / "test.jsonl").is_file()


def test_cli_check_and_gen_data(tmp_path, capsys):
    from tinylm.tasks.arithmetic.__main__ import main

    assert main(["check", "(9*15)==(9*10+9*5)", "--target", "135"]) == 0
    assert json.loads(capsys.readouterr().out) == {"syntactic": True, "sympy": True, "correct": True,
                                                  "sympy_refused": False}
    assert main(["gen-data", "--out", str(tmp_path), "--n", "50", "--max-operand", "5"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and {"input", "output", "meta"} <= set(rows[0])
    assert main(["protocol", str(tmp_path / "missing")]) == 2
    assert "tinylm: error:" in capsys.readouterr().err
