"""A loopback HTTP server whose answers wait until the test releases them.

`download_file {url}` of one of its URLs is a real slow action: the sandbox fetches the URL and
the call stays in flight until `release` is set. Shutdown and backpressure tests use it to hold
calls open without any test-only code path in the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


class HeldServer:
    """Counts requests as they arrive; answers each one only once `release` is set."""

    def __init__(self) -> None:
        self.port = 0
        self.arrived = 0
        self.release = asyncio.Event()
        self._arrivals = asyncio.Condition()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        async with self._arrivals:
            self.arrived += 1
            self._arrivals.notify_all()
        await self.release.wait()
        return web.Response(body=b"held " + request.path.encode())

    async def wait_for(self, count: int) -> None:
        """Until `count` requests are being held (a hang detector bounds the wait)."""
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(lambda: self.arrived >= count), 20)


@contextlib.asynccontextmanager
async def held_server() -> AsyncIterator[HeldServer]:
    server = HeldServer()
    app = web.Application()
    app.router.add_get("/{name}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = int(runner.addresses[0][1])
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()
