"""Operations inputs of issue 14: a reload applies `admin`, every token is redacted, and aiohttp's
own error lines reach the JSON-lines log as JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.config import parse_config
from gateway.logging import redactor
from tests.conftest import http_entry, run_gateway, sandbox_config


def with_admin(token: str, port: int = 0) -> dict[str, Any]:
    document = sandbox_config(httpServers=[http_entry("api")])
    document["admin"] = {"host": "127.0.0.1", "port": port, "token": token}
    return document


async def metrics_status(port: int, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status


async def test_reload_applies_a_new_admin_token() -> None:
    async with run_gateway(with_admin("old-admin-token")) as gw:
        admin = gw.supervisor.admin
        assert admin is not None
        port = admin.port
        await gw.supervisor.reload(parse_config(with_admin("new-admin-token", port), {}))
        assert await metrics_status(port, "old-admin-token") == 403
        assert await metrics_status(port, "new-admin-token") == 200


async def test_reload_moves_adds_and_removes_the_admin_listener() -> None:
    async with run_gateway(with_admin("admin-token-1")) as gw:
        assert gw.supervisor.admin is not None
        await gw.supervisor.reload(parse_config(with_admin("admin-token-1", 0), {}))
        assert gw.supervisor.admin is not None  # port 0 again: a new listener, a new port
        await gw.supervisor.reload(
            parse_config(sandbox_config(httpServers=[http_entry("api")]), {})
        )
        assert gw.supervisor.admin is None
        await gw.supervisor.reload(parse_config(with_admin("admin-token-2"), {}))
        assert gw.supervisor.admin is not None
        assert await metrics_status(gw.supervisor.admin.port, "admin-token-2") == 200


async def test_admin_and_relay_tokens_are_redacted() -> None:
    document = with_admin("admin-secret-42")
    document["network"]["httpServers"][0]["token"] = "http-secret-42"
    async with run_gateway(document):
        line = redactor(None, "", {"event": "x", "text": "admin-secret-42 http-secret-42"})
        assert line["text"] == "*** ***"
    relay = parse_config(
        {
            "network": {},
            "backend": {"type": "relay", "url": "ws://127.0.0.1:1/", "token": "relay-secret-42"},
        },
        {},
    )
    from gateway.supervisor import config_secrets

    assert "relay-secret-42" in config_secrets(relay)


async def test_malformed_requests_leave_json_warnings_without_tracebacks(
    gateway_process: Any,
) -> None:
    process = gateway_process(sandbox_config(httpServers=[http_entry("api")]))
    process.wait_for("gateway_ready")
    for _ in range(3):  # the parser refuses these; logged at most once a second, with a count
        reader, writer = await asyncio.open_connection("127.0.0.1", process.port_of("api"))
        writer.write(b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
    warning = process.wait_for("malformed_request")
    assert warning["server"] == "api" and "exception" not in warning
    assert process.terminate() == 0
    process.wait_for("shutdown_complete")
    assert [line for line in process.lines if line.get("event") == "malformed_request"] == [warning]
    assert process.unparsed == []
