"""The one generation engine: prefill + decode with a KV cache, samplers, beam search, streaming.

    from tinylm.generation import Engine, GenerationConfig
    results = Engine(model, tokenizer).generate(prompts, GenerationConfig(temperature=0))

Files: config (the knobs), sampling (penalties, top-k/top-p/min-p, the draw), processor
(the masking hook for grammars), prefill (batching prompts into a KV cache), text (stop
strings over streamed text), decode (the step loop), beam (beam search), engine (the API),
continuous (a batch that rows join and leave between steps, each with its own settings:
what the server's scheduler runs).
"""

from tinylm.generation.config import GenerationConfig
from tinylm.generation.continuous import ContinuousBatch
from tinylm.generation.decode import DecodeState
from tinylm.generation.engine import Engine
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent

__all__ = ["Engine", "GenerationConfig", "GenerationResult", "StreamEvent", "LogitsProcessor", "DecodeState",
           "ContinuousBatch"]
