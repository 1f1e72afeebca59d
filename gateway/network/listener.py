"""What every listening adapter shares: the runner/site split, auth before any work, graceful stop.

A listener owns an aiohttp app on its own runner and site, checks the entry's token before any
other work (and so before a WebSocket upgrade), tracks in-flight requests, and, when it pushes
events (WebSockets, SSE streams), owns their heartbeat. On stop it lets in-flight requests and
WebSocket calls finish within `api.shutdownGrace`, then closes WebSockets with 1001.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from gateway.accounts import Account, OneAccount
from gateway.bus import EventBus, Subscription
from gateway.front import BoundFront, EntryFront
from gateway.metrics import Metrics
from gateway.network.auth import request_token, token_matches
from gateway.network.binding import split_account_path
from gateway.network.body_parser import BodyParser
from gateway.network.malformed import EnvelopeServer
from gateway.network.ws_connection import (
    Registry,
    WsSettings,
    cancel_and_wait,
    close_all,
    is_upgrade,
    meta_frame,
)
from gateway.protocol import envelope, events, jsonio

log = structlog.get_logger("gateway.listener")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
LAST_WAIT = 0.01
"""Seconds aiohttp's own shutdown gets once the grace is spent, to cancel what is left (it
treats 0 as no limit at all)."""


@dataclass(frozen=True, slots=True)
class Services:
    """The services an adapter is built with: shared ones, and its entry's front."""

    dispatcher: EntryFront
    """What the adapter calls actions through: its entry's front of the accounts it serves."""
    bus: EventBus
    shutdown_grace: float
    """Seconds from the start of a stop until its deadline (see `Listener.stop`)."""
    metrics: Metrics
    parser: BodyParser


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def json_response(
    body: Any, status: int = 200, extra_headers: Mapping[str, str] | None = None
) -> web.Response:
    """Any JSON body (an envelope, an admin answer) as an `application/json` response."""
    # A ready header mapping: content_type=/charset= are parsed and rebuilt per response.
    headers = JSON_HEADERS if extra_headers is None else {**JSON_HEADERS, **extra_headers}
    try:
        data = jsonio.dumps(body)
    except TypeError as error:
        log.error("answer_not_encodable", error=str(error))
        data = envelope.encode(body, jsonio.dumps) if isinstance(body, dict) else b"null"
    return web.Response(body=data, status=status, headers=headers)


envelope_response = json_response


class Heartbeat:
    """Offers a heartbeat meta event every `interval` ms into each subscription `targets()`
    names, where its connection's one sender writes it like any event: one per account the
    subscription takes events of, among `accounts()`.

    The only source of heartbeats, for every transport: WebSocket connections and SSE streams
    of a listener, a reverse WebSocket client while connected, an HTTP POST client.
    """

    def __init__(
        self,
        accounts: Callable[[], Iterable[Account]],
        interval: int,
        targets: Callable[[], Iterable[Subscription]],
        name: str,
    ) -> None:
        self.accounts = accounts
        self.interval = interval
        self.targets = targets
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Begin beating, unless the interval is 0 or less (heartbeats disabled)."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._beat(), name=f"heartbeat:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _beat(self) -> None:
        interval = self.interval
        while True:
            await asyncio.sleep(interval / 1000)
            try:
                frames: dict[int, bytes] = {}
                for account in self.accounts():
                    beat = events.heartbeat(account.self_id, account.backend.status(), interval)
                    frames[account.self_id] = meta_frame(beat)
                for subscription in self.targets():
                    wanted = subscription.options.accounts
                    if type(wanted) is OneAccount:
                        # Bound to one account: its beat by lookup, not a pass over them all.
                        frame = frames.get(wanted.account.self_id)
                        if frame is not None:
                            subscription.offer(frame)
                        continue
                    for self_id, frame in frames.items():
                        if wanted is None or wanted.serves(self_id):
                            subscription.offer(frame)
            except Exception:
                # One failed beat (a backend that cannot say its status) skips that beat only.
                log.exception("heartbeat_failed", name=self.name)


class Listener:
    """Base of HTTP and WebSocket servers. Subclasses add routes (`route`) and checks (`screen`)."""

    def __init__(
        self, entry: Any, services: Services, *, heart_interval: int, ws_settings: WsSettings | None
    ) -> None:
        self.name: str = entry.name
        self.entry = entry
        self.services = services
        self.dispatcher = services.dispatcher
        self.bus = services.bus
        self.ws_settings = ws_settings
        self.websockets: Registry = {}
        # aiohttp's low-level server, not an Application: a listener has one catch-all route (two
        # with SSE) and answers everything itself, so the router, middleware chain and response
        # signals would be pure cost (a measured ~15 µs of a ~60 µs HTTP request). Each route
        # handler is wrapped once by `guard` instead of middlewares.
        self._routes: list[tuple[str, str, Handler]] = []
        self._runner: web.ServerRunner | None = None
        self._site: web.TCPSite | None = None
        self.heartbeat = Heartbeat(
            services.dispatcher.accounts, heart_interval, self.meta_subscribers, self.name
        )
        self._server: web.Server | None = None
        self._origins: frozenset[str] = frozenset(entry.allowed_origins)
        self.in_flight = 0
        """Requests being served; `stop()` waits for them (see `guard`)."""
        self._drained: asyncio.Future[None] | None = None
        """Created by `stop()` while requests are in flight; resolved when the last one ends."""

    def route(
        self, path: str, handler: Handler, method: str = "*", *, guarded: bool = False
    ) -> None:
        """Route requests for `path` (`*` for any; first match wins) and `method` (`*` for any)
        to `handler`, which runs behind `guard` unless it is `guarded` itself (does what `guard`
        does: the HTTP API's hot path saves a coroutine level)."""
        self._routes.append((method, path, handler if guarded else self.guard(handler)))

    def _request_handler(self) -> Handler:
        routes = self._routes
        if len(routes) == 1 and routes[0][:2] == ("*", "*"):
            return routes[0][2]

        async def route(request: web.BaseRequest) -> web.StreamResponse:
            # A `/<self_id>` prefix names an account (`gateway.network.binding`), not a route.
            path, method = split_account_path(request.path)[1], request.method
            for route_method, route_path, handler in routes:
                if route_path in ("*", path) and route_method in ("*", method):
                    return await handler(request)
            raise AssertionError(f"no route for {method} {path}")  # every listener has a "*"

        return route

    def _make_request(
        self,
        message: Any,
        payload: Any,
        protocol: Any,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=self.entry.max_body_size,
        )

    def guard(self, handler: Handler) -> Handler:
        """Wrap a route handler: count it in flight, run `screen` first, then the handler."""

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            self.in_flight += 1
            try:
                refusal = self.screen(request)
                if refusal is not None:
                    return refusal
                return await handler(request)
            finally:
                self.leave()

        return guarded

    def leave(self) -> None:
        """One request less in flight (the pair of `in_flight += 1`)."""
        self.in_flight -= 1
        drained = self._drained
        if not self.in_flight and drained is not None and not drained.done():
            drained.set_result(None)

    def screen(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """Checks before any work; a response ends the request. Here: the token (403 + 1403),
        then, where `allowedOrigins` is set, the browser origin of a WebSocket upgrade (403 +
        1403, no socket). Subclasses may answer earlier (a CORS preflight comes before both).
        """
        expected = self.entry.token
        if expected:
            presented = request_token(request)
            if not token_matches(expected, presented):
                return self._refuse_token(request, presented)
        if self._origins and self.ws_settings is not None:
            return self._screen_origin(request)
        return None

    def _screen_origin(self, request: web.BaseRequest) -> web.StreamResponse | None:
        origin = request.headers.get("Origin")
        if origin is None or origin in self._origins or not is_upgrade(request):
            return None
        log.warning("origin_refused", server=self.name, peer=request.remote, origin=origin)
        error = envelope.Forbidden(f"origin {origin!r} may not open WebSockets on this server")
        return envelope_response(envelope.from_error(error), error.http_status)

    def _refuse_token(self, request: web.BaseRequest, presented: str | None) -> web.Response:
        self.services.metrics.auth_failures.labels(self.name).inc()
        log.warning(
            "auth_failed",
            server=self.name,
            peer=request.remote,
            path=request.path,
            token_presented=presented is not None,
        )
        reason = "access token is wrong" if presented else "access token is missing"
        error = envelope.Forbidden(reason)
        return envelope_response(envelope.from_error(error), error.http_status)

    async def start(self) -> None:
        server = EnvelopeServer(
            self._request_handler(),
            request_factory=self._make_request,
            access_log=None,
            name=self.name,
        )
        # `stop` waits for requests itself (until its deadline), then lets aiohttp cancel what
        # is left; the runner's own wait must not add a second grace.
        runner = web.ServerRunner(server, shutdown_timeout=LAST_WAIT)
        self._server = server
        await runner.setup()
        self._runner = runner
        self._site = web.TCPSite(runner, self.entry.host or None, self.entry.port)
        try:
            await self._site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self.pushes_events():
            self.heartbeat.start()

    def pushes_events(self) -> bool:
        """Whether this listener has event subscribers (heartbeats go to them): WebSockets when
        it accepts them; subclasses with event streams say so too."""
        return self.ws_settings is not None

    def meta_subscribers(self) -> Iterator[Subscription]:
        """Subscriptions that heartbeats go to: every open event WebSocket's."""
        for connection in self.websockets.values():
            if connection.subscription is not None:
                yield connection.subscription

    async def stop(self) -> None:
        """Stop within `api.shutdownGrace` seconds from now: in-flight requests and WebSocket
        calls get until that deadline to finish (the supervisor stops every listener at once,
        so they share it); then WebSockets close with 1001 and what is left is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.services.shutdown_grace
        # 1. Close the listener: no new connections, no new WebSocket calls. (Stopping twice is
        #    harmless.)
        if self._site is None:
            return
        site, self._site = self._site, None
        for connection in self.websockets.values():
            connection.stop_calls()
        await site.stop()
        # 2. Stop heartbeats. WebSockets: running calls answer (until the deadline), then close
        #    with 1001 (going away).
        await self.heartbeat.stop()
        await close_all(self.websockets, deadline)
        # 3. Let in-flight requests finish, bodies included. (aiohttp's own shutdown stops reading
        #    from connections at once, so a request still uploading its body would hang.)
        if self.in_flight:
            self._drained = loop.create_future()
        try:
            if self._drained is not None:
                remaining = max(deadline - loop.time(), 0)
                await asyncio.wait_for(asyncio.shield(self._drained), remaining)
        except TimeoutError:
            log.warning("shutdown_grace_expired", server=self.name, in_flight=self.in_flight)
        # 4. Close idle connections and cancel whatever is left.
        assert self._runner is not None
        assert self._server is not None
        self._server.pre_shutdown()
        await self._server.shutdown(max(deadline - loop.time(), LAST_WAIT))
        await self._runner.cleanup()

    async def accounts_changed(self) -> None:
        """The gateway's accounts changed (a reload): connections bound to an account that is
        gone close with 1001; the others stay (unbound ones take the entry's accounts as they
        are now)."""
        current = set(map(id, self.services.dispatcher.scope.accounts))
        gone = [
            connection
            for connection in self.websockets.values()
            if isinstance(connection.dispatcher, BoundFront)
            and id(connection.dispatcher.account) not in current
        ]
        for connection in gone:
            connection.stop_calls()
        if gone:
            deadline = asyncio.get_running_loop().time() + self.services.shutdown_grace
            await asyncio.gather(
                *(connection.shut_down(deadline, "account removed") for connection in gone)
            )

    def describe(self) -> str:
        scheme = "http" if self.ws_settings is None or hasattr(self.entry, "enable_cors") else "ws"
        assert self._runner is not None, "not started"
        return ", ".join(f"{scheme}://{_format_address(a)}" for a in self._runner.addresses)

    @property
    def port(self) -> int:
        """The bound port (useful with `port: 0`)."""
        assert self._runner is not None, "not started"
        return int(self._runner.addresses[0][1])


def _format_address(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
