"""The stream API (napcat-network.md §8) on the sandbox, over real WebSocket and HTTP clients.

The 20 MiB tests run the gateway as a subprocess, reset its peak RSS (`VmHWM`, by writing 5 to
`/proc/<pid>/clear_refs`) and read it after: upload then download must give the same SHA-256
while the peak stays within `RSS_BOUND` of the resident size before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.backends.sandbox.streams import stream_files
from tests.conftest import RunningGateway, run_gateway
from tests.sandbox_client import sandbox_document
from tests.stream_client import (
    chunks_of,
    download,
    http_caller,
    http_stream,
    upload,
    ws_caller,
    ws_stream,
)

MIB = 1024 * 1024
BIG = 20 * MIB
RSS_BOUND = 16 * MIB
"""Peak RSS growth allowed for a 20 MiB upload then download: less than holding the file once
(20 MiB; as base64, 27 MiB). The gateway holds one 64 KiB chunk (its base64, its packet) at a
time, so what it adds is allocator slack and socket buffers: measured ~1 MiB on both
transports."""


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    document = sandbox_document()
    # A process-level action: allowed only where an entry lists it by name.
    document["network"]["websocketServers"][0]["actions"] = {
        "allow": ["*", "clean_stream_temp_file"]
    }
    async with run_gateway(document) as running:
        yield running


@pytest.fixture
async def ws(gw: RunningGateway) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    url = gw.url("ws", "/api").replace("http://", "ws://")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
        yield socket


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def exists(path: str) -> bool:
    return Path(path).exists()


async def test_upload_over_websocket_answers_each_chunk_then_the_file_path(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    content = os.urandom(300_000)
    parts = [content[i : i + 100_000] for i in range(0, len(content), 100_000)]
    call = ws_caller(ws)
    first = await call(
        "upload_file_stream",
        {"stream_id": "s1", "total_chunks": 3, "file_size": len(content), "filename": "a.bin"},
    )
    assert first["stream"] == "stream-action"
    assert first["data"] == {
        "type": "stream",
        "stream_id": "s1",
        "status": "file_created",
        "received_chunks": 0,
        "total_chunks": 3,
    }
    final = await upload(call, "s1", parts, 3, expected_sha256=sha(content))
    assert final["status"] == "file_complete"
    assert final["type"] == "response"
    assert final["file_size"] == len(content)
    assert final["sha256"] == sha(content)
    assert Path(final["file_path"]).name == "a.bin"
    assert read(final["file_path"]) == content


async def test_a_small_upload_with_its_size_declared_is_kept_in_memory(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    content = b"hello stream"
    call = ws_caller(ws)
    await call(
        "upload_file_stream", {"stream_id": "mem", "total_chunks": 1, "file_size": len(content)}
    )
    files = stream_files(gw.supervisor.backend)  # type: ignore[arg-type]
    assert files.uploads["mem"].directory is None
    final = await upload(call, "mem", [content], 1)
    assert read(final["file_path"]) == content


async def test_download_over_websocket_is_packets_with_the_call_echo_then_the_final(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    content = os.urandom(200_000)
    final = await upload(ws_caller(ws), "d1", [content], 1)
    answers = [
        answer
        async for answer in ws_stream(
            ws, "download_file_stream", {"file": final["file_path"], "chunk_size": 65536}
        )
    ]
    assert len({answer["echo"] for answer in answers}) == 1
    assert [a["data"]["data_type"] for a in answers] == [
        "file_info",
        *["file_chunk"] * 4,
        "file_complete",
    ]
    assert answers[0]["data"] == {
        "type": "stream",
        "data_type": "file_info",
        "file_name": Path(final["file_path"]).name,
        "file_size": len(content),
        "chunk_size": 65536,
    }
    assert [a["data"]["progress"] for a in answers[1:5]] == [33, 66, 98, 100]

    async def again() -> AsyncIterator[dict[str, Any]]:
        async for answer in ws_stream(ws, "download_file_stream", {"file": final["file_path"]}):
            yield answer

    assert (await download(again()))[0] == sha(content)


async def test_download_over_http_is_one_chunked_response_without_content_type(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    content = os.urandom(150_000)
    final = await upload(ws_caller(ws), "h1", [content], 1)
    async with aiohttp.ClientSession() as http:
        url = gw.url("api", "/download_file_stream")
        digest, size, done = await download(
            http_stream(http, url, {"file_id": final["file_path"], "echo": "e"})
        )
    assert (digest, size) == (sha(content), len(content))
    assert done["message"] == "Download completed"


async def test_upload_over_http_answers_in_the_stream_format(gw: RunningGateway) -> None:
    content = os.urandom(70_000)
    async with aiohttp.ClientSession() as http:
        call = http_caller(http, gw.url("api"))
        final = await upload(call, "h2", [content[:40_000], content[40_000:]], 2)
    assert read(final["file_path"]) == content


async def test_the_file_path_is_taken_by_other_actions_and_a_group_file_streams_back(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    content = os.urandom(100_000)
    call = ws_caller(ws)
    final = await upload(call, "g1", [content], 1, filename="report.pdf")
    groups = await call("get_group_list", {})
    group_id = groups["data"][0]["group_id"]
    sent = await call(
        "upload_group_file",
        {"group_id": group_id, "file": final["file_path"], "name": "report.pdf"},
    )
    assert sent["retcode"] == 0, sent
    listing = await call("get_group_root_files", {"group_id": group_id})
    file_id = next(f["file_id"] for f in listing["data"]["files"] if f["file_name"] == "report.pdf")

    async def answers() -> AsyncIterator[dict[str, Any]]:
        params = {"file_id": file_id, "chunk_size": 30_000}
        async for answer in ws_stream(ws, "download_file_stream", params):
            yield answer

    digest, size, done = await download(answers())
    assert (digest, size, done["total_chunks"]) == (sha(content), len(content), 4)


async def test_an_image_segment_takes_the_file_path(ws: aiohttp.ClientWebSocketResponse) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(500)
    call = ws_caller(ws)
    final = await upload(call, "img", [png], 1, filename="pic.png")
    friends = await call("get_friend_list", {})
    sent = await call(
        "send_private_msg",
        {
            "user_id": friends["data"][0]["user_id"],
            "message": [{"type": "image", "data": {"file": "file://" + final["file_path"]}}],
        },
    )
    assert sent["retcode"] == 0, sent
    message = await call("get_msg", {"message_id": sent["data"]["message_id"]})
    image = message["data"]["message"][0]["data"]

    async def answers() -> AsyncIterator[dict[str, Any]]:
        async for answer in ws_stream(ws, "download_file_image_stream", {"file": image["file"]}):
            yield answer

    assert (await download(answers()))[0] == sha(png)


async def test_test_download_stream_sends_ten_packets_then_completes_or_fails(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    answers = [a async for a in ws_stream(ws, "test_download_stream", {})]
    assert [a["data"]["data"] for a in answers[:10]] == [f"Index-> {i}" for i in range(1, 11)]
    assert answers[10]["data"]["data_type"] == "data_complete"
    failed = [a async for a in ws_stream(ws, "test_download_stream", {"error": True})]
    assert len(failed) == 11
    assert failed[10] == {
        "status": "failed",
        "retcode": 1200,
        "data": {"type": "error", "data_type": "error"},
        "message": "This is a test error",
        "wording": "This is a test error",
        "echo": failed[0]["echo"],
        "stream": "stream-action",
    }


async def test_callers_that_cannot_carry_packets_are_told_so(gw: RunningGateway) -> None:
    dispatcher = gw.supervisor.dispatcher
    answer = await dispatcher.call("test_download_stream", {}, "c")
    assert answer["retcode"] == 1400
    assert "call it over HTTP or WebSocket" in answer["message"]
    assert answer["data"] == {"type": "error", "data_type": "error"}
    for suffix in ("_async", "_rate_limited"):
        answer = await dispatcher.call(f"download_file_stream{suffix}", {"file": "x"})
        assert answer["retcode"] == 1400
        assert f"cannot be called with {suffix}" in answer["message"]


async def test_other_actions_stay_normal_actions(ws: aiohttp.ClientWebSocketResponse) -> None:
    answer = await ws_caller(ws)("get_login_info", {})
    assert answer["stream"] == "normal-action"


async def test_clean_stream_temp_file_removes_assembled_files_and_uploads(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    call = ws_caller(ws)
    final = await upload(call, "c1", [b"x" * 10], 1, file_retention=0)
    await call("upload_file_stream", {"stream_id": "c2", "total_chunks": 2})
    cleaned = await ws_caller(ws)("clean_stream_temp_file", {})
    assert cleaned["retcode"] == 0
    assert not exists(final["file_path"])
    missing = await call("upload_file_stream", {"stream_id": "c2", "verify_only": True})
    assert missing["retcode"] == 1400
    assert "stream_id" in missing["message"]


async def test_idle_uploads_and_retained_files_expire_on_the_next_stream_call(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    now = [1000.0]
    files = stream_files(gw.supervisor.backend)  # type: ignore[arg-type]
    files.clock = lambda: now[0]
    call = ws_caller(ws)
    kept = await upload(call, "k", [b"kept"], 1, file_retention=0)
    brief = await upload(call, "b", [b"brief"], 1, file_retention=5_000)
    await call("upload_file_stream", {"stream_id": "idle", "total_chunks": 2})
    now[0] += 601
    await call("upload_file_stream", {"stream_id": "other", "total_chunks": 1})
    assert "idle" not in files.uploads
    assert not exists(brief["file_path"])
    assert exists(kept["file_path"])


async def test_reset_drops_the_stream_and_answers_as_napcat(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    call = ws_caller(ws)
    await call("upload_file_stream", {"stream_id": "r", "total_chunks": 2})
    answer = await call("upload_file_stream", {"stream_id": "r", "reset": True})
    assert (answer["retcode"], answer["message"]) == (1200, "Stream reset completed")
    again = await call("upload_file_stream", {"stream_id": "r", "verify_only": True})
    assert again["retcode"] == 1400


# --- 20 MiB through a gateway process --------------------------------------------------------


def memory(pid: int, field: str) -> int:
    """`VmHWM` (peak resident size) or `VmRSS` of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def reset_peak(pid: int) -> int:
    """Reset the process's VmHWM to its current resident size (Linux: clear_refs 5); that
    size."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory(pid, "VmRSS")


def process_document(tmp_path: Path) -> dict[str, Any]:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    for entry in document["network"].values():
        entry[0]["maxBodySize"] = 1 * MIB
    return document


async def roundtrip(process: Any, tmp_path: Path, transport: str) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(BIG // MIB):
            out.write(os.urandom(MIB))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    chunk = 64 * 1024
    async with aiohttp.ClientSession() as http:
        # One small call first, so the baseline includes a warmed-up request path.
        base = f"http://127.0.0.1:{process.port_of('api')}"
        async with http.post(f"{base}/get_login_info", json={}) as response:
            assert (await response.json())["retcode"] == 0
        before = reset_peak(process.proc.pid)
        url = f"ws://127.0.0.1:{process.port_of('ws')}/api"
        async with http.ws_connect(url, max_msg_size=4 * MIB) as ws:
            call = ws_caller(ws) if transport == "ws" else http_caller(http, base)
            with source.open("rb") as handle:
                final = await upload(
                    call,
                    "big",
                    chunks_of(handle.read, chunk),
                    BIG // chunk,
                    file_size=BIG,
                    expected_sha256=expected,
                    filename="big.bin",
                )
            assert final["sha256"] == expected
            params = {"file": final["file_path"], "chunk_size": chunk}
            answers = (
                ws_stream(ws, "download_file_stream", params)
                if transport == "ws"
                else http_stream(http, f"{base}/download_file_stream", params)
            )
            digest, size, _ = await download(answers)
    grown = memory(process.proc.pid, "VmHWM") - before
    print(f"{transport}: RSS before {before / MIB:.1f} MiB, peak grown by {grown / MIB:.1f} MiB")
    assert (digest, size) == (expected, BIG)
    assert grown < RSS_BOUND, f"peak RSS grew by {grown / MIB:.1f} MiB"


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_20_mib_upload_then_download_keeps_the_sha_and_bounded_memory(
    gateway_process: Any, tmp_path: Path, transport: str
) -> None:
    process = gateway_process(process_document(tmp_path))
    process.wait_for("gateway_ready")
    await roundtrip(process, tmp_path, transport)
    assert process.proc.poll() is None
