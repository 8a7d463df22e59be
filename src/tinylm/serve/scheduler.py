"""The scheduler: one thread owns the model and decodes every request in one continuous batch.

    scheduler = Scheduler(lm)
    ticket = scheduler.submit(prompts, config, sink=handle)   # handle(list of events) per step
    scheduler.cancel(ticket)                                  # the client went away

Its loop, forever: take the cancellations and the waiting requests (as many as fit in
`max_rows`), drop the cancelled rows, prefill the new requests and merge them into the
running batch, run one decode step for all rows, and hand each request the events of its
rows. A request therefore joins the batch between two steps of the others, and 16
clients cost little more per step than one: the model's weights are read once per step
for every row.

Nothing a request does can stop the loop: an error while admitting a request goes to that
request only; an error inside a step fails the requests in the batch and the loop starts
a fresh batch.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from tinylm.api import LanguageModel
from tinylm.errors import TinyLMError
from tinylm.generation import GenerationConfig, LogitsProcessor, StreamEvent
from tinylm.generation.continuous import ContinuousBatch, Group

# What a sink receives: the events of one step (one per row of the request that advanced),
# or an exception that ends the request.
Sink = Callable[[list[StreamEvent] | BaseException], None]


class ServerBusy(TinyLMError):
    """The waiting queue is full (HTTP 503)."""


@dataclass(eq=False)
class Ticket:
    prompts: list[list[int]]
    config: GenerationConfig
    processor: LogitsProcessor | None
    sink: Sink
    id: int = 0
    group: Group | None = field(default=None, repr=False)
    cancelled: bool = False


@dataclass
class Stats:
    steps: int = 0
    tokens: int = 0
    admitted: int = 0
    failed: int = 0
    cancelled: int = 0  # requests dropped while their rows were still decoding
    peak_rows: int = 0


class Scheduler:
    def __init__(self, lm: LanguageModel, max_rows: int = 64, max_waiting: int = 256) -> None:
        if max_rows < 1 or max_waiting < 1:
            raise TinyLMError("max_rows and max_waiting must be at least 1")
        self.lm, self.max_rows, self.max_waiting = lm, max_rows, max_waiting
        self.stats = Stats()
        self._batch = ContinuousBatch(lm.model, lm.tokenizer)
        self._waiting: deque[Ticket] = deque()
        self._cancelled: list[Ticket] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="tinylm-scheduler", daemon=True)
        self._threads = torch.get_num_threads()  # intra-op threads are per thread: carry the caller's setting
        lm.model.eval()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def running_rows(self) -> int:
        return self._batch.num_rows

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, prompts: list[list[int]], config: GenerationConfig, sink: Sink,
               processor: LogitsProcessor | None = None) -> Ticket:
        if len(prompts) > self.max_rows:
            raise TinyLMError(
                f"{len(prompts)} sequences in one request; this server decodes at most {self.max_rows} at once")
        ticket = Ticket(prompts, config, processor, sink, next(self._ids))
        with self._cond:
            if self._stopping:
                raise ServerBusy("the server is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise ServerBusy(f"{len(self._waiting)} requests are already waiting; try again later")
            self._waiting.append(ticket)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.cancelled:
                return
            ticket.cancelled = True
            self._cancelled.append(ticket)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        torch.set_num_threads(self._threads)
        while True:
            with self._cond:
                while not (self._stopping or self._waiting or self._cancelled or self._batch.num_rows):
                    self._cond.wait()
                if self._stopping:
                    break
                cancelled, self._cancelled = self._cancelled, []
                admit = []
                room = self.max_rows - self._batch.num_rows
                while self._waiting and len(self._waiting[0].prompts) <= room:
                    ticket = self._waiting.popleft()
                    room -= len(ticket.prompts)
                    if not ticket.cancelled:
                        admit.append(ticket)
            try:
                for ticket in cancelled:
                    if ticket.group is not None and not ticket.group.done:
                        self.stats.cancelled += 1
                        self._batch.cancel(ticket.group)
                for ticket in admit:
                    self._admit(ticket)
                self._step()
            except Exception as e:  # noqa: BLE001 - a bug in bookkeeping fails the batch, not the server
                self._fail_all(e, [t for t in admit if t.group is None])
        self._fail_all(TinyLMError("the server is shutting down"))

    def _admit(self, ticket: Ticket) -> None:
        try:
            ticket.group = self._batch.add(ticket.prompts, ticket.config, ticket.processor, owner=ticket)
            self.stats.admitted += 1
        except Exception as e:  # noqa: BLE001 - reported to that request; the loop goes on
            self.stats.failed += 1
            self._deliver(ticket, e)

    def _step(self) -> None:
        try:
            events = self._batch.step()
        except Exception as e:  # noqa: BLE001 - a broken step must not take the server down
            self._fail_all(e)
            return
        if not events:
            return
        self.stats.steps += 1
        self.stats.peak_rows = max(self.stats.peak_rows, len(events))
        by_ticket: dict[Ticket, list[StreamEvent]] = {}
        for group, event in events:
            self.stats.tokens += event.token_id is not None
            by_ticket.setdefault(group.owner, []).append(event)
        for ticket, ticket_events in by_ticket.items():
            self._deliver(ticket, ticket_events)

    def _deliver(self, ticket: Ticket, item: list[StreamEvent] | BaseException) -> None:
        if ticket.cancelled:
            return
        try:
            ticket.sink(item)
        except Exception:  # noqa: BLE001 - the receiver is gone (e.g. its event loop closed)
            ticket.cancelled = True
            if ticket.group is not None:
                self._batch.cancel(ticket.group)

    def _fail_all(self, error: BaseException, also: Sequence[Ticket] = ()) -> None:
        tickets = [group.owner for group in self._batch.groups()] + list(also)
        with self._cond:
            tickets += self._waiting
            self._waiting.clear()
        self._batch = ContinuousBatch(self.lm.model, self.lm.tokenizer)
        for ticket in tickets:
            self.stats.failed += 1
            self._deliver(ticket, error)
