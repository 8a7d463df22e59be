"""Compile a Grammar for a tokenizer's vocabulary, once: XGrammar's TokenizerInfo, compiler, caches.

XGrammar precomputes, for every grammar state, which tokens may follow; to do that it
needs the exact bytes each token id adds to the text. tinylm tokenizers define decoding
by `token_bytes` (tokenizers/base.py), so the vocabulary is handed over as those raw bytes
(VocabType.RAW): byte-fallback tokens of the char tokenizer and partial-UTF-8 BPE tokens
are plain byte strings, no GPT-2 stand-in characters or "<0x1B>" spellings to decode.
Special tokens (pad, bos, sep...) get b"", which XGrammar treats as "never allowed";
eos is the stop token, allowed exactly where the grammar may end. A model whose vocabulary
is larger than its tokenizer's (padded embeddings) passes its own size: the extra ids
are special too.

Two caches, both process-wide and thread-safe:
- one GrammarCompiler per (tokenizer fingerprint, model vocab size): the fingerprint hashes
  every token's bytes and the special ids, so two loads of the same tokenizer.json share it;
- compiled grammars by (fingerprint, vocab size, grammar kind, grammar source), LRU.
`cache_info()` reports hits and misses; every CompiledGrammar carries its compile time.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tinylm.constrain.backend import reason, xgrammar
from tinylm.constrain.grammar import Grammar
from tinylm.constrain.utf8 import Utf8Guard
from tinylm.errors import TinyLMError
from tinylm.tokenizers import Tokenizer

MAX_COMPILED = 64  # grammars kept per process; a compiled char/BPE grammar is tens of KB


@dataclass(frozen=True)
class CompiledGrammar:
    grammar: Grammar
    compiled: Any  # xgrammar.CompiledGrammar
    vocab_size: int  # the width of the logits it masks
    compile_ms: float  # of the compile that produced it (a cache hit returns the original)
    tokenizer_key: str  # the tokenizer's fingerprint
    guard: Utf8Guard  # the tokenizer's UTF-8 rules (utf8.py)


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int
    compilers: int


_lock = threading.Lock()
_fingerprints: "weakref.WeakKeyDictionary[Tokenizer, str]" = weakref.WeakKeyDictionary()
_compilers: dict[tuple[str, int], tuple[Any, Utf8Guard]] = {}
_compiled: "OrderedDict[tuple[str, int, str, str], CompiledGrammar]" = OrderedDict()
_stats = {"hits": 0, "misses": 0}


def vocabulary(tokenizer: Tokenizer) -> list[bytes]:
    """Every token id's bytes, b"" for the special tokens."""
    specials = tokenizer.special_ids
    return [b"" if i in specials else tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]


def fingerprint(tokenizer: Tokenizer) -> str:
    with _lock:
        known = _fingerprints.get(tokenizer)
    if known is not None:
        return known
    h = hashlib.sha256()
    h.update(f"{tokenizer.vocab_size} eos={tokenizer.eos_id} special={sorted(tokenizer.special_ids)}".encode())
    for token in vocabulary(tokenizer):
        h.update(len(token).to_bytes(4, "little"))
        h.update(token)
    digest = h.hexdigest()
    with _lock:
        _fingerprints[tokenizer] = digest
    return digest


def _compiler(tokenizer: Tokenizer, vocab_size: int, key: str) -> tuple[Any, Utf8Guard]:
    entry = _compilers.get((key, vocab_size))
    if entry is None:
        xgr = xgrammar()
        vocab = vocabulary(tokenizer)
        info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=vocab_size, stop_token_ids=[tokenizer.eos_id])
        # Our own cache holds compiled grammars; XGrammar's would keep a second copy.
        entry = (xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False), Utf8Guard.build(vocab, vocab_size))
        _compilers[(key, vocab_size)] = entry
    return entry


def compile_grammar(grammar: Grammar, tokenizer: Tokenizer, vocab_size: int | None = None) -> CompiledGrammar:
    """`grammar` compiled for `tokenizer`, masking logits of width vocab_size (default: the tokenizer's)."""
    vocab_size = tokenizer.vocab_size if vocab_size is None else vocab_size
    if vocab_size < tokenizer.vocab_size:
        raise TinyLMError(f"vocab_size {vocab_size} is smaller than the tokenizer's ({tokenizer.vocab_size})")
    key = fingerprint(tokenizer)
    cache_key = (key, vocab_size, *grammar.key)
    with _lock:
        hit = _compiled.get(cache_key)
        if hit is not None:
            _compiled.move_to_end(cache_key)
            _stats["hits"] += 1
            return hit
        # Compiling under the lock: two threads asking for the same grammar compile it once.
        parsed = grammar.parse()
        compiler, guard = _compiler(tokenizer, vocab_size, key)  # once per tokenizer, not part of compile_ms
        started = time.perf_counter()
        try:
            compiled = compiler.compile_grammar(parsed)
        except RuntimeError as e:
            raise TinyLMError(f"cannot compile grammar {grammar}: {reason(e)}") from None
        result = CompiledGrammar(grammar, compiled, vocab_size, (time.perf_counter() - started) * 1000, key, guard)
        _compiled[cache_key] = result
        _stats["misses"] += 1
        while len(_compiled) > MAX_COMPILED:
            _compiled.popitem(last=False)
        return result


def cache_info() -> CacheInfo:
    with _lock:
        return CacheInfo(_stats["hits"], _stats["misses"], len(_compiled), len(_compilers))


def clear_cache() -> None:
    """Forget every compiled grammar and compiler (benchmarks time cold compiles with it)."""
    with _lock:
        _compiled.clear()
        _compilers.clear()
        _stats["hits"] = _stats["misses"] = 0
