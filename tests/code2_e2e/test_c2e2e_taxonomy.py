"""CODE-2 checks and the error taxonomy on crafted predictions (rules: tasks/code2/task.py)."""

from __future__ import annotations

import pytest

from tinylm.evaluation.task import Example
from tinylm.tasks.code2.task import Code2Task, classify_error, line_pairs, split_input

TASK = Code2Task("thesis", "line", n=20)
REF = "ADDS r3,r1,r2\nLD rF,[rD+H'08'] ; rD = 0000\nError: dirección vacía (ambigua)"


def verdict(prediction: str, reference: str = REF, length: int = 3) -> tuple[dict, list[str]]:
    ex = Example("x\n" * (length - 1) + "x", reference, {"n_lines": length})
    scores = TASK.score(ex, prediction)
    return scores, TASK.taxonomy(ex, prediction, scores)


def test_exact_prediction_has_full_scores_and_no_errors():
    scores, errors = verdict(REF)
    assert scores == {"syntax_valid": 1.0, "exec_equal": 1.0, "line_accuracy": 1.0, "quotes_verbatim": 1.0}
    assert errors == []


@pytest.mark.parametrize("prediction, expected", [
    # A misspelt catalogue message (the thesis's "vaca"): not valid output, and different by position.
    (REF.replace("vacía", "vaca"), ["syntactic"]),
    # Spacing the dataset never writes: assembles, but is not canonical.
    (REF.replace("ADDS r3,r1,r2", "ADDS r3, r1,r2"), ["syntactic"]),
    # A truncated line.
    (REF.replace(" ; rD = 0000", " ; rD = 00"), ["syntactic"]),
    # Valid code, wrong destination register.
    (REF.replace("ADDS r3", "ADDS r4"), ["semantic", "wrong_register"]),
    # Valid code, wrong page in the rD comment: a wrong address, not a register.
    (REF.replace("rD = 0000", "rD = 0100"), ["semantic"]),
    # Valid code, the wrong operation.
    (REF.replace("ADDS", "SUBS"), ["semantic"]),
    # A line left out.
    ("ADDS r3,r1,r2\nError: dirección vacía (ambigua)", ["semantic", "omitted_instruction"]),
    # Addition commutes: different text, same behaviour on every run.
    (REF.replace("ADDS r3,r1,r2", "ADDS r3,r2,r1"), ["equivalent"]),
])
def test_categories(prediction: str, expected: list[str]):
    assert verdict(prediction)[1] == expected


def test_long_blocks_are_flagged_with_their_other_category():
    ref = "\n".join(["ADDS r1,r2,r3"] * 9)
    pred = ref[:-1] + "4"
    assert verdict(pred, ref, length=9)[1] == ["semantic", "long_sequence", "wrong_register"]
    assert verdict(pred, ref, length=8)[1] == ["semantic", "wrong_register"]


def test_scores_of_partial_predictions():
    scores, _ = verdict("ADDS r3,r1,r2")
    assert scores["line_accuracy"] == pytest.approx(1 / 3)
    assert scores["syntax_valid"] == 1.0 and scores["exec_equal"] == 0.0
    assert TASK.score(Example("x", "ADDS r3,r1,r2"), "")["syntax_valid"] == 0.0


def test_classify_error_is_empty_for_exact_matches():
    assert classify_error(REF, REF, 3, {"syntax_valid": 1.0, "exec_equal": 1.0}) == []


def test_line_pairs_follow_spans_and_inputs_are_split_like_prompts():
    ex = {"input": "Pon 300 en r1 \nhaz halt", "output": "LLI r1,H'2C'\nLHI r1,H'01'\nHALT", "meta": {"spans": [2, 1]}}
    assert line_pairs([ex]) == [{"input": "Pon 300 en r1", "output": "LLI r1,H'2C'\nLHI r1,H'01'"},
                                {"input": "haz halt", "output": "HALT"}]
    assert split_input(" a \n\n b\n") == ["a", "b"]
    thesis = Code2Task("thesis", "line", n=20).load_split("train", 3)
    for e in thesis:
        assert len(line_pairs([{"input": e.input, "output": e.reference}])) == len(TASK.prompts(e.input))
    assert Code2Task("thesis", "block", n=20).prompts("a\nb") == ["a\nb"]


def test_quotes_verbatim_scores_an_error_line_quoting_text_the_input_lacks():
    ex = Example("Suma r1 y rG y guárdalo en r3", "Error: registro 'G' inválido", {"n_lines": 1})
    assert TASK.score(ex, "Error: registro 'G' inválido")["quotes_verbatim"] == 1.0
    assert TASK.score(ex, "Error: registro 'H' inválido")["quotes_verbatim"] == 0.0
