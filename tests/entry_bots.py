"""A bot calling actions over each transport that takes calls, beside a second, unrestricted bot.

`bot_and_other(transport, rules)` starts a gateway on an in-memory sandbox with the entry `bot`
of that transport (carrying `rules`: `actions`, `sendRate`) and an HTTP entry `other` without
any, connects a real client to each, and yields the three. Transports: `http`, `sse` (the HTTP
API of an SSE server), `ws` (WebSocket server), `http-ws` (WebSocket on an HTTP port),
`reverse` (reverse WebSocket client: the bot is the server here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateway.config import parse_config
from gateway.supervisor import Supervisor
from tests.conftest import sandbox_config

TRANSPORTS = ("http", "sse", "ws", "http-ws", "reverse")

Call = Callable[..., Awaitable[dict[str, Any]]]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class EchoCalls:
    """Action frames over one WebSocket, answers matched by `echo`."""

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echoes = itertools.count()

    def feed(self, frame: dict[str, Any]) -> None:
        future = self._pending.pop(str(frame.get("echo")), None)
        if future is not None and "retcode" in frame and not future.done():
            future.set_result(frame)

    async def call(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        echo = f"e{next(self._echoes)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[echo] = future
        await self._send({"action": action, "params": params or {}, "echo": echo})
        return await asyncio.wait_for(future, 20)


def http_call(session: aiohttp.ClientSession, base: str) -> Call:
    async def call(action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        async with session.post(f"{base}/{action}", json=params or {}) as response:
            body: dict[str, Any] = await response.json()
            return body

    return call


@dataclass
class Bots:
    supervisor: Supervisor
    bot: Call
    """Calls over the transport under test, on the entry `bot`."""
    other: Call
    """Calls over HTTP on the entry `other` (no rules)."""


def bot_entry(transport: str, rules: dict[str, Any], url: str = "") -> dict[str, Any]:
    """The config lists holding the entry `bot` for this transport."""
    entry: dict[str, Any] = {"name": "bot", "enable": True, **rules}
    if transport == "reverse":
        fields = {"url": url, "heartInterval": 0, "reconnectInterval": 50}
        return {"websocketClients": [{**entry, **fields}]}
    entry |= {"host": "127.0.0.1", "port": 0}
    kind = {"http": "httpServers", "sse": "httpSseServers", "ws": "websocketServers"}
    if transport == "http-ws":
        return {"httpServers": [{**entry, "enableWebsocket": True, "heartInterval": 0}]}
    if transport == "ws":
        entry["heartInterval"] = 0
    return {kind[transport]: [entry]}


@contextlib.asynccontextmanager
async def bot_and_other(
    transport: str, rules: dict[str, Any], clock: FakeClock | None = None
) -> AsyncIterator[Bots]:
    """A gateway with entries `bot` (over `transport`, with `rules`) and `other` (HTTP)."""
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        reverse: asyncio.Queue[web.WebSocketResponse] = asyncio.Queue()
        calls = EchoCalls(lambda frame: sockets[0].send_json(frame))
        sockets: list[Any] = []
        url = ""
        if transport == "reverse":
            url = await stack.enter_async_context(_reverse_endpoint(reverse, calls))
        lists = bot_entry(transport, rules, url)
        other = {"name": "other", "enable": True, "host": "127.0.0.1", "port": 0}
        lists.setdefault("httpServers", []).append(other)
        supervisor = Supervisor(parse_config(sandbox_config(**lists), env={}), clock=clock)
        await supervisor.start()
        stack.push_async_callback(supervisor.stop)
        other_call = http_call(session, f"http://127.0.0.1:{port_of(supervisor, 'other')}")
        if transport in ("http", "sse"):
            base = f"http://127.0.0.1:{port_of(supervisor, 'bot')}"
            yield Bots(supervisor, http_call(session, base), other_call)
            return
        if transport == "reverse":
            sockets.append(await asyncio.wait_for(reverse.get(), 20))
        else:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port_of(supervisor, 'bot')}/")
            sockets.append(ws)
            reader = asyncio.create_task(_read(ws, calls))
            stack.push_async_callback(_cancel, reader)
        yield Bots(supervisor, calls.call, other_call)


def port_of(supervisor: Supervisor, name: str) -> int:
    """The bound port of a listening entry."""
    adapter: Any = supervisor.adapters[name]
    return int(adapter.port)


async def _read(ws: aiohttp.ClientWebSocketResponse, calls: EchoCalls) -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            calls.feed(message.json())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def _reverse_endpoint(
    connected: asyncio.Queue[web.WebSocketResponse], calls: EchoCalls
) -> AsyncIterator[str]:
    """A bot's reverse WebSocket endpoint; yields its URL."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await connected.put(ws)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                calls.feed(message.json())
        return ws

    app = web.Application()
    app.router.add_get("/onebot/v11/ws", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/onebot/v11/ws"
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until `condition` holds (a state, not a duration: the limit only
    keeps a broken test from hanging)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")
