"""The CODE-2 recipes and the CODE-2 part of a recipe (Code2Settings).

Both recipes: `llama-style-nano` with full multi-head attention and QK-norm (869 760
parameters), a byte-level BPE of 512 tokens (chosen over characters by measurement), batch
64 lines, Muon on the hidden matrices and AdamW on the rest (training/optim.py), lr 6e-3 ->
6e-4 (cosine, 100 warm-up steps), no weight decay, 8 000 steps, and a 900 s budget the
schedule is fitted to (the demo: 600 s). Muon + QK-norm replaced AdamW at 3e-3 on
2026-12-03: side by side for 600 s on one thread, validation loss 0.028 vs 0.225 and
validation block exact match 0.71 vs 0.06, although a Muon step costs about 1.15x an AdamW
step (3 300 vs 3 770 tokens/s). Batch 128 and template_share 0.5 were measured against this
recipe side by side the same night and neither beat it clearly (docs/code2.md "Template share
and batch size"). Figures: docs/code2.md "Beyond the templates". `tinylm code2 train --preset
thesis|full` and `tinylm train --recipe code2-thesis|code2-full` run them (tasks/code2/train.py).

The `task` table of a recipe holds what only CODE-2 training needs: which dataset
(preset, style, size, seed; both recipes train on the broad style: templates and paraphrases),
the unit the model translates (a line or a whole block), how the
best checkpoint is chosen (exact match on validation blocks), and how batches are drawn.
This module is read by `tinylm --help` (through the plug-in): it imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylm.errors import TinyLMError

# The dataset: the generator's presets and the UGR thesis's size and seed
# (generator.PRESETS, DEFAULT_N, DEFAULT_SEED; tests/code2_e2e check they agree).
DATA_PRESETS = ("thesis", "full")
DATA_STYLES = ("templates", "broad")  # generator.STYLES
UNITS = ("line", "block")
BROAD_TEMPLATE_SHARE = 0.3  # broad.TEMPLATE_SHARE (not imported: broad.py is heavy); a test checks they agree


@dataclass
class Code2Settings:
    data_preset: str = "thesis"
    data_style: str = "templates"  # the generator's templates only, or "broad" (templates + paraphrases)
    n: int = 36_000  # examples generated (split 70/20/10)
    seed: int = 42
    unit: str = "line"  # what one prompt is: a line of the description, or the whole block
    em_every: int = 0  # steps between validation exact-match checks; 0 = at the end only
    em_blocks: int = 100  # validation blocks decoded at each check
    final_blocks: int = 500  # blocks for the final choice: chosen checkpoint vs final weights
    bucket_batches: int = 8  # batches per length bucket (bucketing.py)
    # Oversampling of the hard lines: a line whose output is an error message reporting k
    # problems is drawn error_weight ** k times as often as a valid line (1 = uniform).
    error_weight: float = 1.0
    hex_hints: bool = False  # show every decimal numeral's hex value beside it (numerals.py)
    # Broad style only: the share of template lines in the training blocks, raised above the
    # broad style's own 0.3 by putting blocks of the templates style's training split in place of
    # broad ones (train.with_template_share); validation and test splits stay the broad style's,
    # so runs with different shares are chosen on the same validation blocks. None = 0.3.
    # 0.5 against 0.3 in two side-by-side pairs (600 s, one thread): block EM +0.076 and +0.020
    # (the second within noise): not a clear win, so the recipes leave it at None.
    template_share: float | None = None

    def __post_init__(self) -> None:
        if self.data_preset not in DATA_PRESETS:
            raise TinyLMError(f"data_preset {self.data_preset!r} is not one of {', '.join(DATA_PRESETS)}")
        if self.data_style not in DATA_STYLES:
            raise TinyLMError(f"data_style {self.data_style!r} is not one of {', '.join(DATA_STYLES)}")
        if self.unit not in UNITS:
            raise TinyLMError(f"unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if (self.em_every < 0 or min(self.em_blocks, self.final_blocks, self.bucket_batches) < 1
                or self.n < 10 or self.error_weight < 1):
            raise TinyLMError("em_every must be >= 0, em_blocks, final_blocks and bucket_batches >= 1, n >= 10, "
                              "error_weight >= 1")
        if self.template_share is not None:
            if self.data_style != "broad":
                raise TinyLMError("template_share is for data_style 'broad' (the templates style is all templates)")
            if (isinstance(self.template_share, bool) or not isinstance(self.template_share, (int, float))
                    or not BROAD_TEMPLATE_SHARE <= self.template_share <= 1):
                raise TinyLMError(f"template_share must be a number from {BROAD_TEMPLATE_SHARE} (the broad style's "
                                  f"own) to 1, got {self.template_share!r}")


# QK-norm and Muon (the hidden matrices; AdamW on the rest) at lr 6e-3: issue 17's CPU speedrun
# combination. Against AdamW at 3e-3, side by side for 600 s on one thread (docs/code2.md
# "Beyond the templates"): validation loss 0.028 vs 0.225 and validation block EM 0.71 vs 0.06,
# although a Muon step costs about 1.2x an AdamW step. Batch 64 was kept against batch 128 (lr
# 8e-3, 50 warm-up steps), side by side for 600 s on one thread: validation block EM 0.882 vs
# 0.860 on as many lines, and at two threads batch 128 gets no more rows a second (237 vs 271).
_MODEL = {"n_kv_head": None, "block_size": 256, "qk_norm": True}
_TRAIN = dict(max_steps=8000, batch_size=64, optimizer="muon", lr=6e-3, min_lr=6e-4, warmup_steps=100, weight_decay=0.0,
              grad_clip=1.0, eval_every=1000, eval_batches=10, log_every=100, time_budget_s=900.0)

RECIPES: dict[str, dict[str, Any]] = {
    "code2-thesis": dict(
        description="Spanish -> CODE-2 lines, the UGR thesis's instructions, templates + paraphrases; "
                    "hard error lines drawn more often",
        preset="llama-style-nano", model=_MODEL, tokenizer="bpe", vocab_size=512, train=_TRAIN,
        task=dict(data_preset="thesis", data_style="broad", unit="line", em_every=1000, em_blocks=100, error_weight=2.0),
    ),
    "code2-full": dict(
        description="Spanish -> CODE-2 lines, every instruction, templates + paraphrases; decimal numerals shown "
                    "with their hex value",
        preset="llama-style-nano", model=_MODEL, tokenizer="bpe", vocab_size=512, train=_TRAIN,
        task=dict(data_preset="full", data_style="broad", unit="line", em_every=1000, em_blocks=100, hex_hints=True),
    ),
}
