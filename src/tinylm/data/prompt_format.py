"""How a model reads a prompt: its prompt format, recorded in its checkpoint.

A model trained on a text corpus continues text, so its prompt is the text's tokens
("plain"). A model trained on paired data learned to answer `[bos] input [sep]` (data/
paired.py, "paired"): given the bare text it would continue the description instead of
answering it, e.g. a CODE-2 line model answers "Suma r1 y r2 y guarda el resultado en r3"
with "ADDS r3,r1,r2" only when the sentence is framed. A chat template would be a third
format.

The checkpoint says which: `config.extra["prompt_format"]`, written by the run set-up
(training/run.py). A checkpoint written before it existed has no such entry: a task's
model (config.extra["task"]) then reads its task's format (the plug-in's prompt_format),
anything else is plain. Every entry point (the Python API, `tinylm generate` and `chat`,
the server, the evaluation harness, the task tools) encodes prompts through
LanguageModel.encode_prompts, which applies it, so a model is prompted one way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinylm.data.paired import encode_prompt
from tinylm.errors import TinyLMError
from tinylm.tokenizers import Tokenizer

FORMATS = ("plain", "paired")


@dataclass(frozen=True)
class PromptFormat:
    name: str
    # Ids put before every prompt: a prompt-tuned model's virtual tokens (transforms/prompt.py).
    prefix: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in FORMATS:
            raise TinyLMError(f"unknown prompt format {self.name!r}; choose one of: {', '.join(FORMATS)}")

    def encode(self, tokenizer: Tokenizer, text: str) -> list[int]:
        """The token ids the model sees before it starts writing."""
        if self.name == "paired":
            return [*self.prefix, *encode_prompt(tokenizer, text)]
        # An empty prompt still needs one token to condition on: bos.
        return [*self.prefix, *(tokenizer.encode(text) or [tokenizer.bos_id])]


def prompt_format_of(model_extra: Mapping[str, Any] | None) -> PromptFormat:
    """A checkpoint's prompt format, from its config.extra (see the module docstring)."""
    extra = model_extra or {}
    name = extra.get("prompt_format")
    if name is None:
        from tinylm.tasks import model_task

        plugin = model_task(extra)
        name = plugin.prompt_format if plugin is not None else "plain"
    return PromptFormat(name)
