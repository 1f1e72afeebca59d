"""One client's huge body does not stall the others: while a 64 MiB body is received and parsed,
other clients' calls keep being answered. Asserted by the order of answers, never by a time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import http_entry, sandbox_config

BIG = 64 * 1024 * 1024 - 4096  # under the default maxBodySize of 64 MiB
BYSTANDER_CALLS = 20


def json5_body(valid: bool) -> bytes:
    """A JSON5 document of about BIG bytes: single quotes make strict JSON fail at once, and a
    stray token at the very end makes it invalid only after the whole body has been scanned."""
    pad = b"x" * (BIG - 64)
    body = b"{echo: 'big', pad: '" + pad + b"',}"
    return body if valid else body + b" ]"


async def send_raw(port: int, body: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /get_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    writer.write(body)
    await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> dict[str, Any]:
    raw = await reader.read()
    return dict(json.loads(raw.split(b"\r\n\r\n", 1)[1]))


@pytest.mark.parametrize("valid", [True, False], ids=["valid-json5", "invalid-json5"])
async def test_other_clients_are_answered_while_a_64_mib_body_is_parsed(
    gateway_process: Any, valid: bool
) -> None:
    process = gateway_process(sandbox_config(httpServers=[http_entry("api")]))
    process.wait_for("gateway_ready")
    port = process.port_of("api")
    order: list[str] = []
    async with aiohttp.ClientSession() as http:
        # Warm the connection pool, so the bystander's calls need no new handshake.
        async with http.post(f"http://127.0.0.1:{port}/get_login_info") as response:
            assert response.status == 200
        reader, writer = await send_raw(port, json5_body(valid))

        async def big() -> dict[str, Any]:
            answer = await read_answer(reader)
            order.append("big")
            return answer

        big_task = asyncio.create_task(big())
        for _ in range(BYSTANDER_CALLS):
            async with http.post(f"http://127.0.0.1:{port}/get_login_info") as response:
                assert (await response.json())["retcode"] == 0
            order.append("bystander")
        answer = await big_task
        writer.close()
    assert order == ["bystander"] * BYSTANDER_CALLS + ["big"]
    if valid:
        assert (answer["retcode"], answer["echo"]) == (0, "big")
    else:
        assert answer["retcode"] == 1400
        assert "line 1 column" in answer["message"]
    assert process.proc.poll() is None


@pytest.mark.parametrize("valid", [True, False], ids=["valid-json5", "invalid-json5"])
async def test_other_connections_are_answered_while_a_64_mib_frame_is_parsed(
    gateway_process: Any, valid: bool
) -> None:
    document = sandbox_config(httpServers=[http_entry("api", enableWebsocket=True)])
    process = gateway_process(document)
    process.wait_for("gateway_ready")
    url = f"ws://127.0.0.1:{process.port_of('api')}/api"
    order: list[str] = []
    frame = json5_body(valid).replace(b"{echo:", b"{action: 'get_status', echo:", 1)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url) as big,
        http.ws_connect(url) as bystander,
    ):
        await big.send_str(frame.decode())

        async def big_answer() -> dict[str, Any]:
            answer = dict(await big.receive_json(timeout=120))
            order.append("big")
            return answer

        big_task = asyncio.create_task(big_answer())
        for echo in range(BYSTANDER_CALLS):
            await bystander.send_json({"action": "get_login_info", "echo": echo})
            assert (await bystander.receive_json(timeout=120))["echo"] == echo
            order.append("bystander")
        answer = await big_task
    assert order == ["bystander"] * BYSTANDER_CALLS + ["big"]
    assert answer["retcode"] == (0 if valid else 1400)
    assert process.proc.poll() is None
