"""The educational-GPT and LSTM presets, the ablation's variant recipes, and the ablation
benchmark's bad input (one line, before anything trains)."""

import pytest

from tinylm.cli import main as cli
from tinylm.errors import TinyLMError
from tinylm.model import LSTMLM, build_model
from tinylm.presets import ABLATION_VARIANTS, RECIPES, model_config
from tinylm.training.recipe import load_recipe


def test_educational_gpt_has_the_studys_shape_and_size():
    cfg = model_config("educational-gpt", vocab_size=8000)
    assert (cfg.n_embd, cfg.block_size, cfg.n_layer, cfg.hidden_dim, cfg.n_head, cfg.ffn) == (256, 128, 3, 1024, 8, "mlp3")
    # The digest's derived count: ~9.65M (untied head, biases).
    assert round(build_model(cfg).num_params() / 1e6, 2) == 9.65
    recipe = load_recipe("educational-gpt")
    assert (recipe.tokenizer, recipe.vocab_size, recipe.train["lr"], recipe.train["betas"]) == ("sentencepiece", 8000, 1.5e-3, [0.9, 0.98])


@pytest.mark.parametrize("variant", [v for v in ABLATION_VARIANTS if v != "baseline"])
def test_every_variant_is_a_recipe_that_builds(variant):
    recipe = load_recipe(f"shakespeare-char-{variant}")
    model_changes, train_changes = ABLATION_VARIANTS[variant]
    assert all(recipe.model[k] == v for k, v in model_changes.items())
    assert all(recipe.train[k] == v for k, v in train_changes.items())
    model = build_model(model_config(recipe.preset, **{**recipe.model, "vocab_size": 65}))
    assert isinstance(model, LSTMLM) == (variant == "lstm")


def test_lstm_recipes_use_the_lstm():
    for name in ("lstm-shakespeare-char", "lstm-educational"):
        recipe = load_recipe(name)
        assert isinstance(build_model(model_config(recipe.preset, vocab_size=300)), LSTMLM)
    assert RECIPES["lstm-shakespeare-char"]["train"] == RECIPES["shakespeare-char"]["train"]


@pytest.mark.parametrize("argv, words", [
    (["bench", "ablation", "--variants", "colaa"], "unknown ablation variant"),
    (["bench", "ablation", "--budget-s", "0"], "must be positive"),
    (["bench", "decode", "--budget-s", "5"], "does not take --budget-s"),
    (["bench", "train-shakespeare-char", "--recipes", "shakespeare-char", "code2-thesis"], "not a character-level"),
    (["bench", "train-shakespeare-char", "--recipes", "no-such-recipe"], "no-such-recipe"),
    (["bench", "ablation", "--recipes", "shakespeare-char"], "does not take --recipes"),
])
def test_bench_ablation_bad_input_is_one_line(argv, words, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_speedrun_recipe_is_the_fast_recipe_with_muon_qk_norm_and_twice_the_lr():
    fast, speedrun = load_recipe("shakespeare-char"), load_recipe("shakespeare-char-speedrun")
    assert (speedrun.preset, speedrun.tokenizer, speedrun.model) == (fast.preset, "char", {"qk_norm": True})
    assert speedrun.train == {**fast.train, "optimizer": "muon", "lr": 2 * fast.train["lr"]}
