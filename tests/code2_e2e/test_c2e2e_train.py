"""Training pieces: the run folder, bucketed batches, the budget-fitted schedule, recipes, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import tinylm
from tinylm.cli.main import main
from tinylm.data import PairedDataset
from tinylm.errors import TinyLMError
from tinylm.tasks.code2.bucketing import LengthBucketed
from tinylm.tasks.code2.recipes import RECIPES, Code2Settings
from tinylm.tasks.code2.train_cli import resolve_recipe
from tinylm.training.recipe import Recipe, load_recipe
from tinylm.tokenizers import train_tokenizer
from tinylm.training.schedule import FitScheduleToBudget
from tinylm.training.state import Progress


def test_run_folder(tiny_code2_model: Path):
    from tiny_code2 import tiny_code2_recipe

    run = tiny_code2_model.parent
    summary = json.loads((run / "summary.json").read_text())
    steps = tiny_code2_recipe().train["max_steps"]
    assert summary["steps"] == steps and summary["model_dir"] == str(tiny_code2_model)
    assert 0 <= summary["val_line_exact_match"] <= 1
    checks = [json.loads(line) for line in (run / "exact_match.jsonl").read_text().splitlines()]
    assert checks[-1]["step"] == steps
    assert json.loads((tiny_code2_model / "metrics.json").read_text())["step"] == summary["best_step"]
    extra = tinylm.load(tiny_code2_model).model.config.extra
    assert extra["task"] == "code2" and extra["code2"]["unit"] == "line" and extra["code2"]["n"] == 60
    assert json.loads((run / "recipe.json").read_text())["name"] == "tiny"
    # recipe.json is a recipe file: it reads back as the recipe the run was trained with.
    assert load_recipe(str(run / "recipe.json")) == tiny_code2_recipe()
    with pytest.raises(TinyLMError, match="already holds a run"):
        from tinylm.tasks.code2.train import train

        train(tiny_code2_recipe(), run, quiet=True)


def test_bucketed_batches_come_from_one_length_bucket():
    texts = [("x" * n, "y") for n in range(1, 201)]
    tok = train_tokenizer("char", ["xy"])
    data = PairedDataset([{"input": a, "output": b} for a, b in texts], tok, 256)
    bucketed = LengthBucketed(data, batch_size=5, bucket_batches=2)
    assert [len(b) for b in bucketed.buckets] == [10] * 20
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        x, y = bucketed.get_batch(5, g)
        lengths = (x != tok.pad_id).sum(1)
        assert int(lengths.max() - lengths.min()) < 10  # one bucket: lengths within 10 of each other
        seen.update(lengths.tolist())
    assert len(seen) > 150  # every bucket gets drawn


def test_weights_oversample_examples_in_proportion():
    # Two lengths in one bucket; the long examples weigh 3, so they make up 3/4 of the draws.
    pairs = [{"input": "x" * (1 + i % 2), "output": "y"} for i in range(40)]
    tok = train_tokenizer("char", ["xy"])
    data = PairedDataset(pairs, tok, 64)
    weights = [3.0 if len(p["input"]) == 2 else 1.0 for p in pairs]
    bucketed = LengthBucketed(data, batch_size=10, bucket_batches=4, weights=weights)
    short_len = min(len(ids) for ids, _ in data.examples)
    g = torch.Generator().manual_seed(0)
    long = total = 0
    for _ in range(300):
        x, _ = bucketed.get_batch(10, g)
        long += int(((x != tok.pad_id).sum(1) >= short_len).sum())  # x drops the last id of each row
        total += 10
    assert 0.70 < long / total < 0.80
    with pytest.raises(TinyLMError, match="one positive number per example"):
        LengthBucketed(data, batch_size=10, weights=[1.0] * 39)


def test_error_lines_weigh_error_weight_per_problem():
    from tinylm.tasks.code2.train import problems_reported

    assert problems_reported("ADDS r1,r2,r3") == 0
    assert problems_reported("Error: registro 'N' inválido") == 1
    assert problems_reported("Error: registro '181' inválido y registro '61' inválido") == 2
    with pytest.raises(TinyLMError, match="error_weight"):
        Code2Settings(error_weight=0.5)


def test_schedule_is_shortened_to_fit_the_budget():
    fit = FitScheduleToBudget(budget_s=100.0, reserve_s=10.0, max_steps=1000, every=10)
    trainer = SimpleNamespace(progress=Progress(step=20, elapsed_s=30.0), cfg=SimpleNamespace(max_steps=1000))
    fit(trainer, {"step": 20})
    assert trainer.cfg.max_steps == 20 + int(60 / 1.5)  # 1.5 s/step, 60 s left
    trainer.progress.step, trainer.progress.elapsed_s = 25, 35.0
    fit(trainer, {"step": 25})  # not a multiple of `every`: unchanged
    assert trainer.cfg.max_steps == 60
    trainer.progress.step, trainer.progress.elapsed_s = 30, 95.0
    fit(trainer, {"step": 30})  # over budget: stop at the next step
    assert trainer.cfg.max_steps == 31
    fast = SimpleNamespace(progress=Progress(step=20, elapsed_s=1.0), cfg=SimpleNamespace(max_steps=50))
    FitScheduleToBudget(100.0, 10.0, max_steps=50, every=10)(fast, {"step": 20})
    assert fast.cfg.max_steps == 50  # never longer than the recipe


def test_recipes_of_the_task():
    for preset in ("thesis", "full"):
        recipe = load_recipe(f"code2-{preset}")
        assert recipe.task == "code2" and recipe.settings.data_preset == preset
        assert recipe.train["time_budget_s"] <= 15 * 60
    r = resolve_recipe("thesis", None, 2.0, None)
    assert r.train["time_budget_s"] == 120.0 and r.train["max_steps"] == 8000
    r = resolve_recipe("full", None, None, 7)
    assert r.train["time_budget_s"] == 0 and r.train["max_steps"] == 7
    assert resolve_recipe(None, "code2-full", None, None).settings.data_preset == "full"
    with pytest.raises(TinyLMError, match="not both"):
        resolve_recipe("thesis", None, 1.0, 5)
    with pytest.raises(TinyLMError, match="trains on the thesis preset"):
        resolve_recipe("full", "code2-thesis", None, None)
    with pytest.raises(TinyLMError, match="not a CODE-2 recipe"):
        resolve_recipe(None, "shakespeare-char", None, None)
    with pytest.raises(TinyLMError, match="unknown recipe 'code2-chess'"):
        load_recipe("code2-chess")
    with pytest.raises(TinyLMError, match="unknown task code2 key.s. colour"):
        Recipe.from_dict("x", {"preset": "llama-style-nano", "task": {"name": "code2", "colour": 1}})
    with pytest.raises(TinyLMError, match="unit"):
        Code2Settings(unit="word")


def test_settings_defaults_are_the_generators():
    """recipes.py must stay light (no generator import), so it spells the dataset's defaults out."""
    from tinylm.tasks.code2 import generator, task
    from tinylm.tasks.code2.recipes import DATA_PRESETS, DATA_STYLES, UNITS

    s = Code2Settings()
    assert (s.n, s.seed, DATA_PRESETS) == (generator.DEFAULT_N, generator.DEFAULT_SEED, generator.PRESETS)
    assert DATA_STYLES == generator.STYLES and s.data_style == "templates"
    assert {r["task"]["data_style"] for r in RECIPES.values()} == {"broad"}  # issue 13: the recipes train broad
    with pytest.raises(TinyLMError, match="data_style"):
        Code2Settings(data_style="wide")
    assert task.UNITS is UNITS and set(task.MAX_ANSWER_BYTES) == set(UNITS)


def test_train_command_on_a_small_dataset(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch):
    tiny = {**RECIPES["code2-thesis"], "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 200}}
    monkeypatch.setitem(RECIPES, "code2-thesis", tiny)
    data = tmp_path / "data"
    assert main(["code2", "gen-data", "--preset", "thesis", "--n", "40", "--out", str(data)]) == 0
    out = tmp_path / "run"
    assert main(["code2", "train", "--preset", "thesis", "--data", str(data), "--max-steps", "2",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"tinylm eval-task {out / 'model'}" in printed
    assert (out / "model" / "model.safetensors").is_file()
    assert main(["code2", "train", "--preset", "thesis", "--data", str(data), "--out", str(out), "--quiet"]) == 2


class _ScoredByFirstWeight:
    """BestByExactMatch.measure stand-in: a checkpoint's score is its first weight, so a test
    can make the chosen checkpoint better or worse than the final weights."""

    def __call__(self, model, blocks):
        first = float(next(model.parameters()).detach().flatten()[0])
        return {"line_exact_match": first, "block_exact_match": first, "blocks": len(blocks), "seconds": 0.0}


@pytest.mark.parametrize("final_value, winner_step", [(0.2, 10), (0.9, 20), (0.5, 20)])
def test_final_choice_keeps_the_better_of_checkpoint_and_final_weights(tmp_path, final_value, winner_step):
    from tinylm.config import ModelConfig
    from tinylm.model import GPT
    from tinylm.tasks.code2.train import BestByExactMatch

    tok = train_tokenizer("char", ["abc"])
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=16))
    best = BestByExactMatch(None, [{}] * 3, tok, every=10, out_dir=tmp_path)
    best.measure = _ScoredByFirstWeight()
    first = next(model.parameters())
    with torch.no_grad():
        first.flatten()[0] = 0.5
    best.check(model, 10)
    with torch.no_grad():
        first.flatten()[0] = final_value
    winner = best.final(model, 20, [{}] * 5)
    assert winner["step"] == best.best["step"] == winner_step and winner["blocks"] == 5  # ties go to the final weights
    assert float(next(model.parameters()).flatten()[0]) == pytest.approx(final_value)  # the model keeps its final weights
    saved = tinylm.load(tmp_path / "model").model
    assert float(next(saved.parameters()).flatten()[0]) == pytest.approx(max(0.5, final_value))
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["step"] == winner_step


def test_template_share_is_validated_and_off_by_default():
    from tinylm.tasks.code2.broad import TEMPLATE_SHARE
    from tinylm.tasks.code2.recipes import BROAD_TEMPLATE_SHARE

    assert BROAD_TEMPLATE_SHARE == TEMPLATE_SHARE
    assert Code2Settings().template_share is None
    assert Code2Settings(data_style="broad", template_share=1).template_share == 1
    for bad in (0.2, 1.5, True, "0.5"):
        with pytest.raises(TinyLMError, match="template_share must be"):
            Code2Settings(data_style="broad", template_share=bad)
    with pytest.raises(TinyLMError, match="data_style 'broad'"):
        Code2Settings(data_style="templates", template_share=0.5)


def test_with_template_share_replaces_broad_blocks_and_skips_held_out_ones():
    from tinylm.tasks.code2.train import with_template_share

    broad = [{"input": f"b{i}", "output": "o"} for i in range(70)]
    templates = [{"input": f"t{i}", "output": "o"} for i in range(70)]
    assert with_template_share(broad, templates, 0.3) == broad
    mixed = with_template_share(broad, templates, 0.5, held_out=[templates[0]])
    assert len(mixed) == 70 and mixed[:50] == broad[:50]  # 70 * 0.2 / 0.7 = 20 blocks replaced
    assert mixed[50:] == templates[1:21]  # the held-out block is skipped
    assert with_template_share(broad, templates, 1.0, held_out=[templates[0]]) == broad[:1] + templates[1:]


def test_template_share_sets_the_share_of_template_lines():
    # Counted on the generated lines themselves (a paraphrased line's template is -1), not from the formula.
    from tinylm.tasks.code2.train import dataset

    def share(blocks):
        lines = [t for b in blocks for t in b["meta"]["templates"]]
        return sum(t != -1 for t in lines) / len(lines)

    base = dict(data_style="broad", n=800)
    train, val = dataset(Code2Settings(**base), None)
    mixed, mixed_val = dataset(Code2Settings(**base, template_share=0.6), None)
    assert abs(share(train) - 0.3) < 0.04 and abs(share(mixed) - 0.6) < 0.04
    assert mixed_val == val and len(mixed) == len(train)
    held = {b["input"] + "|" + b["output"] for b in val}
    assert not any(b["input"] + "|" + b["output"] in held for b in mixed[len(train) // 2:])
