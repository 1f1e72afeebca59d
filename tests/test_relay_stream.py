"""Stream actions through the relay: upstream's packets reach the caller as they come, with the
caller's echo, over WebSocket and HTTP; the call ends on upstream's final envelope."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from gateway.backends.relay import STREAM_BUFFER, UpstreamStream
from gateway.protocol.envelope import ActionFailed
from tests.stream_client import http_stream, ws_stream
from tests.test_relay import FakeUpstream, login_or, relay_to


def packet(data: dict[str, Any], echo: Any) -> dict[str, Any]:
    return {
        "status": "ok",
        "retcode": 0,
        "data": data,
        "message": "",
        "wording": "",
        "echo": echo,
        "stream": "stream-action",
    }


def chunk(index: int) -> dict[str, Any]:
    return {"type": "stream", "data_type": "file_chunk", "index": index, "data": "QUJD", "size": 3}


COMPLETE = {"type": "response", "data_type": "file_complete", "total_chunks": 3, "total_bytes": 9}


class StreamingUpstream(FakeUpstream):
    """Answers download_file_stream with file_info, three chunks and `final`."""

    def __init__(self, final: dict[str, Any] | None = None, *, close_after: int = 0) -> None:
        super().__init__(login_or(lambda f: {"status": "ok", "retcode": 0, "data": f["params"]}))
        self.final = final
        self.close_after = close_after
        """Close the connection after this many packets instead of finishing (0: finish)."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            frame = json.loads(message.data)
            self.frames.append(frame)
            echo = frame["echo"]
            if frame["action"] != "download_file_stream":
                await ws.send_json({**self.answer(frame), "echo": echo, "stream": "normal-action"})
                continue
            info = {"type": "stream", "data_type": "file_info", "file_name": "a", "file_size": 9}
            packets = [info, *(chunk(i) for i in range(3))]
            for sent, data in enumerate(packets, 1):
                await ws.send_json(packet(data, echo))
                if sent == self.close_after:
                    await ws.close()
                    return ws
            await ws.send_json({**(self.final or packet(COMPLETE, echo)), "echo": echo})
        return ws


async def test_packets_reach_a_websocket_caller_with_its_echo_then_the_final() -> None:
    async with relay_to(StreamingUpstream()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/api").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            answers = [a async for a in ws_stream(ws, "download_file_stream", {"file": "x"})]
    assert [a["data"]["data_type"] for a in answers] == [
        "file_info",
        "file_chunk",
        "file_chunk",
        "file_chunk",
        "file_complete",
    ]
    assert len({a["echo"] for a in answers}) == 1
    assert answers[0]["echo"].startswith("s-")  # the caller's, not the relay's own
    assert all(a["stream"] == "stream-action" for a in answers)
    assert answers[-1]["data"] == COMPLETE


async def test_packets_reach_an_http_caller_on_one_chunked_response() -> None:
    async with relay_to(StreamingUpstream()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("api", "/download_file_stream")
        answers = [a async for a in http_stream(http, url, {"file_id": "x", "echo": 5})]
    assert [a["data"].get("index") for a in answers[1:4]] == [0, 1, 2]
    assert {a["echo"] for a in answers} == {5}
    assert answers[-1]["data"] == COMPLETE


async def test_an_upstream_failure_after_packets_ends_the_call_failed() -> None:
    failure = {
        "status": "failed",
        "retcode": 1200,
        "data": {"type": "error", "data_type": "error"},
        "message": "Download failed: file not found",
        "stream": "stream-action",
    }
    async with relay_to(StreamingUpstream(failure)) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/api").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            answers = [a async for a in ws_stream(ws, "download_file_stream", {"file": "x"})]
    assert len(answers) == 5
    final = answers[-1]
    assert (final["status"], final["retcode"], final["message"]) == (
        "failed",
        1200,
        "Download failed: file not found",
    )
    assert final["data"] == {"type": "error", "data_type": "error"}
    assert final["stream"] == "stream-action"


async def test_a_connection_lost_mid_stream_fails_the_call_at_once() -> None:
    upstream = StreamingUpstream(close_after=2)
    async with relay_to(upstream, callTimeout=60_000) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/api").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            answers = [a async for a in ws_stream(ws, "download_file_stream", {"file": "x"})]
    assert len(answers) == 3
    assert answers[-1]["retcode"] == 1200
    assert "connection closed" in answers[-1]["message"]


async def test_upload_file_stream_is_one_answer_marked_as_a_stream_action() -> None:
    async with relay_to(StreamingUpstream()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/api").replace("http://", "ws://")
        params = {"stream_id": "u", "total_chunks": 1}
        async with http.ws_connect(url) as ws:
            answers = [a async for a in ws_stream(ws, "upload_file_stream", params)]
    assert len(answers) == 1
    assert answers[0]["stream"] == "stream-action"
    assert answers[0]["data"]["stream_id"] == "u"


async def test_a_full_buffer_holds_the_upstream_reader_until_the_caller_takes_a_packet() -> None:
    stream = UpstreamStream(None, patience=60)  # type: ignore[arg-type]
    fills = [stream.push(chunk(index)) for index in range(STREAM_BUFFER)]
    assert fills == [False] * (STREAM_BUFFER - 1) + [True]
    reader = asyncio.create_task(stream.room())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not reader.done()  # the upstream connection is not read meanwhile
    assert (await stream.next()) == chunk(0)
    await reader
    assert len(stream.packets) == STREAM_BUFFER - 1


async def test_a_caller_that_never_takes_a_packet_ends_its_call() -> None:
    stream = UpstreamStream(None, patience=0.01)  # type: ignore[arg-type]
    for index in range(STREAM_BUFFER):
        stream.push(chunk(index))
    await stream.room()
    assert isinstance(stream.final, ActionFailed)
    assert "abandoned" in stream.final.message
    assert (await stream.next()) is None  # its packets are dropped, later ones too
    assert stream.push(chunk(99)) is False
