"""The engine's behaviour: stops, lengths, streaming, seeds, penalties, processors, errors.

A `Script` processor forces each row to produce chosen tokens, so stop tokens and stop
strings are tested on exactly known text; `Words` is a tokenizer with multi-character
tokens, so stop strings can start and end inside tokens.
"""

from __future__ import annotations

import pytest
import torch

from tinylm.errors import TinyLMError
from tinylm.generation import Engine, GenerationConfig, LogitsProcessor
from tinylm.tokenizers import CharTokenizer, Tokenizer

NEG_INF = float("-inf")


class Words(Tokenizer):
    """Specials 0-3, then these pieces, then the 256 bytes."""

    kind = "words"
    PIECES = ["he", "llo", " wo", "rld", "\n", "\n\n", "a", "b", "c", "!"]

    def __init__(self) -> None:
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = 0, 1, 2, 3
        self._bytes = [b""] * 4 + [p.encode() for p in self.PIECES] + [bytes([b]) for b in range(256)]
        self.vocab_size = len(self._bytes)

    def id(self, piece: str) -> int:
        return 4 + self.PIECES.index(piece)

    def byte(self, b: int) -> int:
        return 4 + len(self.PIECES) + b

    def _encode(self, text):  # not needed by the engine
        raise NotImplementedError

    def token_bytes(self, token_id):
        return self._bytes[token_id]

    def token_str(self, token_id):
        return self._bytes[token_id].decode("utf-8", "replace")

    def save(self, path):
        raise NotImplementedError


class Script(LogitsProcessor):
    """Row r may only produce scripts[r][t] at step t (anything once its script is over)."""

    def __init__(self, scripts: list[list[int]]) -> None:
        self.scripts = scripts

    def __call__(self, logits, rows, generated):
        for i, (row, done) in enumerate(zip(rows, generated)):
            script = self.scripts[row]
            if len(done) < len(script):
                allowed = logits[i, script[len(done)]].clone()
                logits[i] = NEG_INF
                logits[i, script[len(done)]] = allowed


class Allow(LogitsProcessor):
    def __init__(self, allowed: set[int]) -> None:
        self.allowed = torch.tensor(sorted(allowed))

    def __call__(self, logits, rows, generated):
        keep = logits[:, self.allowed].clone()
        logits.fill_(NEG_INF)
        logits[:, self.allowed] = keep


@pytest.fixture
def words_engine(make_model):
    tok = Words()
    return Engine(make_model(seed=5, vocab_size=tok.vocab_size, block_size=64), tok), tok


def test_stop_token_ends_the_row_and_adds_no_text(words_engine):
    engine, tok = words_engine
    script = [tok.id("he"), tok.id("llo"), tok.eos_id]
    [r] = engine.generate([[1]], GenerationConfig(max_new_tokens=20), Script([script]))
    assert r.token_ids == script and r.text == "hello" and r.finish_reason == "stop"
    # A non-special stop token is also left out of the text.
    cfg = GenerationConfig(max_new_tokens=20, stop_token_ids=(tok.id("!"),))
    [r] = engine.generate([[1]], cfg, Script([[tok.id("a"), tok.id("!"), tok.id("b")]]))
    assert r.token_ids == [tok.id("a"), tok.id("!")] and r.text == "a" and r.finish_reason == "stop"


def test_ignore_eos_keeps_going(words_engine):
    engine, tok = words_engine
    script = [tok.id("a"), tok.eos_id, tok.id("b")]
    [r] = engine.generate([[1]], GenerationConfig(max_new_tokens=3, ignore_eos=True), Script([script]))
    assert r.token_ids == script and r.text == "ab" and r.finish_reason == "length"


@pytest.mark.parametrize("stop,text", [
    ("lo w", "hel"),  # starts inside "llo", ends inside " wo"
    ("hello", ""),  # spans two tokens from the very start
    ("rld", "hello wo"),  # exactly one token
    ("d!", "hello worl"),  # ends exactly at a token boundary
    ("xyz", "hello world!"),  # never appears
])
def test_stop_strings_spanning_tokens(words_engine, stop, text):
    engine, tok = words_engine
    script = [tok.id(p) for p in ["he", "llo", " wo", "rld", "!"]]
    cfg = GenerationConfig(max_new_tokens=5, stop_strings=(stop, "never"))
    [r] = engine.generate([[1]], cfg, Script([script]))
    assert r.text == text
    if stop in "hello world!":
        assert r.finish_reason == "stop"
        # Generation stops at the token that completes the stop string.
        end = next(i for i in range(1, 6) if stop in "".join(["he", "llo", " wo", "rld", "!"][:i]))
        assert r.token_ids == script[:end]
    else:
        assert r.finish_reason == "length" and r.token_ids == script


def test_streamed_text_holds_back_a_possible_stop_string(words_engine):
    engine, tok = words_engine
    script = [tok.id(p) for p in ["a", "\n", "b", "\n", "\n", "c"]]
    cfg = GenerationConfig(max_new_tokens=10, stop_strings=("\n\n",))
    events = list(engine.stream([1], cfg, Script([script])))
    pieces = [e.text for e in events]
    assert pieces == ["a", "", "\nb", "", ""]  # each "\n" waits until the next token decides
    assert [e.token_id for e in events] == script[:5]
    assert [e.finish_reason for e in events] == [None] * 4 + ["stop"]
    [r] = engine.generate([[1]], cfg, Script([script]))
    assert r.text == "a\nb" == "".join(pieces)


def test_stream_flushes_partial_characters(words_engine):
    engine, tok = words_engine
    e_acute = "é".encode()  # two bytes, two tokens
    script = [tok.id("a"), tok.byte(e_acute[0]), tok.byte(e_acute[1]), tok.byte(e_acute[0])]
    events = list(engine.stream([1], GenerationConfig(max_new_tokens=4), Script([script])))
    assert [e.text for e in events] == ["a", "", "é", "\ufffd"]  # a dangling half character, as decode() gives


def test_max_new_tokens_and_length_reason(make_model):
    model = make_model(seed=6)
    results = Engine(model).generate([[1], [2, 3]], GenerationConfig(max_new_tokens=7, seed=0))
    assert all(len(r.token_ids) == 7 and r.finish_reason == "length" for r in results)
    assert [r.prompt_tokens for r in results] == [1, 2] and results[0].completion_tokens == 7
    assert results[0].text is None  # no tokenizer


def test_context_limit(make_model):
    model = make_model(seed=7, block_size=32)
    engine = Engine(model)
    cfg = GenerationConfig(max_new_tokens=10, seed=0)
    [r] = engine.generate([[1] * 30], cfg)  # 30 + 3 tokens: the last one is sampled, never fed back
    assert len(r.token_ids) == 3 and r.finish_reason == "length"
    [r] = engine.generate([[1] * 32], cfg)
    assert len(r.token_ids) == 1
    with pytest.raises(TinyLMError, match="context"):
        engine.generate([[1] * 33], cfg)


@pytest.mark.parametrize("prompts,match", [
    ([[]], "empty"), ([[1, 61]], "token id"), ([[1, -1]], "token id"), ([[1.0, 2.0]], "integer"),
    ([1, 2, 3], "integer"), (["hello"], "encode"),
])
def test_bad_prompts_are_user_errors(make_model, prompts, match):
    with pytest.raises(TinyLMError, match=match):
        Engine(make_model()).generate(prompts, GenerationConfig(max_new_tokens=2))


def test_other_user_errors(make_model):
    engine = Engine(make_model())
    with pytest.raises(TinyLMError, match="tokenizer"):
        engine.generate([[1]], GenerationConfig(stop_strings=("x",)))
    with pytest.raises(TinyLMError, match="vocabulary"):
        engine.generate([[1]], GenerationConfig(stop_token_ids=(61,)))
    with pytest.raises(TinyLMError, match="beam"):
        engine.stream([1], GenerationConfig(num_beams=2))
    with pytest.raises(TinyLMError, match="LogitsProcessor"):
        engine.generate([[1]], GenerationConfig(), logits_processor=lambda *a: None)
    with pytest.raises(TinyLMError, match="tokenizer has"):
        Engine(make_model(vocab_size=10), CharTokenizer("abc"))
    assert engine.generate([], GenerationConfig()) == []


def test_seeded_generation_is_reproducible_and_seeds_differ(make_model):
    engine = Engine(make_model(seed=8))
    prompts = [[1, 2], [3]]
    run = lambda seed: [r.token_ids for r in engine.generate(prompts, GenerationConfig(max_new_tokens=20, seed=seed))]
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_stream_batch_matches_generate(make_model):
    tok = CharTokenizer("abcdefgh \n")
    engine = Engine(make_model(seed=9, vocab_size=tok.vocab_size, scale=0.2), tok)
    prompts = [tok.encode("abc"), tok.encode("h"), tok.encode("ggg fe")]
    cfg = GenerationConfig(max_new_tokens=12, seed=3, top_k=20, stop_strings=("a",))
    results = engine.generate(prompts, cfg)
    tokens, texts, reasons = {i: [] for i in range(3)}, {i: "" for i in range(3)}, {}
    for e in engine.stream_batch(prompts, cfg):
        assert e.row not in reasons  # nothing after a row's last event
        tokens[e.row].append(e.token_id)
        texts[e.row] += e.text
        if e.finish_reason:
            reasons[e.row] = e.finish_reason
    for i, r in enumerate(results):
        assert tokens[i] == r.token_ids and texts[i] == r.text and reasons[i] == r.finish_reason
        assert "a" not in r.text


def test_penalties_match_a_naive_loop(make_model):
    model = make_model(seed=10, scale=0.3)
    prompts = [[1, 2, 2, 5], [9]]
    cfg = GenerationConfig(temperature=0, max_new_tokens=12, repetition_penalty=1.5, presence_penalty=0.4,
                           frequency_penalty=0.3)
    results = Engine(model).generate(prompts, cfg)
    for prompt, result in zip(prompts, results):
        seq, new = list(prompt), []
        with torch.no_grad():
            for _ in range(12):
                z = model(torch.tensor([seq]))[0][0, -1].tolist()
                for i in range(len(z)):
                    if i in seq:  # repetition: prompt and generated tokens
                        z[i] = z[i] / 1.5 if z[i] > 0 else z[i] * 1.5
                    n = new.count(i)  # presence and frequency: generated tokens only
                    z[i] -= 0.4 * (n > 0) + 0.3 * n
                token = max(range(len(z)), key=z.__getitem__)
                seq.append(token)
                new.append(token)
        assert result.token_ids == new


def test_processor_allowed_set_is_respected(make_model):
    allowed = {3, 17, 42, 60}
    results = Engine(make_model(seed=11)).generate(
        [[1], [2, 3, 4], [5]], GenerationConfig(max_new_tokens=30, seed=0), Allow(allowed))
    tokens = [t for r in results for t in r.token_ids]
    assert set(tokens) <= allowed and len(set(tokens)) > 1


class Nothing(LogitsProcessor):
    """Allows nothing to row 1, and nothing to any row after 3 tokens."""

    def __call__(self, logits, rows, generated):
        for i, (row, done) in enumerate(zip(rows, generated)):
            if row == 1 or len(done) >= 3:
                logits[i] = NEG_INF


def test_processor_allowing_nothing_ends_the_row(make_model):
    results = Engine(make_model(seed=12)).generate([[1], [2], [3, 4]], GenerationConfig(max_new_tokens=10), Nothing())
    assert [r.finish_reason for r in results] == ["no_valid_token"] * 3
    assert [len(r.token_ids) for r in results] == [3, 0, 3]


def test_processor_finished_ends_with_stop(make_model):
    class Done(LogitsProcessor):
        def __init__(self):
            self.n = {}

        def __call__(self, logits, rows, generated):
            pass

        def advance(self, row, token_id):
            self.n[row] = self.n.get(row, 0) + 1

        def is_finished(self, row):
            return self.n[row] == 2 + row

    results = Engine(make_model(seed=13)).generate([[1], [2]], GenerationConfig(max_new_tokens=10), Done())
    assert [(len(r.token_ids), r.finish_reason) for r in results] == [(2, "stop"), (3, "stop")]


def test_training_model_is_generated_in_eval_mode_and_restored(make_model):
    model = make_model(seed=14, dropout=0.5, scale=0.3)
    engine = Engine(model)
    cfg = GenerationConfig(temperature=0, max_new_tokens=10)
    [expected] = engine.generate([[1, 2]], cfg)
    model.train()
    assert engine.generate([[1, 2]], cfg)[0].token_ids == expected.token_ids  # no dropout
    assert [e.token_id for e in engine.stream([1, 2], cfg)] == expected.token_ids
    assert model.training
