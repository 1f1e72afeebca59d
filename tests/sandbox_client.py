"""A sandbox test client: actions over the real HTTP adapter, events over a real WebSocket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import RunningGateway, run_gateway


def sandbox_document(database: str = ":memory:", **backend: Any) -> dict[str, Any]:
    """HTTP API `api` (the operator's: process-level actions allowed by name) and WebSocket
    server `ws` (self messages on, no heartbeats)."""
    operator = {"allow": ["*", "bot_exit", "set_restart", "clean_cache", "clean_stream_temp_file"]}
    return {
        "network": {
            "httpServers": [
                {"name": "api", "enable": True, "host": "127.0.0.1", "port": 0, "actions": operator}
            ],
            "websocketServers": [
                {
                    "name": "ws",
                    "enable": True,
                    "host": "127.0.0.1",
                    "port": 0,
                    "heartInterval": 0,
                    "reportSelfMessage": True,
                }
            ],
        },
        "backend": {"type": "sandbox", "database": database, **backend},
    }


MEMBER_BOT_WORLD = (
    '{self: {user_id: 10001, nickname: "Bot"}, groups: [{group_id: 40001, group_name: "G",'
    ' members: [{user_id: 20001, nickname: "Alice", role: "owner"},'
    ' {user_id: 10001, nickname: "Bot"}]}]}'
)
"""A world where the bot is a plain member of group 40001, whose owner is Alice (20001)."""


def member_bot_document(directory: Path) -> dict[str, Any]:
    """`sandbox_document` on MEMBER_BOT_WORLD, written into `directory`."""
    world = directory / "world.json5"
    world.write_text(MEMBER_BOT_WORLD)
    return sandbox_document(world=str(world))


class SandboxClient:
    """Calls actions by HTTP POST and reads the event stream of one universal WebSocket."""

    def __init__(
        self, gw: RunningGateway, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        self.gw = gw
        self.http = http
        self.ws = ws
        self.headers: dict[str, str] = {}
        """Headers sent with every action call (an Authorization for a token-protected API)."""

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """The whole envelope."""
        async with self.http.post(
            self.gw.url("api", f"/{action}"), json=params, headers=self.headers
        ) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def ok(self, action: str, **params: Any) -> Any:
        """`data` of a call that must succeed."""
        body = await self.call(action, **params)
        assert body["retcode"] == 0, f"{action} failed: {body}"
        return body["data"]

    async def event(
        self, match: Callable[[dict[str, Any]], bool] = lambda _e: True, seconds: float = 5.0
    ) -> dict[str, Any]:
        """The next event (skipping others) for which `match` is true."""
        while True:
            event: dict[str, Any] = await self.ws.receive_json(timeout=seconds)
            if match(event):
                return event

    async def notice(self, notice_type: str, seconds: float = 5.0) -> dict[str, Any]:
        """The next notice of this type."""
        return await self.event(
            lambda e: e.get("post_type") == "notice" and e.get("notice_type") == notice_type,
            seconds,
        )


@contextlib.asynccontextmanager
async def sandbox_client(document: dict[str, Any] | None = None) -> AsyncIterator[SandboxClient]:
    """A running sandbox gateway and a client whose event socket already got `lifecycle`."""
    async with run_gateway(document or sandbox_document()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            first = await ws.receive_json(timeout=5)
            assert first["meta_event_type"] == "lifecycle"
            yield SandboxClient(gw, http, ws)
