"""Work one client can cause is bounded; WebSocket frames that break RFC 6455 end the connection.

- A client that sends calls without reading the answers holds at most `maxInflight` calls on
  the server; then the server stops reading (TCP backpressure: the client's writes wait), and
  every frame is answered once the client reads again. Nothing is dropped.
- `_async` calls beyond `api.maxAsyncCalls` are refused with 1200, until one finishes.
- A client frame without a mask closes the connection with 1002 (RFC 6455 §5.1), however the
  frames before it were split into TCP segments.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.conftest import RunningGateway, http_entry, run_gateway, sandbox_config
from tests.held_server import held_server
from tests.robustness.wsframes import CLOSE, PING, TEXT, RawWebSocket, frame

MAX_INFLIGHT = 16
FRAMES = 10_000
PAD = "x" * 4096
"""Padding of each frame's echo: 10k frames and their answers are far more than the socket
buffers hold, so a server that stops reading makes the client's writes wait."""


async def next_message(raw: RawWebSocket) -> Any:
    """The next data or close frame (a hang detector bounds the wait: none comes on failure)."""
    return await asyncio.wait_for(raw.read_message(), 10)


def ws_entry(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "enable": True,
        "host": "127.0.0.1",
        "port": 0,
        "heartInterval": 0,
        **fields,
    }


def port_of(gw: RunningGateway, name: str) -> int:
    adapter: Any = gw.supervisor.adapters[name]
    return int(adapter.port)


def running_calls() -> int:
    """Tasks answering a WebSocket frame in this process (the gateway runs in-process)."""
    return sum(1 for task in asyncio.all_tasks() if "WsConnection._answer" in repr(task.get_coro()))


async def test_a_client_that_does_not_read_is_held_to_max_inflight_and_then_fully_answered() -> (
    None
):
    doc = sandbox_config(websocketServers=[ws_entry("ws", maxInflight=MAX_INFLIGHT)])
    async with run_gateway(doc) as gw, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port_of(gw, 'ws')}/api")

        async def send_all() -> None:
            for seq in range(FRAMES):
                echo = f"{seq}:{PAD}"
                await ws.send_str(json.dumps({"action": "get_login_info", "echo": echo}))

        sender = asyncio.create_task(send_all())
        peak = 0
        # Watch the server while the client reads nothing (a bounded look, not a time limit on
        # anything): its running calls never pass the cap.
        for _ in range(200):
            await asyncio.sleep(0.005)
            peak = max(peak, running_calls())
        assert 0 < peak <= MAX_INFLIGHT
        assert not sender.done()  # the server stopped reading: the client's writes wait
        answered: set[int] = set()
        while len(answered) < FRAMES:
            answer = await ws.receive_json(timeout=20)
            assert answer["retcode"] == 0
            answered.add(int(answer["echo"].split(":", 1)[0]))
        await sender
        assert answered == set(range(FRAMES))
        await ws.close()


async def test_async_calls_beyond_max_async_calls_are_refused_until_one_finishes() -> None:
    doc = {**sandbox_config(httpServers=[http_entry("api")]), "api": {"maxAsyncCalls": 2}}
    async with held_server() as media, run_gateway(doc) as gw, aiohttp.ClientSession() as http:

        async def call_async(name: str) -> dict[str, Any]:
            url = gw.url("api", "/download_file_async")
            async with http.post(url, json={"url": media.url(name)}) as response:
                answer: dict[str, Any] = await response.json()
                return answer

        assert [(await call_async(name))["retcode"] for name in ("a", "b")] == [1, 1]
        await media.wait_for(2)
        refused = await call_async("c")
        assert (refused["status"], refused["retcode"]) == ("failed", 1200)
        assert "2 _async calls are running, the limit (api.maxAsyncCalls)" in refused["message"]
        assert media.arrived == 2  # the refused call never ran
        media.release.set()
        for _ in range(500):  # until the two background calls are done
            if (await call_async("d"))["retcode"] == 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("no _async call accepted after the running ones finished")


async def test_an_unmasked_client_frame_closes_the_connection_with_1002() -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws")])
    async with run_gateway(doc) as gw:
        raw = await RawWebSocket.connect(port_of(gw, "ws"), "/api")
        call = b'{"action": "get_login_info", "echo": 1}'
        await raw.send(frame(TEXT, call))
        first = await next_message(raw)
        assert first is not None and first.opcode == TEXT
        assert json.loads(first.payload)["retcode"] == 0  # masked: answered
        await raw.send(frame(TEXT, call, mask=False))
        closing = await next_message(raw)
        assert closing is not None and (closing.opcode, closing.close_code) == (CLOSE, 1002)
        await raw.close()


async def test_an_unmasked_frame_is_refused_on_the_http_port_too() -> None:
    doc = sandbox_config(httpServers=[http_entry("api", enableWebsocket=True, heartInterval=0)])
    async with run_gateway(doc) as gw:
        raw = await RawWebSocket.connect(port_of(gw, "api"), "/api")
        await raw.send(frame(PING, b"unmasked", mask=False))
        closing = await next_message(raw)
        assert closing is not None and (closing.opcode, closing.close_code) == (CLOSE, 1002)
        await raw.close()


async def test_masked_frames_split_anywhere_are_all_answered() -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws")])
    async with run_gateway(doc) as gw:
        raw = await RawWebSocket.connect(port_of(gw, "ws"), "/api")
        sizes = (10, 200, 70_000)  # 7-bit, 16-bit and 64-bit payload lengths
        frames = [
            frame(TEXT, json.dumps({"action": "get_login_info", "echo": "e" * size}).encode())
            for size in sizes
        ]
        burst = b"".join([frame(PING, b"p"), *frames])
        for cut in range(0, 16):  # byte by byte through the first headers, then the rest
            await raw.send(burst[cut : cut + 1])
        await raw.send(burst[16:])
        answers = []
        while len(answers) < len(sizes):
            got = await next_message(raw)
            assert got is not None and got.opcode == TEXT, got
            answers.append(json.loads(got.payload))
        assert sorted(len(a["echo"]) for a in answers) == list(sizes)
        assert all(a["retcode"] == 0 for a in answers)
        await raw.close()
