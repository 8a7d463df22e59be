"""A local Hugging Face seq2seq model (T5) for `tinylm eval-task`: the model folder, or the
PEFT adapter folder `tinylm finetune HF_DIR --method lora|prompt` wrote (its base loads from
the folder the adapter names, then PEFT puts the adapter on it).

    tinylm finetune ./t5-small --method lora --data code2-train.jsonl --out runs/t5-lora
    tinylm eval-task runs/t5-lora/adapter --task code2-thesis --split test

HFSeq2Seq gives the evaluation harness what it uses of a tinylm LanguageModel:
`encode_prompts` and `engine.generate(encoded, config, processor)`. Decoding is transformers'
`generate` (greedy, sampling or beam search from the same GenerationConfig); a task's logits
constraint is written for tinylm tokenizers, so these models decode unconstrained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig, GenerationResult


def _peft_adapter(folder: Path) -> dict[str, Any] | None:
    """PEFT's adapter_config.json in `folder` (it names a peft_type; tinylm's own adapter folders do not)."""
    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and "peft_type" in config else None


def is_hf_model_or_adapter(folder: str | Path) -> bool:
    from tinylm.finetune_hf import is_hf_folder

    return _peft_adapter(Path(folder)) is not None or is_hf_folder(folder)


class HFSeq2Seq:
    """A seq2seq model and its tokenizer, batched generation in the harness's terms."""

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.engine = self  # the harness calls lm.engine.generate
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return [self.tokenizer(p)["input_ids"] for p in prompts]

    def generate(self, encoded: list[list[int]], config: GenerationConfig, processor: Any = None) -> list[GenerationResult]:
        if processor is not None:
            raise TinyLMError("a task's decoding constraint needs a tinylm model; evaluate with --unconstrained")
        width = max(map(len, encoded))
        ids = torch.tensor([e + [self.pad] * (width - len(e)) for e in encoded])
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
        options: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "num_beams": config.num_beams,
                                   "length_penalty": config.length_penalty,
                                   "repetition_penalty": config.repetition_penalty, "do_sample": not config.greedy}
        if not config.greedy:
            options.update(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, pad_token_id=self.pad, **options)
        eos = self.tokenizer.eos_token_id
        results = []
        for row, prompt in zip(out.tolist(), encoded):
            tokens = row[1:]  # the decoder start token is not generated
            finish = "length"
            if eos is not None and eos in tokens:
                tokens, finish = tokens[: tokens.index(eos) + 1], "stop"
            text = self.tokenizer.decode([t for t in tokens if t not in (eos, self.pad)], skip_special_tokens=True)
            results.append(GenerationResult(token_ids=tokens, text=text, finish_reason=finish, prompt_tokens=len(prompt)))
        return results


def load_hf_seq2seq(folder: str | Path) -> HFSeq2Seq:
    """The model in `folder`: a Hugging Face seq2seq model folder or a PEFT adapter folder."""
    from tinylm.interop.hf import require_transformers

    tf = require_transformers()
    tf.utils.logging.disable_progress_bar()
    folder = Path(folder)
    adapter = _peft_adapter(folder)
    base = folder
    if adapter is not None:
        named = adapter.get("base_model_name_or_path")
        if not named or not Path(named).is_dir():
            raise TinyLMError(f"the adapter in {folder} names its base model {named!r}, which is not a local folder")
        base = Path(named)
    try:
        config = tf.AutoConfig.from_pretrained(base)
        if not getattr(config, "is_encoder_decoder", False):
            raise TinyLMError(f"{base} is a causal language model; eval-task evaluates Hugging Face seq2seq models "
                              "(T5) — convert a causal one with tinylm's tools or evaluate it in transformers")
        model = tf.AutoModelForSeq2SeqLM.from_pretrained(base, dtype=torch.float32)
        tokenizer = tf.AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError, KeyError) as e:
        raise TinyLMError(f"cannot load the Hugging Face model in {base}: {str(e).strip().splitlines()[0]}") from None
    if adapter is not None:
        import peft

        model = peft.PeftModel.from_pretrained(model, folder)
    return HFSeq2Seq(model, tokenizer, str(folder))
