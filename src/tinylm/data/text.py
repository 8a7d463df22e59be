"""Plain-text corpora as token ids on disk, nanoGPT-style.

`prepare_corpus` tokenizes the files once and writes a folder:

    train.bin val.bin test.bin   the token ids, raw little-endian uint16 (uint32 if vocab >= 65536)
    meta.json                    dtype, token counts, split, tokenizer kind, sha256 of every source
    tokenizer.json               the tokenizer that produced the ids (they mean nothing without it)

The split is contiguous, not shuffled: the files are concatenated in the order given (an
eos token after each file marks where one document ends), then the first 90 % of tokens
is train, the next 5 % val, the last 5 % test. Training windows are cut from inside one
split, so no validation text ever appears in a training window - a shuffled split of
overlapping windows would leak. It is deterministic by construction: no seed involved.

`TextDataset` memory-maps one .bin file and serves random windows (x, y = x shifted by
one) for training and sequential windows for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from tinylm.errors import TinyLMError
from tinylm.atomic_files import atomic_write, read_json, write_json
from tinylm.tokenizers import TOKENIZER_FILENAME, Tokenizer, read_text

SPLITS = ("train", "val", "test")
META_FILENAME = "meta.json"


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size < 2**16 else np.uint32)


def _check_split(split: tuple[float, float, float]) -> tuple[float, float, float]:
    split = tuple(float(f) for f in split)
    if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1) > 1e-6 or split[0] == 0:
        raise TinyLMError(f"split must be three fractions (train, val, test) summing to 1 with train > 0, got {split}")
    return split


def prepare_corpus(
    paths: list[Path],
    tokenizer: Tokenizer,
    out_dir: str | os.PathLike,
    split: tuple[float, float, float] = (0.9, 0.05, 0.05),
) -> dict:
    """Tokenize text files into out_dir/{train,val,test}.bin; return the meta.json content."""
    split = _check_split(split)
    if not paths:
        raise TinyLMError("no corpus files given")
    out_dir = Path(out_dir)
    chunks: list[list[int]] = []
    sources = []
    for path in paths:
        text = read_text(path)
        if not text:
            raise TinyLMError(f"corpus file is empty: {path}")
        ids = tokenizer.encode(text, add_eos=True)
        chunks.append(ids)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        sources.append({"path": str(path), "sha256": sha, "tokens": len(ids)})
    dtype = _dtype_for(tokenizer.vocab_size)
    ids = np.concatenate([np.asarray(chunk, dtype=dtype) for chunk in chunks])

    # Boundaries at floor(n * cumulative fraction): the same corpus always splits the same way.
    n = len(ids)
    cuts = [0, int(n * split[0]), int(n * (split[0] + split[1])), n]
    counts = {}
    for name, fraction, start, end in zip(SPLITS, split, cuts, cuts[1:]):
        if fraction > 0 and end == start:
            raise TinyLMError(f"corpus too small: {n} tokens leave the {name} split empty")
        with atomic_write(out_dir / f"{name}.bin", "wb") as f:
            f.write(ids[start:end].tobytes())
        counts[name] = end - start

    tokenizer.save(out_dir / TOKENIZER_FILENAME)
    meta = {
        "dtype": dtype.name,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer_kind": tokenizer.kind,
        "split": list(split),
        "counts": counts,
        "eos_after_each_source": True,
        "sources": sources,
    }
    write_json(out_dir / META_FILENAME, meta)
    return meta


class TextDataset:
    """Windows of `block_size + 1` tokens from one .bin file (its meta.json must sit beside it).

    Holds no sampling state of its own: randomness comes from the torch.Generator the caller
    passes, so saving that generator's state is enough to resume training exactly.
    """

    def __init__(self, path: str | os.PathLike, block_size: int):
        path = Path(path)
        if not path.is_file():
            raise TinyLMError(f"token file not found: {path}")
        meta = read_json(path.parent / META_FILENAME)
        if block_size < 1:
            raise TinyLMError(f"block_size must be positive, got {block_size}")
        self.path = path
        self.block_size = block_size
        self.vocab_size = meta["vocab_size"]
        dtype = np.dtype(meta["dtype"])
        n_tokens = path.stat().st_size // dtype.itemsize  # checked first: numpy cannot map an empty file
        if n_tokens < block_size + 1:
            raise TinyLMError(f"{path} has {n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}")
        self.data = np.memmap(path, dtype=dtype, mode="r")

    def __len__(self) -> int:
        return len(self.data)

    def _windows(self, starts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.block_size
        w = torch.from_numpy(np.stack([self.data[s : s + T + 1] for s in starts]).astype(np.int64))
        return w[:, :-1], w[:, 1:]

    def get_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of shape (batch_size, block_size), windows starting at random positions."""
        starts = torch.randint(len(self.data) - self.block_size, (batch_size,), generator=generator)
        return self._windows(starts.tolist())

    def iter_eval_batches(self, batch_size: int, max_batches: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive non-overlapping windows from the start of the file, for perplexity.

        Each token after the first is a target exactly once, except for the tail shorter than
        a window. The last batch may be smaller than batch_size.
        """
        T = self.block_size
        starts = list(range(0, len(self.data) - T, T))
        for b, i in enumerate(range(0, len(starts), batch_size)):
            if max_batches is not None and b >= max_batches:
                return
            yield self._windows(starts[i : i + batch_size])
