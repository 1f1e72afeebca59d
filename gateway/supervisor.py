"""The supervisor owns the backend, the dispatcher and one adapter per enabled config entry.

Start order: backend → dispatcher → adapters (in file order). Stop order is the reverse, so no
adapter ever calls into a stopped dispatcher or backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from gateway.actions import default_catalog
from gateway.backends.base import Backend
from gateway.backends.sandbox.backend import SandboxBackend
from gateway.bus import EventBus
from gateway.config import GatewayConfig
from gateway.dispatcher import Dispatcher
from gateway.logging import redactor
from gateway.network.adapter import Adapter
from gateway.network.http_client import HttpClient
from gateway.network.http_server import HttpServer
from gateway.network.listener import Services
from gateway.network.sse_server import SseServer
from gateway.network.ws_client import WsClient
from gateway.network.ws_server import WsServer

log = structlog.get_logger("gateway.supervisor")


class StartupError(Exception):
    """The gateway could not start; the message is one readable line naming the entry."""


AdapterFactory = Callable[[Any, Services], Adapter]

# Implementations chosen by kind from a table; kinds not listed yet are reported at start.
ADAPTER_FACTORIES: dict[str, AdapterFactory] = {
    "httpServers": HttpServer,
    "httpSseServers": SseServer,
    "httpClients": HttpClient,
    "websocketServers": WsServer,
    "websocketClients": WsClient,
}


def create_backend(config: GatewayConfig, bus: EventBus) -> Backend:
    """The backend named by `backend.type`; it publishes its events on `bus`."""
    return SandboxBackend(config.backend, bus)


class Supervisor:
    """Runs one config: `start()`, then `stop()` on shutdown."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.bus = EventBus()
        self.backend = create_backend(config, self.bus)
        self.dispatcher = Dispatcher(
            default_catalog(),
            self.backend,
            rate_limit_interval=config.api.rate_limit_interval / 1000,
        )
        self.services = Services(self.dispatcher, self.bus, config.api.shutdown_grace)
        self.adapters: dict[str, Adapter] = {}

    async def start(self) -> None:
        """Start everything; on failure stop what started and raise StartupError."""
        redactor.set_tokens(entry.token for _, _, entry in self.config.network.entries())
        if self.config.network.plugins:
            log.warning(
                "plugins_ignored",
                count=len(self.config.network.plugins),
                reason="NapCat JS plugins cannot run in this gateway",
            )
        await self.backend.start()
        await self.dispatcher.start()
        try:
            await self._start_adapters()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "gateway_ready",
            backend=self.backend.kind,
            self_id=self.backend.self_id,
            adapters=len(self.adapters),
        )

    async def _start_adapters(self) -> None:
        for kind, index, entry in self.config.network.entries():
            if not entry.enable:
                continue
            factory = ADAPTER_FACTORIES.get(kind)
            if factory is None:
                log.warning("adapter_kind_unavailable", kind=kind, name=entry.name)
                continue
            adapter = factory(entry, self.services)
            try:
                await adapter.start()
            except OSError as error:
                where = f"{getattr(entry, 'host', '')}:{getattr(entry, 'port', '')}"
                raise StartupError(
                    f"network.{kind}[{index}] ({entry.name!r}): cannot listen on {where}: "
                    f"{error.strerror or error}"
                ) from None
            self.adapters[entry.name] = adapter
            log.info("adapter_started", kind=kind, name=entry.name, address=adapter.describe())

    async def stop(self) -> None:
        """Stop adapters (letting in-flight requests finish), then dispatcher, then backend."""
        for name, adapter in reversed(list(self.adapters.items())):
            await adapter.stop()
            log.info("adapter_stopped", name=name)
        self.adapters.clear()
        await self.dispatcher.stop(self.config.api.shutdown_grace)
        await self.backend.stop()
