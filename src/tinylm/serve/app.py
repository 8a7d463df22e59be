"""The HTTP API: OpenAI-compatible completions, the tasks' own routes, health, and the playground.

    app = create_app(tinylm.load("runs/shakespeare/best"))
    uvicorn.run(app, host="127.0.0.1", port=8000)       # what `tinylm serve` does

Routes:
  GET  /                      the web playground (static files, no external network)
  GET  /health                liveness: the scheduler thread is running; queue sizes
  GET  /v1/models             the one served model (OpenAI's list format)
  POST /v1/completions        OpenAI's completions, with stream (server-sent events)
  ...                         each task plug-in's routes (tinylm.tasks), e.g. POST /v1/code2/translate

Every prompt is framed the way the served model was trained (its prompt format, read from
the checkpoint by LanguageModel.encode_prompts): a CODE-2 line model answers
"Suma r1 y r2 y guarda el resultado en r3" on /v1/completions exactly as `tinylm generate`
and `lm.generate` do.

Every error is a JSON body {"error": {"message", "type", "param", "code"}} with a 4xx
status (5xx only for a bug); no request can stop the server. Generation happens on the
scheduler's thread (scheduler.py); a handler only encodes, validates, submits, and turns
the scheduler's events into HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig, LogitsProcessor, StreamEvent
from tinylm.serve.limits import BodyLimit
from tinylm.serve.scheduler import Scheduler, ServerBusy, Ticket
from tinylm.serve.schemas import CompletionRequest

STATIC = Path(__file__).parent / "static"
FINISH_REASONS = {"stop": "stop", "length": "length", "no_valid_token": "stop"}
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class TaskServer:
    """What a task plug-in's routes get from the server (plugin.routes(app, server)): the model,
    its name, the API-key check, errors, and generation through the scheduler's continuous batch."""

    error = APIError

    def __init__(self, app: FastAPI, lm: LanguageModel, model_name: str, authorized: Any) -> None:
        self.app, self.lm, self.model_name, self.authorized = app, lm, model_name, authorized

    async def generate(self, request: Request, prompts: list[list[int]], config: GenerationConfig,
                       processor: LogitsProcessor | None = None) -> tuple[list[str], list[str], int]:
        """Texts and finish reasons of every prompt (token ids), and the tokens generated."""
        return await _run(self.app.state.scheduler, request, prompts, config, processor)


def create_app(
    lm: LanguageModel, *, model_name: str | None = None, api_key: str | None = None, max_rows: int = 64,
    max_waiting: int = 256, max_body_bytes: int = 1 << 20,
) -> FastAPI:
    name = model_name or (lm.path.name if lm.path else "tinylm")
    context = lm.model.config.block_size
    created = int(time.time())
    task = (lm.model.config.extra or {}).get("task")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.scheduler = Scheduler(lm, max_rows=max_rows, max_waiting=max_waiting)
        try:
            yield
        finally:
            app.state.scheduler.close()

    app = FastAPI(title="tinylm", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _install_error_handlers(app)

    def scheduler() -> Scheduler:
        return app.state.scheduler

    async def authorized(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key (send Authorization: Bearer KEY)", code="invalid_api_key")

    def model_card() -> dict[str, Any]:
        # `task`: what the model was trained for; the playground opens on that task's view.
        return {"id": name, "object": "model", "created": created, "owned_by": "tinylm",
                "context_length": context, "task": task, "tasks": [task] if task else [],
                "prompt_format": lm.prompt_format.name}

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> JSONResponse:
        s = scheduler()
        body = {"status": "ok" if s.alive else "dead", "model": name, "running_rows": s.running_rows,
                "waiting": s.waiting, "steps": s.stats.steps, "tokens": s.stats.tokens, "cancelled": s.stats.cancelled}
        return JSONResponse(body, status_code=200 if s.alive else 503)

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}", dependencies=[Depends(authorized)])
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != name:
            raise APIError(404, f"model {model_id!r} is not served here (this server serves {name!r})",
                           param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(body: CompletionRequest, request: Request) -> Any:
        if body.model is not None and body.model != name:
            raise APIError(404, f"model {body.model!r} is not served here (this server serves {name!r})",
                           param="model", code="model_not_found")
        problem = body.unsupported()
        if problem is not None:
            raise APIError(400, problem[1], param=problem[0])
        prompts = lm.encode_prompts(body.prompts)
        for ids in prompts:
            if len(ids) >= context:
                raise APIError(400, f"the prompt has {len(ids)} tokens; this model's context is {context} tokens, "
                               "so a prompt must be shorter", param="prompt", code="context_length_exceeded")
        longest = max(map(len, prompts))
        if body.max_tokens is not None and longest + body.max_tokens > context:
            raise APIError(400, f"max_tokens {body.max_tokens} + {longest} prompt tokens exceeds this model's "
                           f"context of {context} tokens", param="max_tokens", code="context_length_exceeded")
        rows = len(prompts) * body.n
        if rows > scheduler().max_rows:
            raise APIError(400, f"{len(prompts)} prompts x n={body.n} = {rows} sequences; this server decodes at "
                           f"most {scheduler().max_rows} at once", param="n")
        config = GenerationConfig(
            max_new_tokens=body.max_tokens or min(DEFAULT_MAX_TOKENS, context - longest),
            temperature=body.temperature, top_k=max(body.top_k, 0), top_p=body.top_p, min_p=body.min_p,
            repetition_penalty=body.repetition_penalty, presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty, stop_strings=body.stops, seed=body.seed,
            ignore_eos=body.ignore_eos,
        )
        processor = await _processor(body)
        rows_prompts = [ids for ids in prompts for _ in range(body.n)]
        echo = [text for text in body.prompts for _ in range(body.n)] if body.echo else None
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        header = {"id": completion_id, "object": "text_completion", "created": int(time.time()), "model": name,
                  "system_fingerprint": None}
        prompt_tokens = sum(map(len, prompts))
        if body.stream:
            channel = _Channel()
            ticket = _submit(scheduler(), rows_prompts, config, channel, processor)
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                _sse(scheduler(), ticket, channel, header, echo, prompt_tokens, include_usage),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        texts, finish, tokens = await _run(scheduler(), request, rows_prompts, config, processor)
        choices = [
            {"index": i, "text": (echo[i] if echo else "") + text, "logprobs": None,
             "finish_reason": FINISH_REASONS.get(reason, reason)}
            for i, (text, reason) in enumerate(zip(texts, finish))
        ]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}
        return {**header, "choices": choices, "usage": usage}

    async def _processor(body: CompletionRequest) -> LogitsProcessor | None:
        from tinylm.serve.structured import build_processor, requested_grammar

        try:
            wanted = requested_grammar(body)
        except (TinyLMError, ImportError) as e:
            raise APIError(400, f"structured output: {e}", param="grammar") from None
        if wanted is None:
            return None
        param, spec = wanted
        try:
            # Compiling a grammar can take a while: off the event loop.
            return await asyncio.to_thread(build_processor, lm, spec)
        except TinyLMError as e:
            raise APIError(400, str(e), param=param) from None

    from tinylm.tasks import plugins

    server = TaskServer(app, lm, name, authorized)
    for plugin in plugins():
        if plugin.routes is not None:
            plugin.routes(app, server)

    return app


class _Channel:
    """Hands the scheduler thread's items to this request's coroutine, on its event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[StreamEvent] | BaseException] = asyncio.Queue()

    def __call__(self, item: list[StreamEvent] | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    async def events(self, rows: int) -> AsyncIterator[list[StreamEvent]]:
        """Each step's events until every row has finished; raises what the scheduler reported."""
        finished = 0
        while finished < rows:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            finished += sum(e.finish_reason is not None for e in item)
            yield item


def _submit(scheduler: Scheduler, prompts: list[list[int]], config: GenerationConfig, channel: _Channel,
            processor: LogitsProcessor | None) -> Ticket:
    try:
        return scheduler.submit(prompts, config, channel, processor)
    except ServerBusy as e:
        raise APIError(503, str(e), kind="server_error", code="server_busy") from None


class _Collector:
    """Gathers a non-streamed request's text on the scheduler thread and wakes the request's
    coroutine once, at the end: per-step wake-ups of the event loop would compete with the
    decode loop for the GIL, for nothing."""

    def __init__(self, rows: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[BaseException | None] = self.loop.create_future()
        self.texts, self.finish, self.tokens = [""] * rows, [""] * rows, 0
        self._open = rows

    def __call__(self, item: list[StreamEvent] | BaseException) -> None:
        if isinstance(item, BaseException):
            self._wake(item)
            return
        for e in item:
            self.texts[e.row] += e.text
            self.tokens += e.token_id is not None
            if e.finish_reason is not None:
                self.finish[e.row] = e.finish_reason
                self._open -= 1
        if self._open == 0:
            self._wake(None)

    def _wake(self, result: BaseException | None) -> None:
        def settle() -> None:
            if not self.done.done():
                self.done.set_result(result)

        self.loop.call_soon_threadsafe(settle)


async def _run(scheduler: Scheduler, request: Request, prompts: list[list[int]], config: GenerationConfig,
               processor: LogitsProcessor | None) -> tuple[list[str], list[str], int]:
    """Texts and finish reasons of every row, and the tokens generated; cancels if the client leaves."""
    collector = _Collector(len(prompts))
    ticket = _submit(scheduler, prompts, config, collector, processor)
    try:
        while not collector.done.done():
            await asyncio.wait({collector.done}, timeout=0.5)
            if not collector.done.done() and await request.is_disconnected():
                scheduler.cancel(ticket)
                raise APIError(499, "client disconnected")
    except asyncio.CancelledError:
        scheduler.cancel(ticket)
        raise
    error = collector.done.result()
    if isinstance(error, TinyLMError):
        raise APIError(400, str(error))
    if error is not None:
        raise error
    return collector.texts, collector.finish, collector.tokens


async def _sse(scheduler: Scheduler, ticket: Ticket, channel: _Channel, header: dict[str, Any],
               echo: list[str] | None, prompt_tokens: int, include_usage: bool) -> AsyncIterator[bytes]:
    """OpenAI's stream: one `data: {chunk}` per piece of text, then `data: [DONE]`."""
    import json

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**header, 'choices': choices, **extra})}\n\n".encode()

    rows = len(ticket.prompts)
    tokens = 0
    done = False
    try:
        if echo:
            yield chunk([{"index": i, "text": t, "logprobs": None, "finish_reason": None} for i, t in enumerate(echo)])
        try:
            async for events in channel.events(rows):
                choices = []
                for e in events:
                    tokens += e.token_id is not None
                    if e.text or e.finish_reason is not None:
                        reason = FINISH_REASONS.get(e.finish_reason, e.finish_reason) if e.finish_reason else None
                        choices.append({"index": e.row, "text": e.text, "logprobs": None, "finish_reason": reason})
                if choices:
                    yield chunk(choices)
        except TinyLMError as e:
            done = True
            yield f"data: {json.dumps(error_body(str(e)))}\n\n".encode()
            return
        done = True
        if include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                     "total_tokens": prompt_tokens + tokens}
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"
    finally:
        if not done:  # the client went away mid-stream: free its rows
            scheduler.cancel(ticket)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, e.param, e.code), status_code=e.status)

    @app.exception_handler(TinyLMError)
    async def user_error(request: Request, e: TinyLMError) -> JSONResponse:
        return JSONResponse(error_body(str(e)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
        # The top-level field names the parameter; deeper parts are pydantic's union branches.
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = loc[0] if loc else None
        message = f"{param}: {first['msg']}" if param else first["msg"]
        if first.get("type") == "json_invalid":
            message, param = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
        elif first.get("type") == "model_attributes_type" and not loc:
            message = "the body must be a JSON object (sent with Content-Type: application/json)"
        body = error_body(message, param=param, code=first.get("type"))
        body["error"]["details"] = jsonable_encoder(
            [{"loc": err.get("loc"), "msg": err.get("msg"), "type": err.get("type")} for err in errors[:10]]
        )
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error: {type(e).__name__}: {e}", "server_error"), status_code=500)
