"""CODE-2 as an evaluation task: Spanish descriptions -> assembly, checked by running it.

Besides the shared text metrics, every prediction gets three checks:
  * syntax_valid: every line is a valid canonical output line (validate.syntax_check, the
    "thesis" or "full" variant of the data preset): the assembler accepts it and it is
    written the way the dataset writes it; Error lines must be catalogue messages;
  * exec_equal: `equivalent(prediction, reference)` — same final registers, flags, memory
    and output ports from 3 random initial states (Error lines compared by position);
  * line_accuracy: the fraction of reference lines reproduced exactly at their position.

Error taxonomy. The UGR thesis (§4.4) sorted its failing examples into five
overlapping categories without giving rules; ours, for every prediction that is not a
strict exact match, are:
  * syntactic: some line is not valid output (syntax_valid false): typos, accents,
    spacing, non-canonical forms, misspelt error messages ("vaca" for "vacía"), a
    truncated line. The thesis's "surface/format" errors.
  * semantic: every line is valid, but the program does not behave like the reference
    (exec_equal false): a wrong address, opcode or operand, a wrong error message.
  * long_sequence: the block has >= 9 lines (the thesis's critical length; cross-cutting,
    counted together with the other categories).
  * omitted_instruction: the prediction has fewer lines than the reference.
  * wrong_register: same number of lines, and some instruction line differs from its
    reference line only in register names (equal once every r0-rF is masked).
  * equivalent (ours, not an error by execution): every line valid and exec_equal true,
    yet the text differs (e.g. ADDS r1,r2,r3 for ADDS r1,r3,r2).
So syntactic, semantic and equivalent partition the non-exact predictions; long_sequence,
omitted_instruction and wrong_register cut across syntactic and semantic, as in the thesis
(an equivalent prediction is no error, so it gets no other category).

Splits. `train` and `valid` are drawn in the model's data style (its recipe's `data_style`:
"templates" or "broad", see generator.STYLES), since they are what it trains and is chosen
on; `test` is always the templates style, the thesis's own test split, so the comparison
with the thesis stays the same for every model; `test-broad` is the broad style's test split;
`handwritten` is the hand-written development set of the preset's format (handwritten.py),
never used for training or choosing a model.

Units. A model trained with unit "line" (the recipes) translates a description line by
line: line i of the input gives line(s) i of the output, exactly how the dataset is built,
so `prompts` splits the input into its non-blank lines and `join` puts the answers back
together. A "block" model answers the whole description at once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from tinylm.errors import TinyLMError
from tinylm.evaluation.task import Anchor, Example
from tinylm.generation import LogitsProcessor
from tinylm.tasks.code2.copy_constraint import CopiedFromInput
from tinylm.tasks.code2.equivalence import equivalent
from tinylm.tasks.code2.errors_catalogue import is_error_line
from tinylm.tasks.code2.generator import DEFAULT_N, DEFAULT_SEED, PRESETS, STYLES, generate_examples, split_examples
from tinylm.tasks.code2.handwritten import load_handwritten
from tinylm.tasks.code2.numerals import add_hex_hints
from tinylm.tasks.code2.recipes import UNITS
from tinylm.tasks.code2.validate import quote_problems, syntax_check

SPLITS = ("train", "valid", "test", "test-broad", "handwritten")
SPLIT_ALIASES = {"val": "valid", "validation": "valid", "broad": "test-broad"}
LONG_BLOCK = 9  # lines; the thesis's "critical length"
# The longest answers in the generated datasets are 133 bytes for one line and 559 for a
# block (thesis preset; full: 45 and 272): these bounds leave room to spare.
MAX_ANSWER_BYTES = {"line": 192, "block": 1024}
_REGISTER = re.compile(r"\br[0-9A-F]\b")

THESIS_ANCHOR = Anchor(
    source="the UGR thesis: T5-Small (60M) fully fine-tuned on 36k examples, 25 min on an RTX 2060",
    metrics={"exact_match_normalized": 0.83, "bleu": 0.97, "rouge_l": 0.9922, "success_rate": 0.8333},
    errors={"syntactic": 559, "semantic": 34, "long_sequence": 176, "omitted_instruction": 2, "wrong_register": 7},
    examples=3600,
    notes=(
        "EM 0.83 / BLEU 0.97 / ROUGE-L 0.9922: normalized EM (lower-case, whitespace collapsed), NLTK BLEU, "
        "on 100 test samples, sampling at temperature 0.2, top-p 0.6 (the author's evaluate.py)",
        "success 83.33 % and the error counts: the 3 600-example test set (600 failures; categories overlap)",
        "the thesis never executed its outputs: no syntactic-validity or execution figures exist",
    ),
)


def split_input(text: str) -> list[str]:
    """The description's lines, stripped, blank ones dropped: what a line model translates."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def line_pairs(examples: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Line-level pairs from block examples: input line i -> its output line(s).

    meta["spans"] (full preset) says how many output lines each input line produced;
    without it, line i maps to line i (thesis preset)."""
    pairs = []
    for ex in examples:
        inputs, outputs = ex["input"].split("\n"), ex["output"].split("\n")
        spans = (ex.get("meta") or {}).get("spans") or [1] * len(inputs)
        if len(spans) != len(inputs) or sum(spans) != len(outputs):
            raise TinyLMError(f"example is not line-aligned: {len(inputs)} input lines, {len(outputs)} output lines")
        k = 0
        for line, span in zip(inputs, spans):
            pairs.append({"input": line.strip(), "output": "\n".join(outputs[k : k + span])})
            k += span
    return pairs


@lru_cache(maxsize=4)
def _generated(preset: str, n: int, seed: int, style: str) -> dict[str, list[dict[str, Any]]]:
    parts = split_examples(generate_examples(preset, n, seed, style))
    return {name: [{"input": e.input, "output": e.output, "meta": e.meta} for e in part] for name, part in parts.items()}


def load_examples(split: str, preset: str = "thesis", data: str | None = None,
                  n: int = DEFAULT_N, seed: int = DEFAULT_SEED, style: str = "templates") -> list[dict[str, Any]]:
    """A split as dicts: read from data/<split>.jsonl, or generated (deterministic for preset, n,
    seed and style; `test` is always the templates style, `test-broad` the broad one), or the
    hand-written set (`handwritten`)."""
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise TinyLMError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if style not in STYLES:
        raise TinyLMError(f"unknown data style {style!r}; choose one of: {', '.join(STYLES)}")
    if split == "handwritten":
        return load_handwritten(preset)
    if data is not None:
        from pathlib import Path

        from tinylm.data import read_pairs

        folder = Path(data)
        if not folder.is_dir():
            raise TinyLMError(f"--data {data}: not a folder (expected train/valid/test.jsonl from `tinylm code2 gen-data`)")
        if split == "test-broad":
            raise TinyLMError("--data holds one style's splits: evaluate its test split (--split test)")
        return read_pairs(folder / f"{split}.jsonl")
    if split == "test":
        return _generated(preset, n, seed, "templates")["test"]
    if split == "test-broad":
        return _generated(preset, n, seed, "broad")["test"]
    return _generated(preset, n, seed, style)[split]


class Code2Task:
    name = "code2"
    splits = SPLITS
    score_labels = {
        "syntax_valid": "syntactic validity (every line valid)",
        "exec_equal": "execution accuracy (emulator)",
        "line_accuracy": "lines exactly right",
        "quotes_verbatim": "Error lines quote only the input",
    }
    error_labels = {
        "syntactic": "syntactic",
        "semantic": "semantic",
        "long_sequence": "long sequence (>= 9 lines)",
        "omitted_instruction": "omitted instruction",
        "wrong_register": "wrong register",
        "equivalent": "text differs, same behaviour",
    }

    def __init__(self, preset: str = "thesis", unit: str = "line", data: str | None = None,
                 n: int = DEFAULT_N, seed: int = DEFAULT_SEED, hex_hints: bool = False,
                 style: str = "templates") -> None:
        if preset not in PRESETS:
            raise TinyLMError(f"unknown code2 preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        if unit not in UNITS:
            raise TinyLMError(f"unknown code2 unit {unit!r}; choose one of: {', '.join(UNITS)}")
        if style not in STYLES:
            raise TinyLMError(f"unknown code2 data style {style!r}; choose one of: {', '.join(STYLES)}")
        self.preset, self.unit, self.data, self.n, self.seed = preset, unit, data, n, seed
        self.style = style  # of train and valid: the model's training data
        self.hex_hints = hex_hints  # numerals annotated with their hex value (numerals.py)
        self.anchor = THESIS_ANCHOR if preset == "thesis" else None
        self.max_answer_bytes = MAX_ANSWER_BYTES[unit]

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        rows = load_examples(split, self.preset, self.data, self.n, self.seed, self.style)
        rows = rows if limit is None else rows[:limit]
        return [Example(r["input"], r["output"], r.get("meta") or {}) for r in rows]

    def model_input(self, text: str) -> str:
        """A description (or one of its lines) as the model reads it."""
        return add_hex_hints(text) if self.hex_hints else text

    def prompts(self, text: str) -> list[str]:
        return [self.model_input(t) for t in (split_input(text) if self.unit == "line" else [text])]

    def join(self, answers: list[str]) -> str:
        return "\n".join(answers)

    def length(self, example: Example) -> int:
        return int(example.meta.get("n_lines") or len(split_input(example.input)))

    def score(self, example: Example, prediction: str) -> dict[str, float]:
        pred, ref = prediction.split("\n"), example.reference.split("\n")
        right = sum(p == r for p, r in zip(pred, ref))
        return {
            "syntax_valid": float(not syntax_check(prediction, self.preset)),
            "exec_equal": float(equivalent(prediction, example.reference, variant=self.preset).equal),
            "line_accuracy": right / max(len(pred), len(ref)),
            "quotes_verbatim": float(not quote_problems(prediction, example.input)),
        }

    def taxonomy(self, example: Example, prediction: str, scores: dict[str, float]) -> list[str]:
        return classify_error(prediction, example.reference, self.length(example), scores)

    def logits_processor(self, tokenizer: Any, prompts: list[str], num_beams: int) -> LogitsProcessor | None:
        """Quoted tokens of Error lines and the addresses of memory lines are copied from the
        input (copy_constraint.py); the full preset has neither form (no Error lines, no
        `; rD = hi00` comments), so it decodes unconstrained."""
        if self.preset != "thesis":
            return None
        return CopiedFromInput(tokenizer, prompts, num_beams)


    def breakdown(self, split: str, records: list[dict[str, Any]], limit: int | None = None) -> dict[str, Any] | None:
        """Per category of the hand-written set (meta["categories"]): examples, exact match and
        execution accuracy; None for the generated splits, which have no categories."""
        if split != "handwritten":
            return None
        return category_breakdown(self.load_split(split, limit), records)


def category_breakdown(examples: list[Example], records: list[dict[str, Any]]) -> dict[str, Any]:
    """{category: {"n", "exact_match", "exec_equal", "quotes_verbatim"}} over the examples having
    it, plus "all"."""
    groups: dict[str, list[dict[str, Any]]] = {"all": list(records)}
    for ex, record in zip(examples, records, strict=True):
        for category in ex.meta.get("categories", ()):
            groups.setdefault(category, []).append(record)
    return {
        cat: {"n": len(rs), "exact_match": sum(r["exact_match"] for r in rs) / len(rs),
              "exec_equal": sum(r["scores"]["exec_equal"] for r in rs) / len(rs),
              "quotes_verbatim": sum(r["scores"]["quotes_verbatim"] for r in rs) / len(rs)}
        for cat, rs in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0]))
    }


def classify_error(prediction: str, reference: str, length: int, scores: dict[str, float]) -> list[str]:
    """The categories of a non-exact prediction (rules in the module docstring)."""
    if prediction == reference:
        return []
    if scores["syntax_valid"] and scores["exec_equal"]:
        return ["equivalent"]
    cats = ["syntactic" if not scores["syntax_valid"] else "semantic"]
    if length >= LONG_BLOCK:
        cats.append("long_sequence")
    pred = [ln for ln in prediction.split("\n") if ln.strip()]
    ref = [ln for ln in reference.split("\n") if ln.strip()]
    if len(pred) < len(ref):
        cats.append("omitted_instruction")
    elif len(pred) == len(ref) and any(
        p != r and not is_error_line(r) and _REGISTER.sub("r?", p) == _REGISTER.sub("r?", r) for p, r in zip(pred, ref)
    ):
        cats.append("wrong_register")
    return cats


def create(model_extra: dict[str, Any], data: str | None, preset: str | None) -> Code2Task:
    """The task for a model: its data preset and unit come from the checkpoint's config.extra["code2"]."""
    info = model_extra.get("code2") or {}
    return Code2Task(preset=preset or info.get("data_preset", "thesis"), unit=info.get("unit", "line"), data=data,
                     n=info.get("n", DEFAULT_N), seed=info.get("seed", DEFAULT_SEED),
                     hex_hints=info.get("hex_hints", False), style=info.get("data_style", "templates"))
