"""Datasets: tokenized text corpora on disk, paired prompt/completion JSONL, Tiny Shakespeare."""

from tinylm.data.paired import IGNORE_INDEX, PairedDataset, encode_prompt, read_pairs
from tinylm.data.shakespeare import tinyshakespeare_path
from tinylm.data.text import TextDataset, prepare_corpus

__all__ = [
    "IGNORE_INDEX", "PairedDataset", "encode_prompt", "read_pairs",
    "tinyshakespeare_path", "TextDataset", "prepare_corpus",
]
