"""The one generation engine: prefill + decode with a KV cache, samplers, beam search, streaming.

    from tinylm.generation import Engine, GenerationConfig
    results = Engine(model, tokenizer).generate(prompts, GenerationConfig(temperature=0))

Files: config (the knobs), sampling (penalties, top-k/top-p/min-p, the draw), processor
(the masking hook for grammars), prefill (batching prompts into a KV cache),
incremental_text (a row's text as tokens arrive, stop strings cut off), rows (the row
bookkeeping every decoder shares: accepting a token, stop ids, penalty history, masking,
seeding, finish reasons), continuous (the decoder: a batch that rows join and leave
between steps, each with its own settings; generate, stream and the server's scheduler
all run it), beam (beam search), engine (the API).
"""

from tinylm.generation.config import GenerationConfig
from tinylm.generation.continuous import ContinuousBatch
from tinylm.generation.engine import Engine
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult, StreamEvent

__all__ = ["Engine", "GenerationConfig", "GenerationResult", "StreamEvent", "LogitsProcessor",
           "ContinuousBatch"]
