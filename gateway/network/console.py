"""The web console's endpoints on the admin listener (the page itself is static, in
`gateway/console/`; every data endpoint needs the admin token, as a header or `?access_token=`).

- `GET /api/overview`: adapters, backend and action counters.
- `GET /api/catalog`: every action with its parameter schema (the Actions panel builds forms).
- `POST /api/call {action, params}`: run an action through the dispatcher; the envelope.
- `GET /api/stream`: server-sent events: `event: overview` every second and `event: event` for
  each published event (a bus subscriber like any other, with a bounded queue).
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.bus import SubscriberOptions, SubscriptionClosed
from gateway.network.listener import json_response
from gateway.protocol import jsonio

if TYPE_CHECKING:
    from gateway.supervisor import Supervisor

CONSOLE_SUBSCRIBER = "(console)"
OVERVIEW_INTERVAL = 1.0
STATIC = Path(str(resources.files("gateway.console")))


def add_console_routes(app: web.Application, supervisor: Supervisor) -> None:
    """Register the console page and its API on the admin app."""
    console = Console(supervisor)
    app.router.add_get("/", console.index)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/overview", console.overview)
    app.router.add_get("/api/catalog", console.catalog)
    app.router.add_post("/api/call", console.call)
    app.router.add_get("/api/stream", console.stream)


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


class Console:
    """Handlers bound to one supervisor."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    async def index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def overview(self, _request: web.Request) -> web.Response:
        return json_response(self.supervisor.overview())

    async def catalog(self, _request: web.Request) -> web.Response:
        actions = [
            {
                "name": action.name,
                "aliases": list(action.aliases),
                "summary": action.summary,
                "schema": action.params.model_json_schema(),
            }
            for action in self.supervisor.dispatcher.catalog
            if self.supervisor.backend.supports(action.name)
        ]
        return json_response(
            {
                "backend": self.supervisor.backend.kind,
                "actions": sorted(actions, key=lambda a: a["name"]),
            }
        )

    async def call(self, request: web.Request) -> web.Response:
        try:
            body = jsonio.loads(await request.read())
        except jsonio.JsonError as error:
            return json_response({"message": f"invalid JSON: {error}"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return json_response({"message": 'send {"action": "...", "params": {...}}'}, 400)
        answer = await self.supervisor.dispatcher.call(body["action"], body.get("params"))
        return json_response(answer)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        bus = self.supervisor.bus
        subscription = bus.subscribe(
            CONSOLE_SUBSCRIBER, SubscriberOptions(report_self_message=True, queue_size=2048)
        )
        try:
            await self._send_overview(response)
            while True:
                try:
                    frame = await asyncio.wait_for(subscription.get(), OVERVIEW_INTERVAL)
                except TimeoutError:
                    await self._send_overview(response)
                    continue
                await response.write(b"event: event\ndata: %s\n\n" % frame)
        except (ConnectionError, SubscriptionClosed, asyncio.CancelledError):
            pass
        finally:
            bus.unsubscribe(subscription)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _send_overview(self, response: web.StreamResponse) -> None:
        data = jsonio.dumps(self.supervisor.overview())
        await response.write(b"event: overview\ndata: %s\n\n" % data)
