"""Prompt formats: what each one feeds the model, how a checkpoint says which, and old checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tinylm
from tinylm.cli.main import main
from tinylm.data.prompt_format import PromptFormat, prompt_format_of
from tinylm.errors import TinyLMError
from tinylm.generation import Engine, GenerationConfig
from tinylm.tokenizers import train_tokenizer

LEGACY = Path(__file__).resolve().parents[1] / "legacy_checkpoints" / "code2-line-model"
SENTENCE = "Suma r1 y r2 y guarda el resultado en r3"


def test_what_each_format_feeds_the_model():
    tok = train_tokenizer("char", ["abc"])
    assert PromptFormat("plain").encode(tok, "ab") == tok.encode("ab")
    assert PromptFormat("plain").encode(tok, "") == [tok.bos_id]  # something to condition on
    assert PromptFormat("paired").encode(tok, "ab") == [tok.bos_id, *tok.encode("ab"), tok.sep_id]
    assert PromptFormat("paired").encode(tok, "") == [tok.bos_id, tok.sep_id]
    with pytest.raises(TinyLMError, match="unknown prompt format 'chatml'"):
        PromptFormat("chatml")


@pytest.mark.parametrize("extra, name", [
    ({}, "plain"),
    ({"preset": "gpt2-style-nano"}, "plain"),
    ({"prompt_format": "paired"}, "paired"),
    ({"prompt_format": "plain", "task": "code2"}, "plain"),  # what the checkpoint says wins
    ({"task": "code2", "code2": {"unit": "line"}}, "paired"),  # written before the entry existed
    ({"task": "arithmetic"}, "paired"),
])
def test_a_checkpoint_says_its_format_or_its_task_does(extra, name):
    assert prompt_format_of(extra).name == name


def test_a_checkpoint_of_an_unknown_task_is_refused():
    with pytest.raises(TinyLMError, match="unknown task 'chess'"):
        prompt_format_of({"task": "chess"})


def test_new_runs_record_their_format(tiny_code2_model):
    extra = json.loads((tiny_code2_model / "config.json").read_text())["extra"]
    assert extra["prompt_format"] == "paired"


def test_a_checkpoint_from_before_prompt_formats_loads_and_is_framed():
    """Written by commit 2e55e58 (tests/legacy_checkpoints/README.md): no prompt_format in its config."""
    assert "prompt_format" not in json.loads((LEGACY / "config.json").read_text())["extra"]
    lm = tinylm.load(LEGACY)
    assert lm.prompt_format.name == "paired"
    tok, config = lm.tokenizer, GenerationConfig(temperature=0.0, max_new_tokens=30)
    [framed] = Engine(lm.model, tok).generate([[tok.bos_id, *tok.encode(SENTENCE), tok.sep_id]], config)
    [bare] = Engine(lm.model, tok).generate([tok.encode(SENTENCE)], config)
    assert framed.text != bare.text  # the framing matters to this model...
    assert lm.generate(SENTENCE, temperature=0.0, max_new_tokens=30) == framed.text  # ...and is applied


def test_old_checkpoint_through_the_cli(capsys):
    assert main(["info", str(LEGACY)]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_format"] == "paired"
    assert main(["code2", "translate", str(LEGACY), SENTENCE]) == 0
    assert capsys.readouterr().out.strip()
