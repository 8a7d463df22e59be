"""One prompt format per model: /v1/completions (official openai client), `tinylm generate` and
the Python API frame a CODE-2 line model's prompt the same way, as `[bos] text [sep]`."""

from __future__ import annotations

import openai
import pytest

import tinylm
from tinylm.cli.main import main
from tinylm.generation import Engine, GenerationConfig

SENTENCE = "Suma r1 y r2 y guarda el resultado en r3"
N = 40


@pytest.fixture(scope="module")
def client(trained_code2_server):
    return openai.OpenAI(base_url=trained_code2_server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def lm(tiny_code2_model):
    return tinylm.load(tiny_code2_model)


def test_the_model_card_says_how_prompts_are_framed(client):
    [card] = client.models.list().data
    assert card.model_extra["task"] == "code2" and card.model_extra["prompt_format"] == "paired"


def test_completions_equal_generate_and_the_python_api(client, lm, tiny_code2_model, capsys):
    api_text = client.completions.create(model="code2-tiny", prompt=SENTENCE, max_tokens=N, temperature=0).choices[0].text
    # The reference, built by hand: the framing of paired training data, decoded by the engine itself.
    tok = lm.tokenizer
    framed = [tok.bos_id] + tok.encode(SENTENCE) + [tok.sep_id]
    config = GenerationConfig(temperature=0.0, max_new_tokens=N)
    [reference] = Engine(lm.model, tok).generate([framed], config)
    assert api_text == reference.text
    # The framing matters for this model: the bare sentence gets another answer.
    [bare] = Engine(lm.model, tok).generate([tok.encode(SENTENCE)], config)
    assert bare.text != reference.text
    assert lm.generate(SENTENCE, temperature=0.0, max_new_tokens=N) == api_text
    assert "".join(lm.stream(SENTENCE, temperature=0.0, max_new_tokens=N)) == api_text
    assert main(["generate", str(tiny_code2_model), SENTENCE, "--temperature", "0", "--max-new-tokens", str(N)]) == 0
    assert capsys.readouterr().out == SENTENCE + api_text + "\n"


def test_streamed_completions_are_framed_too(client, lm):
    chunks = client.completions.create(model="code2-tiny", prompt=[SENTENCE, "Lee DAC1 y almacénalo en el registro 0"],
                                       max_tokens=N, temperature=0, stream=True)
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == lm.generate([SENTENCE, "Lee DAC1 y almacénalo en el registro 0"], temperature=0.0, max_new_tokens=N)
