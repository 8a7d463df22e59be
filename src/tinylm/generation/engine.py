"""Engine: the one entry point for generating with a tinylm model.

    engine = Engine(model, tokenizer)
    [result] = engine.generate([tokenizer.encode("ROMEO:")], GenerationConfig(temperature=0.8))
    for event in engine.stream(tokenizer.encode("ROMEO:"), GenerationConfig(max_new_tokens=50)):
        print(event.text, end="")

Prompts are token ids (the API layer encodes text). With a tokenizer, its eos ends a row
(unless ignore_eos) and results carry text. Sampling and greedy decoding run on a
DecodeState (batched prefill, then one step per token); num_beams > 1 runs beam search.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tinylm.errors import TinyLMError
from tinylm.generation.beam import beam_search
from tinylm.generation.config import GenerationConfig
from tinylm.generation.decode import DecodeState
from tinylm.generation.prefill import check_prompts
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent
from tinylm.model import GPT
from tinylm.tokenizers import Tokenizer


class Engine:
    def __init__(self, model: GPT, tokenizer: Tokenizer | None = None) -> None:
        if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
            raise TinyLMError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}"
            )
        self.model = model
        self.tokenizer = tokenizer

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> list[GenerationResult]:
        """Complete every prompt; rows finish independently, results come in prompt order."""
        config = config or GenerationConfig()
        checked, stop_ids = self._check(prompts, config, logits_processor)
        if not checked:
            return []
        with _eval_mode(self.model):
            if config.num_beams > 1:
                return beam_search(
                    self.model, checked, config, stop_token_ids=stop_ids, tokenizer=self.tokenizer,
                    processor=logits_processor,
                )
            state = DecodeState(
                self.model, checked, config, stop_token_ids=stop_ids, tokenizer=self.tokenizer,
                processor=logits_processor,
            )
            while not state.done:
                state.step()
            return state.results()

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
            state = self.start(prompts, config, logits_processor)  # errors surface here, not at first next()
        return self._events(state)

    def start(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> DecodeState:
        """Prefill and return the DecodeState, for callers that run the steps themselves
        (a server interleaving requests). step() runs the model in its current mode: use eval()."""
        config = config or GenerationConfig()
        if config.num_beams > 1:
            raise TinyLMError("beam search returns whole sequences; it cannot be streamed (use generate)")
        checked, stop_ids = self._check(prompts, config, logits_processor)
        if not checked:
            raise TinyLMError("no prompts to generate from")
        return DecodeState(
            self.model, checked, config, stop_token_ids=stop_ids, tokenizer=self.tokenizer,
            processor=logits_processor,
        )

    def _events(self, state: DecodeState) -> Iterator[StreamEvent]:
        with _eval_mode(self.model):
            while not state.done:
                yield from state.step()

    def _check(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig, processor: LogitsProcessor | None
    ) -> tuple[list[list[int]], frozenset[int]]:
        if not isinstance(config, GenerationConfig):
            raise TinyLMError(f"config must be a GenerationConfig, got {type(config).__name__}")
        if processor is not None and not isinstance(processor, LogitsProcessor):
            raise TinyLMError(f"logits_processor must be a LogitsProcessor, got {type(processor).__name__}")
        if config.stop_strings and self.tokenizer is None:
            raise TinyLMError("stop_strings need a tokenizer (the engine has none); use stop_token_ids")
        vocab = self.model.config.vocab_size
        stop_ids = set(config.stop_token_ids)
        if self.tokenizer is not None and not config.ignore_eos:
            stop_ids.add(self.tokenizer.eos_id)
        outside = sorted(t for t in stop_ids if t >= vocab)
        if outside:
            raise TinyLMError(f"stop_token_ids {outside} are outside the vocabulary ({vocab})")
        return check_prompts(self.model, prompts), frozenset(stop_ids)


@contextmanager
def _eval_mode(model: GPT) -> Iterator[None]:
    """Generation never uses dropout; a model that was training goes back to training after."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)
