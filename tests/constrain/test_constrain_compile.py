"""Compiling for a tokenizer: the vocabulary handed to XGrammar, the caches, the UTF-8 guard's tables."""

from __future__ import annotations

import pytest

from tinylm.constrain import Grammar, builtin, cache_info, compile_grammar
from tinylm.constrain.compiler import fingerprint, vocabulary
from tinylm.constrain.utf8 import Utf8Guard
from tinylm.errors import TinyLMError
from tinylm.tokenizers import load_tokenizer


def test_vocabulary_is_the_decoding_bytes_with_specials_empty(char_tokenizer, bpe_tokenizer):
    for tok in (char_tokenizer, bpe_tokenizer):
        vocab = vocabulary(tok)
        assert len(vocab) == tok.vocab_size
        assert all(vocab[i] == b"" for i in tok.special_ids)
        text = "LD rF,[rD+H'08'] ; rD = 0000 — ñ"
        # XGrammar sees exactly the bytes decode() produces: the same text, id by id.
        assert b"".join(vocab[i] for i in tok.encode(text)).decode() == text


def test_second_compile_is_a_cache_hit(char_tokenizer):
    grammar = Grammar.regex(r"cache-test-[0-9]{3}")
    before = cache_info()
    first = compile_grammar(grammar, char_tokenizer, char_tokenizer.vocab_size + 3)
    middle = cache_info()
    again = compile_grammar(Grammar.regex(r"cache-test-[0-9]{3}"), char_tokenizer, char_tokenizer.vocab_size + 3)
    after = cache_info()
    assert again is first
    assert middle.misses == before.misses + 1 and after.hits == middle.hits + 1 and after.misses == middle.misses
    assert first.compile_ms > 0 and first.vocab_size == char_tokenizer.vocab_size + 3


def test_a_reloaded_tokenizer_shares_the_compiled_grammar(char_tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    char_tokenizer.save(path)
    reloaded = load_tokenizer(path)
    assert reloaded is not char_tokenizer and fingerprint(reloaded) == fingerprint(char_tokenizer)
    assert compile_grammar(builtin("json"), reloaded) is compile_grammar(builtin("json"), char_tokenizer)


def test_different_tokenizers_or_widths_compile_separately(char_tokenizer, bpe_tokenizer):
    assert fingerprint(char_tokenizer) != fingerprint(bpe_tokenizer)
    g = builtin("arithmetic")
    assert compile_grammar(g, char_tokenizer) is not compile_grammar(g, bpe_tokenizer)
    assert compile_grammar(g, char_tokenizer) is not compile_grammar(g, char_tokenizer, char_tokenizer.vocab_size + 1)


def test_vocab_size_smaller_than_the_tokenizer_is_refused(char_tokenizer):
    with pytest.raises(TinyLMError, match="smaller than the tokenizer"):
        compile_grammar(builtin("json"), char_tokenizer, char_tokenizer.vocab_size - 1)


def test_builtin_grammars_compile_fast(char_tokenizer, bpe_tokenizer):
    """Not a timing test (benchmarks own those): a sanity bound far above the goal of 50 ms."""
    from tinylm.constrain import clear_cache

    clear_cache()
    for tok in (char_tokenizer, bpe_tokenizer):
        for name in ("code2-thesis", "code2-full", "arithmetic", "json"):
            assert compile_grammar(builtin(name), tok).compile_ms < 2000


def test_utf8_guard_tables():
    vocab = [b"", b"a", b"\xed", b"\xa0", b"\xbf\x80", b"\x9f", b"x\xed", b"\xed\xa5\x80"]
    guard = Utf8Guard.build(vocab, 10)
    assert guard.after_lead.tolist() == [False, False, False, True, True, False, False, False, False, False]
    assert guard.ends_in_lead == {2, 6}
    assert guard.never is not None and guard.never.nonzero().flatten().tolist() == [7]
    assert Utf8Guard.build([b"a", b"\xed"], 2).never is None
