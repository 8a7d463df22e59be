"""Paired data (prompt -> completion) for decoder-only training, e.g. Spanish -> assembly.

Each JSONL line is {"input": str, "output": str, "meta": optional, anything else kept}.
An example is encoded as one sequence

    [bos] input [sep] output [eos]
    '---- prompt ---'

and the model is trained on all of it as context but scored only on predicting `output`
and the final `eos` (so it learns to answer and to stop, not to imitate prompts).
Generation must feed exactly the prompt part, `encode_prompt(tokenizer, text)`.

Batches are right-padded: x with pad_id, y with -100. With causal attention a real token
never attends to the padding after it, so no attention mask is needed, and the padding
contributes nothing to the loss:

    loss = F.cross_entropy(logits.view(-1, V), y.view(-1), ignore_index=-100)

Too-long policy: an example of n tokens gives n - 1 input positions; if n - 1 > max_len
(the model's context length) it is dropped, not truncated (a cut completion teaches a wrong
answer). The dropped indices are kept in `dropped` and a warning gives the count; if
every example is too long it is an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import json
import os
import warnings

import torch

from tinylm.errors import TinyLMError
from tinylm.tokenizers import Tokenizer

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index


def read_pairs(path: str | os.PathLike) -> list[dict]:
    """The examples of a JSONL file; blank lines are skipped, anything else malformed is an error."""
    pairs = []
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise TinyLMError(f"{where}: line is not UTF-8 text") from None
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TinyLMError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise TinyLMError(f"{where}: expected a JSON object with 'input' and 'output'")
                for key in ("input", "output"):
                    if key not in obj:
                        raise TinyLMError(f"{where}: missing key '{key}'")
                    if not isinstance(obj[key], str):
                        raise TinyLMError(f"{where}: '{key}' must be a string, got {type(obj[key]).__name__}")
                pairs.append(obj)
    except FileNotFoundError:
        raise TinyLMError(f"file not found: {path}") from None
    if not pairs:
        raise TinyLMError(f"{path}: no examples")
    return pairs


def encode_prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """[bos] text [sep]: what the model sees before it starts writing the output."""
    return [tokenizer.bos_id] + tokenizer.encode(text) + [tokenizer.sep_id]


class PairedDataset:
    def __init__(self, pairs: Sequence[dict], tokenizer: Tokenizer, max_len: int, prefix: Sequence[int] = ()):
        """`prefix`: ids put before every example's prompt (a prompt-tuned model's virtual tokens)."""
        if not pairs:
            raise TinyLMError("no paired examples")
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.examples: list[tuple[list[int], int]] = []  # (token ids, prompt length)
        self.dropped: list[int] = []  # indices into `pairs` of examples longer than max_len
        for i, pair in enumerate(pairs):
            prompt = [*prefix, *encode_prompt(tokenizer, pair["input"])]
            ids = prompt + tokenizer.encode(pair["output"], add_eos=True)
            if len(ids) - 1 > max_len:
                self.dropped.append(i)
            else:
                self.examples.append((ids, len(prompt)))
        if not self.examples:
            raise TinyLMError(f"all {len(pairs)} examples are longer than max_len={max_len} tokens")
        if self.dropped:
            warnings.warn(f"dropped {len(self.dropped)} of {len(pairs)} examples longer than max_len={max_len} tokens", stacklevel=2)

    def __len__(self) -> int:
        return len(self.examples)

    def encode_prompt(self, text: str) -> list[int]:
        return encode_prompt(self.tokenizer, text)

    def collate(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (x, y), both (len(indices), longest - 1); y[t] is the target after x[:t+1]."""
        rows = [self.examples[i] for i in indices]
        width = max(len(ids) for ids, _ in rows) - 1
        x = torch.full((len(rows), width), self.tokenizer.pad_id, dtype=torch.long)
        y = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for r, (ids, prompt_len) in enumerate(rows):
            ids_t = torch.tensor(ids, dtype=torch.long)
            x[r, : len(ids) - 1] = ids_t[:-1]
            # Position t predicts ids[t + 1]; the first output token is predicted at t = prompt_len - 1 (from sep).
            y[r, prompt_len - 1 : len(ids) - 1] = ids_t[prompt_len:]
        return x, y

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of examples drawn uniformly at random, with replacement."""
        return self.collate(torch.randint(len(self.examples), (batch_size,), generator=generator).tolist())

    def iter_batches(self, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: every example once (in a random order from `generator` if shuffle); the last batch may be short."""
        n = len(self.examples)
        order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
        for i in range(0, n, batch_size):
            yield self.collate(order[i : i + batch_size])
