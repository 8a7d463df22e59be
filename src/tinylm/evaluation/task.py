"""The Task protocol: what a task plugs into the shared evaluation harness.

The harness is the same for every task: it asks the task for examples, turns each input
into the prompts the model answers (one per example, or one per line for line-aligned
tasks such as CODE-2), generates in batches, joins the answers, and computes the generic
text metrics. The task adds its own checks (`score`), names what went wrong
(`taxonomy`), may constrain decoding (`logits_processor`), and may carry published figures to print beside ours (`anchor`).

Tasks are found by name in the task plug-in registry (tinylm.tasks): a plug-in's
`evaluation` factory builds the task for a given model, since the model's checkpoint says
how it was trained (config.extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tinylm.errors import TinyLMError
from tinylm.generation import LogitsProcessor


@dataclass(frozen=True)
class Example:
    input: str
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Anchor:
    """Published figures to compare with: metric key -> value, and error category -> count."""

    source: str
    metrics: dict[str, float]
    errors: dict[str, int] = field(default_factory=dict)
    examples: int = 0  # how many examples the error counts were taken over
    notes: tuple[str, ...] = ()


class Task(Protocol):
    name: str
    splits: tuple[str, ...]
    # score() keys -> labels for the report, in display order (each is averaged over examples).
    score_labels: dict[str, str]
    # taxonomy() categories -> labels, in display order.
    error_labels: dict[str, str]
    anchor: Anchor | None  # published figures on the task's test split (reports show them beside that split only)
    # A bound on the length in bytes of any correct answer to one prompt, or None. Char and
    # byte-level tokenizers never need more tokens than bytes, so the harness caps
    # max_new_tokens here: a runaway answer stops early (it is wrong either way), and the
    # KV cache of a batch is allocated for this many steps, not for the whole context.
    max_answer_bytes: int | None

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        """The first `limit` examples of a split (all with None); an unknown split is a TinyLMError."""
        ...

    def prompts(self, text: str) -> list[str]:
        """The prompts the model answers for one input, in order."""
        ...

    def join(self, answers: list[str]) -> str:
        """One prediction from the answers to `prompts(...)`."""
        ...

    def length(self, example: Example) -> int:
        """The example's size for 'accuracy by length' (e.g. CODE-2 block lines)."""
        ...

    def score(self, example: Example, prediction: str) -> dict[str, float]:
        """Task-specific checks of one prediction (booleans count as 0/1)."""
        ...

    def taxonomy(self, example: Example, prediction: str, scores: dict[str, float]) -> list[str]:
        """The error categories of a prediction that is not an exact match (may overlap)."""
        ...

    def logits_processor(self, tokenizer: Any, prompts: list[str], num_beams: int) -> LogitsProcessor | None:
        """A constraint on decoding these prompts (rows as the engine numbers them), or None."""
        ...

    # Optional: `breakdown(split, records, limit) -> dict | None`, rows of a split broken down
    # further ({group: {"n", "exact_match", <score keys>}}); `tinylm eval-task` reports them.


def get_task(name: str | None = None, *, model_extra: dict[str, Any] | None = None, data: str | None = None,
             preset: str | None = None) -> Task:
    """The evaluation Task `name` for a model (default: the task the model was trained for)."""
    from tinylm.tasks import get_plugin, model_task, plugins, task_names

    if name is None:
        plugin = model_task(model_extra)
        if plugin is None:
            raise TinyLMError(f"this model was trained for no task; name one with --task ({', '.join(task_names())})")
    else:
        plugin = get_plugin(name)
    if plugin.evaluation is None:
        with_evaluation = [p.name for p in plugins() if p.evaluation is not None]
        raise TinyLMError(f"task {plugin.name} has no evaluation; tasks with one: {', '.join(with_evaluation)}")
    return plugin.evaluation(model_extra or {}, data, preset)

