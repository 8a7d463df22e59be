"""Exact match, BLEU and ROUGE-L against hand-computed values and the libraries themselves."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tinylm.errors import TinyLMError
from tinylm.evaluation import metrics

REF = "the cat sat on the mat"
HYP = "the cat sat on mat"


def test_exact_match_strict_and_normalized():
    assert metrics.exact_match("ADDS r3,r1,r2", "ADDS r3,r1,r2")
    assert not metrics.exact_match("adds r3,r1,r2", "ADDS r3,r1,r2")
    assert metrics.exact_match_normalized("adds  r3,r1,r2\n", "ADDS r3,r1,r2")
    # Newlines are whitespace too: the thesis's normalization joins the lines.
    assert metrics.exact_match_normalized("SUBS rD,r2,r2\nHALT", "subs rd,r2,r2 halt")
    # Spacing inside a token is not whitespace collapsing: "r3, r1" stays different from "r3,r1".
    assert not metrics.exact_match_normalized("ADDS r3, r1,r2", "ADDS r3,r1,r2")
    assert not metrics.exact_match_normalized("vaca", "vacía")


def test_bleu_hand_computed():
    # 1-4-gram precisions 5/5, 3/4, 2/3, 1/2; brevity penalty exp(1 - 6/5).
    expected = math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert metrics.corpus_bleu([HYP], [REF]) == pytest.approx(expected, abs=1e-6)
    assert metrics.corpus_bleu([REF], [REF]) == pytest.approx(1.0)


def test_bleu_is_sacrebleu_on_a_0_1_scale():
    preds = ["LD rF,[rD+H'08'] ; rD = 0000\nSUBS rD,r7,r9", "Error: dirección vaca (ambigua)"]
    refs = ["LD rF,[rD+H'08'] ; rD = 0000\nSUBS rD,r7,r9", "Error: dirección vacía (ambigua)"]
    assert metrics.corpus_bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score / 100)


def test_rouge_l_hand_computed_and_library():
    # LCS 5 of 5 predicted and 6 reference words: F = 2 * 1 * 5/6 / (1 + 5/6) = 10/11.
    assert metrics.rouge_l(HYP, REF) == pytest.approx(10 / 11)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pred, ref = "ADDS rD,r1,r2\nST [rD+H'45'],rD", "ADDS rD,r1,r3\nST [rD+H'45'],rD"
    assert metrics.rouge_l(pred, ref) == pytest.approx(scorer.score(ref, pred)["rougeL"].fmeasure)
    assert metrics.mean_rouge_l([HYP, REF], [REF, REF]) == pytest.approx((10 / 11 + 1) / 2)


def test_rouge_tokenizer_ignores_case_and_punctuation():
    # rouge-score keeps [a-z0-9] runs only: the thesis's ROUGE-L cannot see these differences.
    assert metrics.rouge_l("ADDS RD,R1,R2", "adds rd r1 r2") == pytest.approx(1.0)


def test_mismatched_or_empty_inputs_are_user_errors():
    with pytest.raises(TinyLMError):
        metrics.corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(TinyLMError):
        metrics.mean_rouge_l([], [])
