"""Recipes: one loader for the hub's, the tasks' and files; every key checked; `tinylm train --recipe`
honours every key (for a task recipe, through the task's own training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinylm.cli.main import main
from tinylm.errors import TinyLMError
from tinylm.training.recipe import Recipe, load_recipe, named_recipes


def test_every_named_recipe_loads_and_round_trips_through_a_file(tmp_path):
    names = list(named_recipes())
    assert {"shakespeare-char", "nanogpt-shakespeare-char", "code2-thesis", "code2-full", "arithmetic"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(recipe.to_dict()), encoding="utf-8")
        assert load_recipe(str(path)) == recipe


def test_where_recipes_live():
    where = {name: place for name, (place, _) in named_recipes().items()}
    assert where["shakespeare-char"] == "tinylm.presets.RECIPES"
    assert where["code2-thesis"] == where["code2-full"] == "task code2" and where["arithmetic"] == "task arithmetic"
    assert load_recipe("code2-thesis").vocab_size == 512 and load_recipe("code2-thesis").settings.error_weight == 2.0


def test_a_toml_recipe_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('preset = "llama-style-nano"\ntokenizer = "bpe"\nvocab_size = 300\n'
                    '[model]\nn_layer = 1\n[train]\nmax_steps = 5\nlr = 0.002\n', encoding="utf-8")
    recipe = load_recipe(str(path))
    assert (recipe.name, recipe.vocab_size, recipe.model, recipe.train) == (
        "small", 300, {"n_layer": 1}, {"max_steps": 5, "lr": 0.002})
    assert recipe.task is None


@pytest.mark.parametrize("table, message", [
    ({"preset": "gpt2-style-nano", "colour": "red"}, "unknown recipe key(s) colour"),
    ({"model": {"n_layers": 2}}, "unknown model key(s) n_layers"),
    ({"model": {"vocab_size": 99}}, "vocab_size comes from the tokenizer"),
    ({"train": {"steps": 5}}, "unknown train key(s) steps"),
    ({"train": {"lr": -1}}, "lr must be"),
    ({"tokenizer": "word"}, "tokenizer 'word'"),
    ({"tokenizer": "char", "vocab_size": 300}, "vocab_size is for a bpe or sentencepiece tokenizer"),
    ({"preset": "gpt5-huge"}, "unknown preset"),
    ({"model": {"n_head": 5}}, "n_embd=128 is not divisible"),
    ({"task": {"name": "chess"}}, "unknown task 'chess'"),
    ({"task": {"name": "code2", "data_preset": "poems"}}, "data_preset 'poems'"),
    ({"task": {"name": "arithmetic", "max_operands": 9}}, "unknown task arithmetic key(s) max_operands"),
    ({"task": "code2"}, "task must be a table"),
])
def test_every_key_is_checked_in_one_line(table, message):
    with pytest.raises(TinyLMError, match=r"^recipe bad: .*" + message.replace("(", r"\(").replace(")", r"\)")) as e:
        Recipe.from_dict("bad", table)
    assert "\n" not in str(e.value)


def test_unknown_names_and_broken_files(tmp_path):
    with pytest.raises(TinyLMError, match="unknown recipe 'nope'; choose one of: .*code2-thesis.*FILE.json"):
        load_recipe("nope")
    with pytest.raises(TinyLMError, match="recipe file not found"):
        load_recipe(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(TinyLMError, match="not valid JSON"):
        load_recipe(str(tmp_path / "bad.json"))
    (tmp_path / "bad.toml").write_text("x = ", encoding="utf-8")
    with pytest.raises(TinyLMError, match="not valid TOML"):
        load_recipe(str(tmp_path / "bad.toml"))


def test_train_recipe_of_a_task_honours_every_key(tmp_path, monkeypatch, capsys):
    """`tinylm train --recipe code2-thesis` once dropped the recipe's vocab_size and task: now it runs
    the CODE-2 training with all of it (here on a tiny copy of the recipe)."""
    from tinylm.tasks.code2.recipes import RECIPES

    from tiny_code2 import tiny_code2_recipe

    tiny = tiny_code2_recipe().replace(tokenizer="bpe", vocab_size=300, train={"max_steps": 3},
                                       settings={"error_weight": 3.0}).to_dict()
    monkeypatch.setitem(RECIPES, "code2-thesis", {k: v for k, v in tiny.items() if k != "name"})
    out = tmp_path / "run"
    assert main(["train", "--recipe", "code2-thesis", "--out", str(out), "--quiet", "--max-steps", "2"]) == 0
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["vocab_size"] == 300 and config["n_layer"] == 1  # tokenizer and model keys
    assert config["extra"]["task"] == "code2" and config["extra"]["prompt_format"] == "paired"
    assert config["extra"]["code2"]["n"] == 60 and config["extra"]["code2"]["recipe"] == "code2-thesis"
    saved = json.loads((out / "recipe.json").read_text())
    assert saved["task"]["error_weight"] == 3.0 and saved["train"]["max_steps"] == 2  # the flag won
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == 2
    assert "model: " in capsys.readouterr().out


def test_a_task_recipe_takes_no_data_flags_and_its_runs_do_not_resume(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc" * 100, encoding="utf-8")
    assert main(["train", "--recipe", "code2-thesis", "--data", str(corpus), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinylm: error: recipe code2-thesis trains on the code2 task's own data; drop --data")
    run = tmp_path / "task-run"
    (run / "last").mkdir(parents=True)
    (run / "recipe.json").write_text(json.dumps(load_recipe("arithmetic").to_dict()), encoding="utf-8")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "is a arithmetic run; a task run cannot be resumed" in capsys.readouterr().err


def test_a_text_recipe_from_a_file(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"preset": "llama-style-nano", "tokenizer": "bpe", "vocab_size": 280,
                                  "model": {"n_layer": 1, "block_size": 16},
                                  "train": {"max_steps": 3, "batch_size": 4, "eval_every": 0, "tensorboard": False}}))
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--data", str(corpus), "--out", str(out), "--quiet",
                 "--samples", "0"]) == 0
    config = json.loads((out / "last" / "config.json").read_text())
    assert (config["vocab_size"], config["n_layer"], config["position"]) == (280, 1, "rope")
    assert config["extra"]["prompt_format"] == "plain"
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert Path(json.loads((out / "summary.json").read_text())["model_dir"]) == out / "best"  # lowest val loss
