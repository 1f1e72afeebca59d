"""One dispatcher for every adapter: action → catalog entry → validated params → backend → envelope.

Suffixes follow the OneBot 11 spec, not NapCat's aliases: `<action>_async` answers
`{"status": "async", "retcode": 1}` at once and runs the call in the background;
`<action>_rate_limited` queues the call and runs queued calls one at a time, `rate_limit_interval`
apart. Both validate first, so a bad call is refused synchronously with 1400/1404. Both are
bounded: at most `max_async_calls` background calls run at once and `RATE_LIMITED_QUEUE_SIZE`
calls wait; past either, a call is refused with 1200 (a resource limit, not a bad call) and
never runs.

Stream actions (`gateway.actions.stream`) answer envelopes marked `"stream": "stream-action"`;
those that answer packets too return a `PacketStream`, run here with the transport's `send`
(each packet written before the next is read). A caller without one (the web console, an
HTTP POST quick operation) or an `_async`/`_rate_limited` call gets a 1400 saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from gateway.actions.catalog import Action, Catalog, Params
from gateway.actions.stream import STREAM_ACTIONS
from gateway.backends.base import Backend
from gateway.protocol import envelope, jsonio
from gateway.protocol.envelope import ActionError, ActionNotFound, BadRequest, Envelope
from gateway.protocol.stream import PacketStream, Send, mark_failed, packet

log = structlog.get_logger("gateway.dispatcher")

ASYNC_SUFFIX = "_async"
RATE_LIMITED_SUFFIX = "_rate_limited"
RATE_LIMITED_QUEUE_SIZE = 10_000
ANSWER_BATCH = 512
"""Answers recorded before they are handed to the observer (metrics flush earlier on reads)."""
ROUTE_CACHE_SIZE = 4096
"""Action names whose resolution is remembered (bounded: names come from clients)."""
IMMUTABLE_VALUES = (str, int, float, bool, type(None), tuple, frozenset)


def split_suffix(action: str) -> tuple[str, str]:
    """(`base name`, mode) where mode is `sync`, `async` or `rate_limited`."""
    if action.endswith(RATE_LIMITED_SUFFIX):
        return action.removesuffix(RATE_LIMITED_SUFFIX), "rate_limited"
    if action.endswith(ASYNC_SUFFIX):
        return action.removesuffix(ASYNC_SUFFIX), "async"
    return action, "sync"


Answered = tuple[str, int, float]
"""One answered call for metrics: (action as sent without suffix, retcode, seconds)."""


@dataclass(frozen=True, slots=True)
class Route:
    """What an action name resolves to on this dispatcher's backend."""

    label: str
    """The name as sent, without its suffix."""
    entry: Action
    mode: str
    """`sync`, `async` or `rate_limited`."""
    run: Callable[[Params], Awaitable[Any]]
    """The backend's `call` for this action."""
    no_params: Params | None
    """The validated parameters of a call without any, when they can be shared between calls
    (validation from `{}` succeeds and every value is immutable; models are frozen)."""
    stream: bool = False
    """A stream action (`gateway.actions.stream.STREAM_ACTIONS`)."""


class Dispatcher:
    """Runs actions against the backend and renders every outcome as an envelope."""

    def __init__(
        self,
        catalog: Catalog,
        backend: Backend,
        *,
        rate_limit_interval: float,
        max_async_calls: int = 1000,
    ) -> None:
        self.catalog = catalog
        self.backend = backend
        self._interval = rate_limit_interval
        self._max_async = max_async_calls
        self._background: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[Route, Params]] = asyncio.Queue(RATE_LIMITED_QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self.observer: Callable[[list[Answered]], None] | None = None
        """Receives answers in batches, as `(action, retcode, seconds)` (metrics)."""
        self._answered: list[Answered] = []
        self._routes: dict[str, Route] = {}

    async def start(self) -> None:
        """Start the rate-limited queue's worker."""
        self._worker = asyncio.create_task(self._drain_rate_limited(), name="rate-limited-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Give running `_async` calls up to `grace` seconds (what is left of the shutdown
        grace), then cancel what is left.

        Calls still queued by `_rate_limited` are dropped; their number is logged.
        """
        if self._background and grace > 0:
            await asyncio.wait(self._background, timeout=grace)
        if not self._queue.empty():
            log.warning("rate_limited_calls_dropped", count=self._queue.qsize())
        tasks = [*self._background, *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not awaiting each inside suppress(CancelledError): that would also
            # swallow a cancellation of this stop itself.
            await asyncio.wait(tasks)
        self._worker = None

    async def call(
        self, action: str, params: Any = None, echo: Any = None, send: Send | None = None
    ) -> Envelope:
        """Run one action and return its envelope. Never raises for bad input.

        `send` writes a stream action's intermediate packets (see `gateway.protocol.stream`);
        transports that can carry them pass one."""
        # One coroutine level from adapter to backend on the sync path, and a remembered route
        # per name: every step here is a measurable share of a ~10 µs WebSocket call.
        started = time.perf_counter()
        label = action  # what metrics call it: the name as sent, without its suffix
        route = None
        try:
            route = self._routes.get(action) or self._route(action)
            label = route.label
            entry = route.entry
            shared = route.no_params
            if shared is not None and (params is None or params == {}):
                validated = shared
            else:
                validated = self._validate(route, params)
            if route.stream:
                answer = await self._call_stream(route, validated, echo, send)
            elif route.mode == "sync":
                # `_run` inlined: one coroutine level less on the path every call takes.
                try:
                    data = await route.run(validated)
                except ActionError:
                    raise
                except Exception as error:
                    raise self._crashed(entry, error) from error
                answer = envelope.ok(data, echo)
            elif route.mode == "async":
                self._spawn(route, validated)
                answer = envelope.accepted(echo)
            else:
                self._enqueue(route, validated)
                answer = envelope.accepted(echo)
        except ActionError as error:
            answer = envelope.from_error(error, echo)
            if route is not None and route.stream:
                answer = mark_failed(answer)
        # Appended here, counted in batches: per-answer metric updates cost a measured ~1 µs of
        # a ~10 µs WebSocket call; an append costs a tenth of that.
        answered = self._answered
        answered.append((label, answer["retcode"], time.perf_counter() - started))
        if len(answered) >= ANSWER_BATCH:
            self.flush_answered()
        return answer

    def record(self, action: str, retcode: int, seconds: float = 0.0) -> None:
        """Count an answer a client got for this dispatcher's account without the call running
        (an entry's front refused it), so `onebot_requests_total` holds every answer."""
        answered = self._answered
        answered.append((action, retcode, seconds))
        if len(answered) >= ANSWER_BATCH:
            self.flush_answered()

    def flush_answered(self) -> None:
        """Hand the answers recorded since the last flush to the observer (metrics call this
        before every read, so what they report is up to date)."""
        batch, self._answered = self._answered, []
        if self.observer is not None and batch:
            self.observer(batch)

    def _route(self, action: str) -> Route:
        """Resolve a name (suffix, catalog, backend support); raises ActionNotFound."""
        name, mode = split_suffix(action)
        entry = self.catalog.resolve(name)
        if entry is None and getattr(self.backend, "passes_through", False):
            # A relay forwards what the catalog does not know, parameters unchanged.
            entry = Action(name, Params, "passed through to upstream")
        if entry is None:
            raise ActionNotFound(f"unknown action {name!r}")
        if not self.backend.supports(entry.name):
            hint = f"; {entry.unavailable_hint}" if entry.unavailable_hint else ""
            raise ActionNotFound(
                f"action {name!r} is not available on the {self.backend.kind} backend{hint}"
            )
        route = Route(
            name,
            entry,
            mode,
            self.backend.bind(entry.name),
            _shareable_defaults(entry),
            entry.name in STREAM_ACTIONS,
        )
        if len(self._routes) < ROUTE_CACHE_SIZE:
            self._routes[action] = route
        return route

    @staticmethod
    def _validate(route: Route, params: Any) -> Params:
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            raise BadRequest(
                f"{route.entry.name}: params must be an object, got {jsonio.type_name(params)}"
            )
        return route.entry.validate(params)

    async def _call_stream(
        self, route: Route, params: Params, echo: Any, send: Send | None
    ) -> Envelope:
        """Run a stream action: its packets through `send`, then its final envelope."""
        name = route.entry.name
        if route.mode != "sync":
            raise BadRequest(
                f"{name} is a stream action: it cannot be called with _{route.mode}, "
                "its answer would have nowhere to go"
            )
        try:
            data = await route.run(params)
            if type(data) is PacketStream:
                if send is None:
                    raise BadRequest(
                        f"{name} answers in several packets: call it over HTTP or WebSocket "
                        "(the web console cannot carry them)"
                    )

                async def emit(item: dict[str, Any]) -> None:
                    await send(packet(item, echo))

                data = await data.produce(emit)
        except ActionError:
            raise
        except ConnectionError:
            # The caller is gone; this answer is for the log and metrics only.
            raise envelope.ActionFailed(f"{name}: the caller's connection closed") from None
        except Exception as error:
            raise self._crashed(route.entry, error) from error
        return packet(data, echo)

    async def _run(self, route: Route, params: Params) -> Any:
        try:
            return await route.run(params)
        except ActionError:
            raise
        except Exception as error:
            raise self._crashed(route.entry, error) from error

    @staticmethod
    def _crashed(entry: Action, error: Exception) -> ActionError:
        log.error("action_crashed", action=entry.name, exc_info=error)
        return envelope.ActionFailed(f"{entry.name}: internal error: {error}")

    def _spawn(self, route: Route, params: Params) -> None:
        if len(self._background) >= self._max_async:
            raise envelope.ActionFailed(
                f"{route.entry.name}: {len(self._background)} _async calls are running, the "
                "limit (api.maxAsyncCalls); this one was not run. Retry once one has finished, "
                "or call without _async"
            )
        task = asyncio.create_task(
            self._run_logged(route, params), name=f"async:{route.entry.name}"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _enqueue(self, route: Route, params: Params) -> None:
        try:
            self._queue.put_nowait((route, params))
        except asyncio.QueueFull:
            raise envelope.ActionFailed(
                f"{route.entry.name}: the rate-limited queue is full "
                f"({self._queue.qsize()} calls waiting)"
            ) from None

    async def _run_logged(self, route: Route, params: Params) -> None:
        # The caller already has its answer; a failure can only be reported in the log.
        try:
            await self._run(route, params)
        except ActionError as error:
            log.warning(
                "background_action_failed",
                action=route.entry.name,
                retcode=error.retcode,
                error=error.message,
            )

    async def _drain_rate_limited(self) -> None:
        while True:
            route, params = await self._queue.get()
            await self._run_logged(route, params)
            await asyncio.sleep(self._interval)


def _shareable_defaults(entry: Action) -> Params | None:
    try:
        validated = entry.params.model_validate({})
    except ValidationError:
        return None
    values = [*validated.__dict__.values(), *(validated.model_extra or {}).values()]
    return validated if all(isinstance(v, IMMUTABLE_VALUES) for v in values) else None
