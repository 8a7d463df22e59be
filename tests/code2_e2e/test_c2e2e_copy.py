"""The copy constraint (Error-line quotes, memory-line addresses): it never bans a correct answer, and bans miscopies."""

from __future__ import annotations

import re

import pytest
import torch

from tinylm.generation import LogitsProcessor
from tinylm.tasks.code2.copy_constraint import CopiedFromInput, input_addresses, quotable_pieces
from tinylm.tasks.code2.task import Code2Task, line_pairs, load_examples
from tinylm.tokenizers import train_tokenizer


@pytest.fixture(scope="module")
def thesis_pairs() -> list[dict[str, str]]:
    return line_pairs(load_examples("train", "thesis", n=2000))


@pytest.fixture(scope="module")
def error_pairs(thesis_pairs) -> list[dict[str, str]]:
    return [p for p in thesis_pairs if p["output"].startswith("Error:")]


@pytest.fixture(scope="module")
def constrained_pairs(thesis_pairs) -> list[dict[str, str]]:
    """Error lines and memory lines, alternating, so a sample has both kinds."""
    errors = [p for p in thesis_pairs if p["output"].startswith("Error:")]
    memory = [p for p in thesis_pairs if p["output"].startswith(("LD ", "ST "))]
    return [p for pair in zip(errors, memory) for p in pair]


def test_every_quoted_token_of_the_data_is_a_quotable_piece(error_pairs):
    quoted = 0
    for p in error_pairs:
        for token in re.findall(r"'([^']*)'", p["output"]):
            assert token in quotable_pieces(p["input"]), (p["input"], token)  # verbatim, case kept
            quoted += 1
    assert quoted > 500


def test_pieces_start_at_words_or_after_a_register_r():
    pieces = quotable_pieces("Quita R61 al registro 181")
    assert {"61", "R61", "181", "registro 181", "Quita R61 al registro 181"} <= pieces
    assert "1" not in pieces and "18" not in pieces and "gistro" not in pieces
    assert "REGISTRO 181" not in pieces  # verbatim: the case is the user's


def test_pieces_stop_before_punctuation_and_skip_address_prefixes():
    pieces = quotable_pieces("¿Carga en r16, por favor, H'1G' o 0x7Z7Z7 y 12345h?")
    assert {"16", "r16", "r16,", "1G", "7Z7Z7", "0x7Z7Z7", "12345", "12345h"} <= pieces
    assert not any("'" in p for p in pieces)  # no quote inside a quoted token


def test_prefixed_addresses_are_addresses():
    assert input_addresses("Pasa r3 a la celda H'1a' y a 0x0A00, no a 7Fh.") == {"001A", "0A00", "007F", "000A"}


def test_every_memory_address_is_a_hex_word_of_the_input(thesis_pairs):
    memory = [p for p in thesis_pairs if p["output"].startswith(("LD ", "ST "))]
    for p in memory:
        lo, hi = re.search(r"H'([0-9A-F]{2})'.* ; rD = ([0-9A-F]{2})00$", p["output"]).groups()
        assert hi + lo in input_addresses(p["input"]), p
    assert len(memory) > 2000
    assert input_addresses("Lee 9d y pásalo a r0.") == {"009D", "000A"}  # "a" is a hex word too


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_teacher_forced_references_are_never_banned(constrained_pairs, kind):
    sample = constrained_pairs[:300]
    tok = train_tokenizer(kind, [f"{p['input']}\n{p['output']}" for p in constrained_pairs],
                          300 if kind == "bpe" else None)
    processor = CopiedFromInput(tok, [p["input"] for p in sample])
    for row, p in enumerate(sample):
        ids = tok.encode(p["output"]) + [tok.eos_id]
        for t in range(len(ids)):
            logits = torch.zeros(1, tok.vocab_size)
            processor(logits, [row], [ids[:t]])
            assert logits[0, ids[t]] == 0, (p["output"], tok.decode(ids[:t]))


def _probe(processor: CopiedFromInput, tok):
    """Two views of what the processor allows after a prefix of output: token ids, and their texts."""

    def allowed_ids(prefix: str) -> list[int]:
        logits = torch.zeros(1, tok.vocab_size)
        processor(logits, [0], [tok.encode(prefix)])
        return [i for i in range(tok.vocab_size) if logits[0, i] == 0]

    def allowed(prefix: str) -> set[str]:
        return {tok.decode([i]) for i in allowed_ids(prefix)}

    return allowed_ids, allowed


def test_miscopies_and_unclosed_quotes_are_banned():
    tok = train_tokenizer("char", ["QUITA R61 AL REGISTRO 181\nError: registro '181' inválido y '2' 'x"])
    processor = CopiedFromInput(tok, ["QUITA R61 AL REGISTRO 181"])

    allowed_ids, allowed = _probe(processor, tok)

    assert allowed("Error: registro '1") == {"8"}  # only 181 continues a piece
    assert "'" not in allowed("Error: registro '18") and "'" in allowed("Error: registro '181")
    assert "" not in allowed("Error: registro '181")  # no end of sequence inside a quote
    assert len(allowed_ids("ADDS r1,")) == tok.vocab_size  # valid lines are left alone


def test_address_miscopies_are_banned():
    source = "LEE 1AD0 Y PÁSALO A R4"  # hex words: 1AD0 and A
    tok = train_tokenizer("char", [source + "\nLD r4,[rD+H'D0'] ; rD = 1A00\nST [rD+H'0A'],r4"])
    processor = CopiedFromInput(tok, [source])

    allowed_ids, allowed = _probe(processor, tok)

    assert allowed("LD r4,[rD+") == {"H"}
    assert allowed("LD r4,[rD+H'") == {"D", "0"}  # D0 (from 1AD0) or 0A (from A)
    assert allowed("LD r4,[rD+H'D") == {"0"}
    assert allowed("LD r4,[rD+H'D0") == {"'"}
    assert len(allowed_ids("LD r4,[rD+H'D0'")) == tok.vocab_size  # "] ; rD =" is the model's
    assert allowed("LD r4,[rD+H'D0'] ; rD =") == {" "}
    assert allowed("LD r4,[rD+H'D0'] ; rD = ") == {"1"}  # not "A", "D": the high byte of 1AD0
    assert allowed("LD r4,[rD+H'D0'] ; rD = 1A0") == {"0"}
    assert allowed("LD r4,[rD+H'D0'] ; rD = 1A00") == {"", "\n"}  # the line ends
    assert allowed("ST [rD+H'0A'],r4 ; rD = ") == {"0"}
    assert len(allowed_ids("ADDS r4,")) == tok.vocab_size


def test_the_thesis_task_constrains_and_the_full_task_does_not():
    tok = train_tokenizer("char", ["abc"])
    assert isinstance(Code2Task("thesis").logits_processor(tok, ["a"], 1), CopiedFromInput)
    assert Code2Task("full").logits_processor(tok, ["a"], 1) is None


class _Steer(LogitsProcessor):
    """Writes a fixed start for each row (an Error line's start, up to an opening quote), then
    leans towards quotes, so a random model opens and closes many; the copy constraint runs after."""

    def __init__(self, tok, starts: list[list[int]], inner: CopiedFromInput) -> None:
        self.starts, self.inner = starts, inner
        self.quote = tok.encode("'")[0]

    def __call__(self, logits, rows, generated):
        for i, (row, ids) in enumerate(zip(rows, generated)):
            start = self.starts[row]
            if len(ids) < len(start):
                logits[i] = float("-inf")
                logits[i, start[len(ids)]] = 0.0
            else:
                logits[i, self.quote] += 2.0
        self.inner(logits, rows, generated)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_fuzz_a_random_model_under_the_constraint_quotes_only_the_input(kind):
    """Random broad sentences, decoded by an untrained model under the constraint: every quoted
    token it closes is a verbatim span of its sentence, an unclosed one a prefix of such a span
    (compared as bytes: a byte-level token may end halfway through an accented letter)."""
    import random

    from tinylm.config import ModelConfig
    from tinylm.data.prompt_format import PromptFormat
    from tinylm.generation import Engine, GenerationConfig
    from tinylm.model import GPT
    from tinylm.tasks.code2.generator import generate_examples

    lines = [line for ex in generate_examples("thesis", 120, seed=21, style="broad") for line in ex.input.split("\n")]
    lines = lines[:300]
    corpus = lines + ["Error: registro dirección vacío (ambiguo) inválido mal formado y '"]
    tok = train_tokenizer(kind, corpus, 300 if kind == "bpe" else None)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, block_size=256)).eval()
    rng = random.Random(0)
    starts = [tok.encode("Error: " + rng.choice(["registro '", "dirección '", "registro vacío (ambiguo) y dirección '"]))
              for _ in lines]
    paired = PromptFormat("paired")
    processor = _Steer(tok, starts, CopiedFromInput(tok, lines))
    results = Engine(model, tok).generate([paired.encode(tok, line) for line in lines],
                                          GenerationConfig(max_new_tokens=40, temperature=1.0, seed=0), processor)
    violations, closed = [], 0
    for line, result in zip(lines, results):
        raw = b"".join(b"" if i in tok.special_ids else tok.token_bytes(i) for i in result.token_ids)
        parts = raw.split(b"\n")[0].split(b"'")
        pieces = {p.encode() for p in quotable_pieces(line)}
        for k in range(1, len(parts), 2):
            token = parts[k]
            if k + 1 < len(parts):  # closed
                closed += 1
                if not token or token not in line.encode() or token not in pieces:
                    violations.append((line, raw))
            elif not any(p.startswith(token) for p in pieces):
                violations.append((line, raw))
    assert violations == []
    assert closed >= len(lines) // 2  # the fuzz did exercise closing quotes


def test_a_quote_may_copy_an_accented_letter_split_across_byte_tokens():
    """A byte-level BPE that never saw 'Ñ' writes it as two byte tokens: neither decodes alone,
    yet the pair copies the input ('RÑ' -> 'Ñ'), and a different letter's bytes stay banned."""
    tok = train_tokenizer("bpe", ["Error: registro 'G' inválido y registro 'H' mal formado"] * 20, 300)
    source = "SUMA RÑ Y R1 Y GUÁRDALO EN R2"
    ids = tok.encode("Error: registro 'Ñ' inválido") + [tok.eos_id]
    assert len(tok.encode("Ñ")) == 2  # the premise: 'Ñ' is split into its two bytes
    processor = CopiedFromInput(tok, [source])
    for t in range(len(ids)):
        logits = torch.zeros(1, tok.vocab_size)
        processor(logits, [0], [ids[:t]])
        assert logits[0, ids[t]] == 0, tok.decode(ids[:t])
    logits = torch.zeros(1, tok.vocab_size)
    processor(logits, [0], [tok.encode("Error: registro '")])
    assert logits[0, tok.encode("É")[0]] == float("-inf") or tok.encode("É")[0] == tok.encode("Ñ")[0]
    first = tok.encode("Ñ")[0]
    logits = torch.zeros(1, tok.vocab_size)
    processor(logits, [0], [tok.encode("Error: registro '") + [first]])
    assert logits[0, tok.encode("Ñ")[1]] == 0 and logits[0, tok.encode("'")[0]] == float("-inf")
