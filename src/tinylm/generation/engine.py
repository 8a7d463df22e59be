"""Engine: the one entry point for generating with a tinylm model.

    engine = Engine(model, tokenizer)
    [result] = engine.generate([tokenizer.encode("ROMEO:")], GenerationConfig(temperature=0.8))
    for event in engine.stream(tokenizer.encode("ROMEO:"), GenerationConfig(max_new_tokens=50)):
        print(event.text, end="")

Prompts are token ids (the API layer encodes text). With a tokenizer, its eos ends a row
(unless ignore_eos) and results carry text. Sampling and greedy decoding run on the
decoder, a ContinuousBatch with every prompt admitted at once (batched prefill, then one
step per token); num_beams > 1 runs beam search.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tinylm.errors import TinyLMError
from tinylm.generation.beam import beam_search
from tinylm.generation.config import GenerationConfig
from tinylm.generation.continuous import ContinuousBatch
from tinylm.generation.prefill import check_prompts
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent
from tinylm.generation.rows import stop_ids
from tinylm.model import GPT
from tinylm.tokenizers import Tokenizer


class Engine:
    """`overlap_masks`: compute grammar masks while the forward pass runs on the fused step's own
    C++ thread (see continuous.py); None (the default) turns it on where a core is free for that
    thread beside torch's threads. The results are the same either way."""

    def __init__(self, model: GPT, tokenizer: Tokenizer | None = None, *, overlap_masks: bool | None = None) -> None:
        if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
            raise TinyLMError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.overlap_masks = overlap_masks

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> list[GenerationResult]:
        """Complete every prompt; rows finish independently, results come in prompt order."""
        config = config or GenerationConfig()
        _check_config(config)
        with _eval_mode(self.model):
            if config.num_beams > 1:
                checked = check_prompts(self.model, prompts)
                if not checked:
                    return []
                if logits_processor is not None and not isinstance(logits_processor, LogitsProcessor):
                    raise TinyLMError(
                        f"logits_processor must be a LogitsProcessor, got {type(logits_processor).__name__}")
                return beam_search(
                    self.model, checked, config,
                    stop_token_ids=stop_ids(config, self.tokenizer, self.model.config.vocab_size),
                    tokenizer=self.tokenizer, processor=logits_processor,
                )
            if not prompts:
                return []
            batch = ContinuousBatch(self.model, self.tokenizer, overlap_masks=self.overlap_masks)
            group = batch.add(prompts, config, logits_processor)
            while not batch.done:
                batch.step()
            return group.results()

    def stream(
        self, prompt_ids: Sequence[int], config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Iterator[StreamEvent]:
        """Events for one prompt, one per generated token; the last one carries finish_reason."""
        return self.stream_batch([prompt_ids], config, logits_processor)

    def stream_batch(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Iterator[StreamEvent]:
        """Events for several prompts, tagged with the prompt's index, in step order."""
        with _eval_mode(self.model):
            batch = self.start(prompts, config, logits_processor)  # errors surface here, not at first next()
        return self._events(batch)

    def start(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> ContinuousBatch:
        """Prefill and return the decoder with these prompts admitted (one group), for callers
        that run the steps themselves: `step()` until `done` gives (group, event) pairs, and
        `group.results()` the finished rows; more requests may join with `add`. step() runs
        the model in its current mode: use eval()."""
        config = config or GenerationConfig()
        _check_config(config)
        if config.num_beams > 1:
            raise TinyLMError("beam search returns whole sequences; it cannot be streamed (use generate)")
        batch = ContinuousBatch(self.model, self.tokenizer, overlap_masks=self.overlap_masks)
        batch.add(prompts, config, logits_processor)
        return batch

    def _events(self, batch: ContinuousBatch) -> Iterator[StreamEvent]:
        with _eval_mode(self.model):
            while not batch.done:
                for _, event in batch.step():
                    yield event


def _check_config(config: GenerationConfig) -> None:
    if not isinstance(config, GenerationConfig):
        raise TinyLMError(f"config must be a GenerationConfig, got {type(config).__name__}")


@contextmanager
def _eval_mode(model: GPT) -> Iterator[None]:
    """Generation never uses dropout; a model that was training goes back to training after."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)
