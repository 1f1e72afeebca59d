"""`websocketServers[]`: the forward WebSocket server (reference/onebot11.md §1.4).

`/api` answers actions, `/event` pushes events, any other path does both; a `/<self_id>` prefix
(or an `X-Self-ID` header) binds the connection to one account of the entry. The token is checked
before the upgrade: a bad one gets HTTP 403 and no socket is ever opened.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import WebsocketServerConfig
from gateway.network.listener import Listener, Services, envelope_response
from gateway.network.ws_connection import accept, is_upgrade, settings_for
from gateway.protocol import envelope


class WsServer(Listener):
    """One `websocketServers` entry."""

    entry: WebsocketServerConfig

    def __init__(self, entry: WebsocketServerConfig, services: Services) -> None:
        settings = settings_for(entry, services.dispatcher.event_filter())
        super().__init__(entry, services, heart_interval=entry.heart_interval, ws_settings=settings)
        self.settings = settings
        self.route("*", self._handle)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if not is_upgrade(request):
            return envelope_response(
                envelope.failed(
                    1400,
                    "this is a WebSocket server; connect with a WebSocket "
                    "upgrade on /, /api or /event (or /<self_id>/, /<self_id>/api, "
                    "/<self_id>/event)",
                ),
                426,
            )
        return await accept(
            request,
            self.settings,
            self.dispatcher,
            self.bus,
            self.websockets,
            self.services.parser,
        )
