"""`httpSseServers[]`: an HTTP API server that also streams events on `GET /_events`.

Each event is one `id:` line and one `data:` line of JSON (on an entry serving several
accounts, `/<self_id>/_events` or an `X-Self-ID` header streams one account's); an idle
stream gets a `: keep-alive` comment every `keepAliveInterval` ms so proxies do not cut it.
Heartbeat meta events come every `heartInterval` ms (0 disables) through the stream's
subscription like any event, whether or not the entry also accepts WebSockets; no `lifecycle`
is sent (OneBot 11 sends `connect` on WebSockets only; NapCat's SSE sends none). The token is
checked like any request. (Written here rather than with aiohttp-sse: the bus hands us
pre-encoded bytes shared by every subscriber, and that library wants a `str` per send.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from aiohttp import web

from gateway.bus import Subscription, SubscriptionClosed
from gateway.config import HttpSseServerConfig
from gateway.network.binding import bind, split_account_path
from gateway.network.http_server import HttpServer
from gateway.network.listener import Services
from gateway.network.ws_connection import settings_for
from gateway.protocol import envelope
from gateway.protocol.envelope import ActionError

log = structlog.get_logger("gateway.sse")


class SseServer(HttpServer):
    """One `httpSseServers` entry."""

    entry: HttpSseServerConfig

    def __init__(self, entry: HttpSseServerConfig, services: Services) -> None:
        self._streams: dict[asyncio.Task[Any], Subscription] = {}
        super().__init__(entry, services)
        self._stream_settings = settings_for(entry, services.dispatcher.event_filter())

    def add_routes(self) -> None:
        self.route("/_events", self._events, "GET")
        super().add_routes()

    def pushes_events(self) -> bool:
        return True

    def meta_subscribers(self) -> Iterator[Subscription]:
        yield from super().meta_subscribers()
        yield from self._streams.values()

    async def stop(self) -> None:
        # Streams never finish by themselves: end them first so in-flight requests can drain.
        for task in list(self._streams):
            task.cancel()
        await super().stop()

    async def _events(self, request: web.BaseRequest) -> web.StreamResponse:
        settings = self._stream_settings
        # `/<self_id>/_events` or an X-Self-ID header: that account's events only.
        binding = bind(self.dispatcher, request, split_account_path(request.path)[0])
        if isinstance(binding, ActionError):
            return self._answer(request, envelope.from_error(binding), binding.http_status)
        if binding.account is not None:
            settings = settings.bound_to(binding.account)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **(self.cors_headers(request) or {}),
            }
        )
        await response.prepare(request)
        subscription = self.bus.subscribe(self.name, settings.options)
        task = asyncio.current_task()
        assert task is not None
        self._streams[task] = subscription
        log.info("sse_connected", peer=request.remote)
        keep_alive = self.entry.keep_alive_interval / 1000
        sequence = 0
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(subscription.get(), keep_alive)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                sequence += 1
                await response.write(b"id: %d\ndata: %s\n\n" % (sequence, frame))
        except (SubscriptionClosed, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._streams.pop(task, None)
            self.bus.unsubscribe(subscription)
            log.info("sse_disconnected", peer=request.remote, delivered=sequence)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response
