"""Text-similarity metrics shared by every task: exact match, BLEU and ROUGE-L.

- Exact match, strict: the prediction equals the reference, character for character.
- Exact match, normalized: equal after lower-casing and collapsing every run of whitespace
  (newlines included) into one space, which is what the UGR thesis's training code
  compared (its reference notes: "EM is normalised").
- BLEU: sacrebleu's corpus BLEU (default 13a tokenizer), divided by 100 so it reads on the
  thesis's 0-1 scale. (The thesis used NLTK's corpus_bleu over whitespace tokens; the two
  agree on identical texts and differ slightly in tokenization otherwise.)
- ROUGE-L: the mean over examples of rouge-score's ROUGE-L F-measure with the Porter
  stemmer, the thesis's setting. rouge-score's tokenizer lower-cases and keeps only
  [a-z0-9] runs, so "ADDS rD,r1,r2" is scored as the words "adds rd r1 r2".

sacrebleu and rouge-score are the optional `eval` dependencies; they are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from tinylm.errors import TinyLMError


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(prediction: str, reference: str) -> bool:
    return prediction == reference


def exact_match_normalized(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise TinyLMError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise TinyLMError("no predictions to score")


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU on a 0-1 scale."""
    _check_pairs(predictions, references)
    try:
        import sacrebleu
    except ImportError:
        raise TinyLMError("BLEU needs sacrebleu: pip install 'tinylm[eval]'") from None
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


@lru_cache(maxsize=1)
def _rouge_scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise TinyLMError("ROUGE-L needs rouge-score: pip install 'tinylm[eval]'") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of one pair."""
    return _rouge_scorer().score(reference, prediction)["rougeL"].fmeasure


def mean_rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    _check_pairs(predictions, references)
    return sum(rouge_l(p, r) for p, r in zip(predictions, references)) / len(predictions)
