"""A stream API client for tests: upload a file in chunks, download one, over WebSocket or HTTP.

It reads the wire as a NapCat client does: WebSocket frames matched by echo until one that is
not an intermediate packet; an HTTP body split on `\\r\\n\\r\\n`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""One action call answered by one envelope (upload chunks)."""

_echoes = itertools.count(1)


def is_packet(answer: dict[str, Any]) -> bool:
    """An intermediate packet of a download: ok, stream-marked, `data.type` "stream" (an upload
    answers one envelope per call, whose `data.type` is "stream" too)."""
    data = answer.get("data")
    return (
        answer.get("status") == "ok"
        and answer.get("stream") == "stream-action"
        and isinstance(data, dict)
        and data.get("type") == "stream"
    )


async def ws_stream(
    ws: aiohttp.ClientWebSocketResponse, action: str, params: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Every envelope of one call over a WebSocket, the final one last."""
    echo = f"s-{next(_echoes)}"
    await ws.send_json({"action": action, "params": params, "echo": echo})
    while True:
        answer = json.loads(await ws.receive_str(timeout=30))
        if answer.get("echo") != echo:
            continue
        yield answer
        if action == "upload_file_stream" or not is_packet(answer):
            return


async def http_stream(
    http: aiohttp.ClientSession, url: str, params: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Every envelope of one HTTP call, parsed as the body arrives, the final one last."""
    async with http.post(url, json=params) as response:
        assert response.status == 200
        assert "Content-Type" not in response.headers
        assert response.headers.get("Transfer-Encoding") == "chunked"
        pending = b""
        async for piece in response.content.iter_any():
            pending += piece
            *whole, pending = pending.split(b"\r\n\r\n")
            for text in whole:
                yield json.loads(text)
        assert pending == b""


def ws_caller(ws: aiohttp.ClientWebSocketResponse) -> Call:
    async def call(action: str, params: dict[str, Any]) -> dict[str, Any]:
        answers = [answer async for answer in ws_stream(ws, action, params)]
        assert len(answers) == 1
        return answers[0]

    return call


def http_caller(http: aiohttp.ClientSession, base: str) -> Call:
    async def call(action: str, params: dict[str, Any]) -> dict[str, Any]:
        answers = [answer async for answer in http_stream(http, f"{base}/{action}", params)]
        assert len(answers) == 1
        return answers[0]

    return call


def chunks_of(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    while chunk := read(size):
        yield chunk


async def upload(
    call: Call,
    stream_id: str,
    chunks: list[bytes] | Iterator[bytes],
    total_chunks: int,
    **extra: Any,
) -> dict[str, Any]:
    """Send every chunk (each must answer chunk_received), then complete; the final data."""
    for index, chunk in enumerate(chunks):
        answer = await call(
            "upload_file_stream",
            {
                "stream_id": stream_id,
                "chunk_data": base64.b64encode(chunk).decode(),
                "chunk_index": index,
                "total_chunks": total_chunks,
                **extra,
            },
        )
        assert answer["retcode"] == 0, answer
        assert answer["data"]["status"] == "chunk_received", answer
    final = await call("upload_file_stream", {"stream_id": stream_id, "is_complete": True})
    assert final["retcode"] == 0, final
    assert final["stream"] == "stream-action"
    data: dict[str, Any] = final["data"]
    return data


async def download(answers: AsyncIterator[dict[str, Any]]) -> tuple[str, int, dict[str, Any]]:
    """Consume a download's envelopes: (sha256 of the content, bytes, final data). Checks the
    packet sequence (file_info, file_chunk by index) as it goes, holding one chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    expected = 0
    info: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    async for answer in answers:
        assert answer["stream"] == "stream-action", answer
        data = answer["data"]
        if not is_packet(answer):
            assert answer["retcode"] == 0, answer
            final = data
            break
        if info is None:
            assert data["data_type"] == "file_info", data
            info = data
            continue
        assert data["data_type"] == "file_chunk"
        assert data["index"] == expected
        content = base64.b64decode(data["data"])
        assert len(content) == data["size"]
        assert len(data["data"]) == data["base64_size"]
        digest.update(content)
        size += len(content)
        expected += 1
    assert info is not None and final is not None
    assert final["data_type"] == "file_complete"
    assert final["total_chunks"] == expected
    assert final["total_bytes"] == size == info["file_size"]
    return digest.hexdigest(), size, final
