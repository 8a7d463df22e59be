"""Constrained generation: whatever an untrained model samples, the output is in the grammar.

Property: a row that ends with "stop" is a complete sentence of its grammar, checked by an
independent string-level matcher (Grammar.accepts) and, for seed 003's grammar, by Lark; a
row cut by max_new_tokens ("length") is a prefix of one. Many seeds, temperature 1.5,
every sampling control, batches, per-row grammars, streaming and beam search.
"""

from __future__ import annotations

import json

import pytest
import torch

from constrain_models import random_llama_lm, random_lm
from tinylm.constrain import Grammar, GrammarProcessor, builtin, compile_grammar, constrain
from tinylm.errors import TinyLMError
from tinylm.generation import ContinuousBatch, Engine, GenerationConfig, LogitsProcessor
from tinylm.tokenizers import Tokenizer

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
    },
    "required": ["name", "age"],
}
REGEX = r"[a-z]{2,5}(-[0-9]{1,3}){0,3}"
GRAMMARS = {
    "arithmetic": lambda: builtin("arithmetic"),
    "code2-thesis": lambda: builtin("code2-thesis"),
    "code2-full": lambda: builtin("code2-full"),
    "json": lambda: builtin("json"),
    "schema": lambda: Grammar.json_schema(SCHEMA),
    "regex": lambda: Grammar.regex(REGEX),
}


def check(grammar: Grammar, results) -> int:
    """Every result obeys the grammar; returns how many ended on their own ("stop")."""
    stopped = 0
    for r in results:
        assert r.finish_reason in ("stop", "length"), r
        if r.finish_reason == "stop":
            assert grammar.accepts(r.text), (grammar, r.text)
            stopped += 1
        else:
            assert grammar.is_prefix(r.text), (grammar, r.text)
    return stopped


@pytest.mark.parametrize("name", list(GRAMMARS))
@pytest.mark.parametrize("tokenizer", ["char_tokenizer", "bpe_tokenizer"])
def test_random_model_output_is_always_in_the_grammar(name, tokenizer, request):
    tok = request.getfixturevalue(tokenizer)
    lm = random_lm(tok, seed=3)
    grammar = GRAMMARS[name]()
    processor = constrain(lm, grammar)
    stopped = total = 0
    for seed in range(4):
        results = lm.complete([""] * 8, processor, max_new_tokens=60, temperature=1.5, seed=seed)
        stopped += check(grammar, results)
        total += len(results)
    assert stopped >= 2 and total == 32  # not vacuous: rows do end on their own, as sentences


def test_without_the_grammar_the_same_model_is_not_grammatical(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=3)
    results = lm.complete([""] * 32, max_new_tokens=30, temperature=1.5, seed=0)
    assert sum(builtin("arithmetic").accepts(r.text) for r in results) <= 2


def test_seed003_outputs_are_accepted_by_the_thesis_lark_parser(char_tokenizer):
    pytest.importorskip("lark")
    from tinylm.tasks.arithmetic.grammar import parses

    lm = random_lm(char_tokenizer, seed=11)
    processor = constrain(lm, "arithmetic")
    results = lm.complete([""] * 16, processor, max_new_tokens=80, temperature=1.2, seed=5)
    finished = [r.text for r in results if r.finish_reason == "stop"]
    assert finished and all(parses(t) for t in finished)


@pytest.mark.parametrize("settings", [
    dict(temperature=0.0),
    dict(temperature=1.0, top_k=3),
    dict(temperature=1.3, top_p=0.5),
    dict(temperature=1.3, min_p=0.2),
    dict(temperature=1.0, repetition_penalty=1.5, presence_penalty=0.5, frequency_penalty=0.5),
])
def test_every_sampling_control_stays_in_the_grammar(char_tokenizer, settings):
    lm = random_lm(char_tokenizer, seed=4)
    grammar = builtin("code2-full")
    results = lm.complete([""] * 6, constrain(lm, grammar), max_new_tokens=50, seed=1, **settings)
    check(grammar, results)


def test_each_prompt_can_have_its_own_grammar(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=2)
    grammars = [builtin("arithmetic"), Grammar.regex(REGEX), Grammar.json_schema(SCHEMA), builtin("code2-thesis")]
    processor = constrain(lm, grammars)
    stopped = [0] * len(grammars)
    for seed in range(3):
        results = lm.complete([""] * 4, processor, max_new_tokens=60, temperature=1.3, seed=seed)
        for i, (grammar, result) in enumerate(zip(grammars, results)):
            stopped[i] += check(grammar, [result])
    assert all(stopped), stopped  # every grammar's row ended on its own at least once: a sentence of it


def test_schema_outputs_are_json_that_matches_the_schema(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=9)
    processor = constrain(lm, json_schema=SCHEMA)
    results = lm.complete([""] * 16, processor, max_new_tokens=100, temperature=1.0, seed=0)
    finished = [r.text for r in results if r.finish_reason == "stop"]
    assert finished
    for text in finished:
        obj = json.loads(text)  # an independent check of the schema, by hand
        assert list(obj)[:2] == ["name", "age"] and set(obj) <= {"name", "age", "tags"}
        assert isinstance(obj["name"], str) and len(obj["name"]) <= 8
        assert isinstance(obj["age"], int) and 0 <= obj["age"] <= 120
        assert all(t in ("a", "b") for t in obj.get("tags", [])) and len(obj.get("tags", [])) <= 3


def test_streaming_gives_the_same_text_as_generate(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=6)
    grammar = builtin("arithmetic")
    processor = constrain(lm, grammar)
    for seed in range(3):
        [result] = lm.complete([""], processor, max_new_tokens=60, temperature=1.3, seed=seed)
        streamed = "".join(lm.stream("", processor, max_new_tokens=60, temperature=1.3, seed=seed))
        assert streamed == result.text
        assert check(grammar, [result]) == 1  # a whole sentence, not a prefix cut by max_new_tokens


@pytest.mark.parametrize("name", ["arithmetic", "code2-full", "schema"])
def test_beam_search_keeps_every_beam_in_the_grammar(char_tokenizer, name):
    lm = random_lm(char_tokenizer, seed=7)
    grammar = GRAMMARS[name]()
    results = lm.complete(["", "x", "12"], constrain(lm, grammar, num_beams=4), max_new_tokens=40, num_beams=4)
    check(grammar, results)


def test_beam_search_with_a_grammar_per_prompt(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=8)
    grammars = [Grammar.regex("(ab|cd)+"), builtin("arithmetic")]
    results = lm.complete(["", ""], constrain(lm, grammars, num_beams=3), max_new_tokens=20, num_beams=3)
    stopped = [check(grammar, [result]) for grammar, result in zip(grammars, results)]
    assert stopped[0] == 1  # (ab|cd)+ can end anywhere: its best hypothesis is a finished sentence


def test_a_processor_can_be_reused_across_calls(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=1)
    shared = constrain(lm, "code2-thesis")
    first = lm.complete([""] * 3, shared, max_new_tokens=40, temperature=1.2, seed=4)
    lm.complete([""] * 5, shared, max_new_tokens=25, temperature=1.2, seed=9)
    again = lm.complete([""] * 3, shared, max_new_tokens=40, temperature=1.2, seed=4)
    fresh = lm.complete([""] * 3, constrain(lm, "code2-thesis"), max_new_tokens=40, temperature=1.2, seed=4)
    assert [r.token_ids for r in first] == [r.token_ids for r in again] == [r.token_ids for r in fresh]


def test_mask_matches_a_string_level_reference(char_tokenizer):
    """At each step of a constrained path, the allowed ids are exactly the tokens whose bytes
    extend the text to a viable prefix (string-level matcher), plus eos where it may end."""
    import xgrammar as xgr

    from tinylm.constrain.grammar import _checker

    grammar = builtin("arithmetic")
    lm = random_lm(char_tokenizer, seed=5)
    processor = constrain(lm, grammar)
    [result] = lm.complete([""], processor, max_new_tokens=25, temperature=1.2, seed=2)
    tok = char_tokenizer
    for step in range(len(result.token_ids)):
        prefix = b"".join(tok.token_bytes(t) for t in result.token_ids[:step])
        logits = torch.zeros(1, tok.vocab_size)
        processor(logits, [0], [result.token_ids[:step]])
        allowed = set(torch.isfinite(logits[0]).nonzero().flatten().tolist())
        expected = set()
        for t in range(tok.vocab_size):
            if t in tok.special_ids:
                continue
            matcher = xgr.GrammarMatcher(_checker(grammar.kind, grammar.source))
            if matcher.accept_string(prefix + tok.token_bytes(t)):
                expected.add(t)
        if grammar.accepts(prefix.decode()):
            expected.add(tok.eos_id)
        assert allowed == expected, step


def test_padded_model_vocabulary_never_samples_padding_or_specials(char_tokenizer):
    lm = random_lm(char_tokenizer, seed=2, vocab_size=char_tokenizer.vocab_size + 13)
    processor = constrain(lm, "json")
    logits = torch.zeros(1, lm.model.config.vocab_size)
    processor(logits, [0], [[]])
    allowed = torch.isfinite(logits[0]).nonzero().flatten().tolist()
    assert allowed and max(allowed) < char_tokenizer.vocab_size
    assert not set(allowed) & char_tokenizer.special_ids
    results = lm.complete([""] * 4, processor, max_new_tokens=40, temperature=1.5, seed=0)
    assert check(builtin("json"), results) >= 2  # rows end on their own, as JSON documents


def test_grammar_compiled_for_another_width_is_refused(char_tokenizer):
    lm = random_lm(char_tokenizer, vocab_size=char_tokenizer.vocab_size + 5)
    narrow = GrammarProcessor(compile_grammar(builtin("json"), char_tokenizer))
    with pytest.raises(TinyLMError, match="compiled for .* tokens but the model has"):
        lm.complete([""], narrow, max_new_tokens=5)


class TwoLetters(Tokenizer):
    """A stand-in tokenizer that can spell only "a" and "b": a grammar asking for "c" dead-ends."""

    kind = "two-letters"

    def __init__(self) -> None:
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = 0, 1, 2, 3
        self._bytes = [b"", b"", b"", b"", b"a", b"b"]
        self.vocab_size = len(self._bytes)

    def _encode(self, text):
        return [4 + "ab".index(c) for c in text]

    def token_bytes(self, token_id):
        return self._bytes[token_id]

    def token_str(self, token_id):
        return self._bytes[token_id].decode() or f"<{token_id}>"

    def save(self, path):
        raise NotImplementedError


@pytest.mark.parametrize("num_beams", [1, 2])
def test_a_dead_end_ends_the_row_with_a_reason(num_beams):
    lm = random_lm(TwoLetters(), block_size=16)
    processor = constrain(lm, Grammar.ebnf('root ::= "a" "c"'), num_beams=num_beams)
    [result] = lm.complete([""], processor, max_new_tokens=10, temperature=1.0, num_beams=num_beams, seed=0)
    assert result.finish_reason == "no_valid_token"
    assert result.token_ids == [4] and result.text == "a"


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("make_lm", [random_lm, random_llama_lm], ids=["gpt", "llama-fused"])
def test_a_dead_end_is_reported_in_the_step_and_when_prepared(overlap, make_lm):
    """The processor reports rows with nothing allowed (from the bitmask in the step, or from
    the one `prepare` filled during the fused step's forward pass and the step's finish
    applied); the engine trusts it and does not scan the logits."""
    lm = make_lm(TwoLetters())
    grammars = [Grammar.ebnf('root ::= "ab" "c"'), Grammar.ebnf('root ::= "abab" "b"?')]
    engine = Engine(lm.model, lm.tokenizer, overlap_masks=overlap)
    config = GenerationConfig(max_new_tokens=10, temperature=1.0, seed=0)
    together = engine.generate([[1], [1]], config, constrain(lm, grammars))
    alone = [engine.generate([[1]], config, constrain(lm, g))[0] for g in grammars]
    for results in (together, alone):
        assert (results[0].finish_reason, results[0].token_ids) == ("no_valid_token", [4, 5])
        assert results[1].finish_reason == "stop" and results[1].token_ids[:4] == [4, 5, 4, 5]


def test_dead_end_rows_do_not_stop_the_others():
    lm = random_lm(TwoLetters(), block_size=16)
    grammars = [Grammar.ebnf('root ::= "a" "c"'), Grammar.ebnf('root ::= "ab" "b"?')]
    results = lm.complete(["", ""], constrain(lm, grammars), max_new_tokens=10, temperature=1.0, seed=0)
    assert results[0].finish_reason == "no_valid_token"
    assert results[1].finish_reason == "stop" and results[1].text in ("ab", "abb")


def test_output_bytes_are_valid_utf8_even_where_xgrammar_allows_surrogates(char_tokenizer):
    """XGrammar lets the bytes of U+D800-U+DFFF through a character class (0xED 0xA0 ...);
    the guard must not: every finished output decodes strictly."""
    lm = random_lm(char_tokenizer, seed=12)
    grammar = Grammar.ebnf(r"root ::= [\u0800-\uffff]{1,8}")
    processor = constrain(lm, grammar)
    stopped = 0
    for seed in range(3):
        for r in lm.complete([""] * 16, processor, max_new_tokens=30, temperature=1.5, seed=seed):
            data = b"".join(char_tokenizer.token_bytes(t) for t in r.token_ids if t != char_tokenizer.eos_id)
            if r.finish_reason == "stop":
                assert grammar.accepts(data.decode("utf-8"))  # strict: raises on a surrogate
                stopped += 1
    assert stopped > 20


def _reference_mask(compiled, generated: list[list[int]], logits: torch.Tensor, guard: bool = True) -> torch.Tensor:
    """The plain way: fresh matchers, XGrammar's public apply, then the UTF-8 guard with torch."""
    import xgrammar as xgr

    out = logits.clone()
    bitmask = xgr.allocate_token_bitmask(len(generated), out.shape[1])
    for i, tokens in enumerate(generated):
        matcher = xgr.GrammarMatcher(compiled[i].compiled)
        assert all(matcher.accept_token(t) for t in tokens)
        matcher.fill_next_token_bitmask(bitmask, i)
    xgr.apply_token_bitmask_inplace(out, bitmask)
    for i, tokens in enumerate(generated if guard else []):
        rules = compiled[i].guard
        if rules.never is not None:
            out[i].masked_fill_(rules.never, float("-inf"))
        if tokens and tokens[-1] in rules.ends_in_lead:
            out[i].masked_fill_(rules.after_lead, float("-inf"))
    return out


@pytest.mark.parametrize("prepared", [False, True], ids=["in-the-step", "prepared-applied-in-cpp"])
def test_the_processors_mask_blocks_what_torch_masking_blocks(char_tokenizer, prepared):
    """In the step the processor applies its bitmask (the UTF-8 guard folded in as cleared
    bits) with XGrammar's kernel; prepared, it hands the bitmask to the decoder, whose C++
    step masks the logits (apply_bitmask, the loop FusedDecodeStep.finish runs). Both equal the
    plain reference (XGrammar's public apply, then the guard's bans with torch), including a row
    that ends in the lead byte 0xED (the guard's after-lead ban, which must matter here). (Rows
    with nothing allowed: test_a_dead_end_is_reported_in_the_step_and_when_prepared.)"""
    from tinylm.transforms.decode_step import apply_bitmask
    from tinylm.transforms.kernels import decode_kernels

    if prepared and decode_kernels() is None:
        pytest.skip("tinylm's kernels cannot be built here")
    lm = random_lm(char_tokenizer, seed=5)
    vocab = lm.model.config.vocab_size
    lead = next(t for t in range(char_tokenizer.vocab_size) if char_tokenizer.token_bytes(t) == b"\xed")
    grammars = ["arithmetic", "json", "code2-full", Grammar.ebnf(r"root ::= [\u0800-\uffff]{1,8}"), "json"]
    compiled = [compile_grammar(g if isinstance(g, Grammar) else builtin(g), char_tokenizer, vocab) for g in grammars]
    enc = lambda text: [t for t in char_tokenizer.encode(text) if t != char_tokenizer.eos_id]  # noqa: E731
    generated = [enc("(9*1"), enc('{"a": [1, '), [], [lead], enc('"x')]
    processor = GrammarProcessor(compiled)
    logits = torch.randn(len(grammars), 1, vocab)[:, -1]  # a view, as the engine passes it
    raw = logits.clone()
    reference = _reference_mask(compiled, generated, raw)
    rows = list(range(len(grammars)))
    if prepared:
        processor.prepare(rows, generated)
        bitmask, dead = processor.prepared_bitmask(rows, generated)
        apply_bitmask(logits, bitmask)
        assert processor.prepared_bitmask(rows, generated) is None  # handed over once
    else:
        dead = processor(logits, rows, generated)
    assert torch.equal(logits, reference)
    assert dead == []
    assert 0 < torch.isfinite(logits).sum(dim=1).min() and torch.isfinite(logits).sum(dim=1).max() < vocab
    unguarded = _reference_mask(compiled[3:4], [[lead]], raw[3:4], guard=False)
    assert torch.isfinite(unguarded).sum() > torch.isfinite(logits[3]).sum()  # the guard's ban took effect


class _Reference(LogitsProcessor):
    """Grammar masking the plain way, as XGrammar's documentation shows it: one matcher per
    row, accept the newest token, fill, apply with XGrammar's public function (then the UTF-8
    guard's bans), and let the engine scan the logits for rows with nothing allowed. No
    batching, no thread, no reuse."""

    def __init__(self, compiled) -> None:
        import xgrammar as xgr

        self.xgr, self.compiled, self.matchers = xgr, compiled, {}

    def __call__(self, logits, rows, generated):
        bitmask = self.xgr.allocate_token_bitmask(len(rows), logits.shape[1])
        for i, (row, tokens) in enumerate(zip(rows, generated)):
            if not tokens:
                self.matchers[row] = self.xgr.GrammarMatcher(self.compiled.compiled)
            else:
                assert self.matchers[row].accept_token(tokens[-1])
            self.matchers[row].fill_next_token_bitmask(bitmask, i)
        self.xgr.apply_token_bitmask_inplace(logits, bitmask)
        guard = self.compiled.guard  # the UTF-8 rules on top of the grammar (utf8.py)
        for i, tokens in enumerate(generated):
            if guard.never is not None:
                logits[i].masked_fill_(guard.never, float("-inf"))
            if tokens and tokens[-1] in guard.ends_in_lead:
                logits[i].masked_fill_(guard.after_lead, float("-inf"))
        return None

    def is_finished(self, row):
        return self.matchers[row].is_terminated()


@pytest.mark.parametrize("grammar", ["code2-full", "arithmetic"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("make_lm", [random_lm, random_llama_lm], ids=["gpt", "llama-fused"])
def test_the_grammar_processor_draws_the_tokens_of_a_plain_reference(char_tokenizer, grammar, batch, make_lm):
    """Every shortcut of GrammarProcessor (one batched accept and fill, the guard folded into
    the bitmask, the rows with nothing allowed reported instead of scanned for, and on a
    llama-style model the fused step on its own thread with the mask applied in C++) leaves
    the draw unchanged: same seed, same tokens as the plain reference, row by row."""
    lm = make_lm(char_tokenizer, seed=4)
    compiled = compile_grammar(builtin(grammar), char_tokenizer, lm.model.config.vocab_size)
    prompts = [[char_tokenizer.bos_id]] * batch
    config = GenerationConfig(max_new_tokens=40, temperature=1.3, seed=7)
    reference = [r.token_ids for r in Engine(lm.model, lm.tokenizer).generate(prompts, config, _Reference(compiled))]
    for overlap in (False, True):
        engine = Engine(lm.model, lm.tokenizer, overlap_masks=overlap)
        assert [r.token_ids for r in engine.generate(prompts, config, GrammarProcessor(compiled))] == reference
    free = [r.token_ids for r in Engine(lm.model, lm.tokenizer).generate(prompts, config)]
    assert free != reference  # the grammar changed the draw: the comparison can tell masks apart


class _PrepareSpy(GrammarProcessor):
    """A GrammarProcessor that counts the masks `prepare` computed ahead."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepared = 0

    def prepare(self, rows, generated):
        super().prepare(rows, generated)
        self.prepared += 1


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("temperature", [0.0, 1.3])
def test_masks_prepared_during_the_forward_pass_give_the_same_tokens(char_tokenizer, batch, temperature):
    """On the fused step the decoder computes the next mask while the forward pass runs on the
    step's thread (batch 1 and 8), and the step's finish applies it; with overlap off, in the
    step. Same seed, same tokens, every row."""
    lm = random_llama_lm(char_tokenizer, seed=3)
    compiled = compile_grammar(builtin("code2-full"), char_tokenizer, lm.model.config.vocab_size)
    prompts = [[char_tokenizer.bos_id]] * batch
    config = GenerationConfig(max_new_tokens=40, temperature=temperature, seed=11)
    runs = {}
    for overlap in (True, False):
        processor = _PrepareSpy(compiled)
        results = Engine(lm.model, lm.tokenizer, overlap_masks=overlap).generate(prompts, config, processor)
        runs[overlap] = [(r.token_ids, r.finish_reason) for r in results]
        assert (processor.prepared > 10) == overlap  # prepared step after step, or never
    assert runs[True] == runs[False]
    assert len({tuple(ids) for ids, _ in runs[True]}) == (1 if temperature == 0 else batch)


class _FailingPrepare(GrammarProcessor):
    def __init__(self, *args, fail_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.fail_at = 0, fail_at

    def prepare(self, rows, generated):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("prepare failed on purpose")
        super().prepare(rows, generated)


@pytest.mark.parametrize("batch", [1, 3])
def test_an_error_while_the_forward_pass_runs_surfaces_and_frees_the_step_thread(char_tokenizer, batch):
    """A processor that raises in `prepare` (during the forward pass on the step's thread)
    stops the generation with its own error; the step's thread is let go, so the next
    generation runs, overlapped, with the same tokens as one that never failed."""
    lm = random_llama_lm(char_tokenizer, seed=2)
    compiled = compile_grammar(builtin("arithmetic"), char_tokenizer, lm.model.config.vocab_size)
    engine = Engine(lm.model, lm.tokenizer, overlap_masks=True)
    prompts = [[char_tokenizer.bos_id]] * batch
    config = GenerationConfig(max_new_tokens=20, temperature=1.0, seed=1)
    with pytest.raises(ValueError, match="prepare failed on purpose"):
        engine.generate(prompts, config, _FailingPrepare(compiled, fail_at=3))
    spy = _PrepareSpy(compiled)
    after = [r.token_ids for r in engine.generate(prompts, config, spy)]
    assert spy.prepared > 5
    in_step = Engine(lm.model, lm.tokenizer, overlap_masks=False)
    assert after == [r.token_ids for r in in_step.generate(prompts, config, GrammarProcessor(compiled))]


def test_prepared_masks_with_rows_joining_and_leaving(char_tokenizer):
    """Continuous batching: grammar groups join at different steps, one is cancelled midway,
    the batch shrinks to one row (the fused step, masks prepared during its forward pass);
    with and without overlap every row gets the same tokens."""
    lm = random_llama_lm(char_tokenizer, seed=5)
    bos = char_tokenizer.bos_id
    grammars = [builtin("arithmetic"), builtin("code2-full"), Grammar.json_schema(SCHEMA)]
    compiled = [compile_grammar(g, char_tokenizer, lm.model.config.vocab_size) for g in grammars]
    config = GenerationConfig(max_new_tokens=30, temperature=1.2, seed=3)
    runs = {}
    for overlap in (True, False):
        batch = ContinuousBatch(lm.model, lm.tokenizer, overlap_masks=overlap)
        tokens: dict[tuple[int, int], list[int]] = {}
        groups = [batch.add([[bos]] * 3, config, GrammarProcessor(compiled[0]), owner=0)]
        step = 0
        while not batch.done:
            if step == 2:
                groups.append(batch.add([[bos], [bos, bos]], config, GrammarProcessor(compiled[1]), owner=1))
                groups.append(batch.add([[bos]], GenerationConfig(max_new_tokens=30, temperature=0),
                                        GrammarProcessor(compiled[2]), owner=2))
            if step == 6:
                batch.cancel(groups[1])
            for group, event in batch.step():
                if event.token_id is not None:
                    tokens.setdefault((group.owner, event.row), []).append(event.token_id)
            step += 1
        runs[overlap] = tokens
    assert runs[True] == runs[False]
    assert len(runs[True][(1, 0)]) == 4  # the cancelled group stopped after four steps
