"""The CODE-2 route of the HTTP server: POST /v1/code2/translate.

Spanish in, assembly out, checked by the assembler and run on the emulator: the same
translation as `tinylm code2 translate` (translate.py: the model's own prompts, one per line
for a line model, and the task's copy constraint), decoded by the server's scheduler so
translations share the continuous batch with completions, and the same run
(`run_translation`: Error lines are answers, not code; a HALT is appended; registers start
at r<i> = i so "suma r1 y r2 en r3" visibly gives r3 = 3).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Depends, FastAPI, Request
from pydantic import Field

from tinylm.serve.schemas import StrictBody


class TranslateRequest(StrictBody):
    text: str = Field(..., min_length=1, max_length=20_000, description="Spanish description, one instruction per line")
    max_tokens: int | None = Field(None, ge=1)


def add_routes(app: FastAPI, server: Any) -> None:
    """Mount the route on `app`; `server` is the app's TaskServer (tinylm.serve.app)."""

    @app.post("/v1/code2/translate", dependencies=[Depends(server.authorized)])
    async def translate(body: TranslateRequest, request: Request) -> dict[str, Any]:
        from tinylm.errors import TinyLMError
        from tinylm.generation import GenerationConfig
        from tinylm.tasks.code2.translate import model_task, run_translation

        lm, context = server.lm, server.lm.model.config.block_size
        try:
            task = model_task(lm)
        except TinyLMError as e:
            raise server.error(400, str(e), code="wrong_task") from None
        prompts = task.prompts(body.text)
        if not prompts:
            raise server.error(400, "nothing to translate: the description is empty", param="text")
        ids = lm.encode_prompts(prompts)
        for row in ids:
            if len(row) >= context:
                raise server.error(400, f"a line of the description has {len(row)} tokens; this model's context is "
                                   f"{context}", param="text", code="context_length_exceeded")
        # As the offline translator decodes (evaluation.harness.predict): greedy, at most the
        # task's longest answer unless the request asks for fewer.
        cap = min(context, task.max_answer_bytes or context)
        config = GenerationConfig(temperature=0.0, max_new_tokens=body.max_tokens or cap)
        started = time.perf_counter()
        processor = task.logits_processor(lm.tokenizer, prompts, 1)
        texts, _, tokens = await server.generate(request, ids, config, processor)
        run = await asyncio.to_thread(run_translation, task.join(texts), task.preset)
        return {"model": server.model_name, "text": body.text, **run.to_dict(), "preset": task.preset,
                "usage": {"completion_tokens": tokens, "seconds": round(time.perf_counter() - started, 4)}}
