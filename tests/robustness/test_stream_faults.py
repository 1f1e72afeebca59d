"""The stream API under bad input: every bad call is a 1400 naming its field (or a 1200 for a
limit or a missing file), nothing is left half-written, and a caller that goes away mid-download
costs the gateway nothing but that call.

Calls go over a real WebSocket to an in-process sandbox gateway; the fuzz test throws random
parameter sets at `upload_file_stream` and checks every answer is an envelope.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.backends.sandbox.stream_uploads import MAX_SESSIONS
from gateway.backends.sandbox.streams import stream_files
from tests.conftest import RunningGateway, capture_logs, run_gateway
from tests.robustness.conftest import FUZZ
from tests.sandbox_client import sandbox_document
from tests.stream_client import Call, upload, ws_caller, ws_stream


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with run_gateway(sandbox_document()) as running:
        yield running


@pytest.fixture
async def ws(gw: RunningGateway) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    url = gw.url("ws", "/api").replace("http://", "ws://")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
        yield socket


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


async def refused(call: Call, params: dict[str, Any], retcode: int, *words: str) -> None:
    answer = await call("upload_file_stream", params)
    assert answer["retcode"] == retcode, answer
    assert answer["data"] == {"type": "error", "data_type": "error"}
    assert answer["stream"] == "stream-action"
    for word in words:
        assert word in answer["message"], answer["message"]


async def test_bad_base64_names_chunk_data(ws: aiohttp.ClientWebSocketResponse) -> None:
    params = {"stream_id": "b", "total_chunks": 1, "chunk_index": 0, "chunk_data": "@@@"}
    await refused(ws_caller(ws), params, 1400, "chunk_data", "base64")


async def test_an_index_out_of_range_names_chunk_index(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    params = {"stream_id": "i", "total_chunks": 2, "chunk_index": 2, "chunk_data": b64(b"x")}
    await refused(ws_caller(ws), params, 1400, "chunk_index", "out of range")
    negative = {**params, "chunk_index": -1}
    await refused(ws_caller(ws), negative, 1400, "chunk_index")


async def test_chunk_data_without_an_index_is_refused(ws: aiohttp.ClientWebSocketResponse) -> None:
    params = {"stream_id": "n", "total_chunks": 1, "chunk_data": b64(b"x")}
    await refused(ws_caller(ws), params, 1400, "chunk_index")


async def test_a_sha_mismatch_names_expected_sha256_and_drops_the_upload(
    gw: RunningGateway, ws: aiohttp.ClientWebSocketResponse
) -> None:
    call = ws_caller(ws)
    wrong = hashlib.sha256(b"other").hexdigest()
    params = {"stream_id": "h", "total_chunks": 1, "expected_sha256": wrong}
    answer = await call("upload_file_stream", {**params, "chunk_index": 0, "chunk_data": b64(b"x")})
    assert answer["retcode"] == 0
    await refused(call, {"stream_id": "h", "is_complete": True}, 1400, "expected_sha256")
    files = stream_files(gw.supervisor.backend)  # type: ignore[arg-type]
    assert files.uploads == {}
    assert not any((files.root / "files").rglob("*.*"))


async def test_a_size_mismatch_names_file_size(ws: aiohttp.ClientWebSocketResponse) -> None:
    call = ws_caller(ws)
    params = {"stream_id": "z", "total_chunks": 2, "file_size": 10}
    await call("upload_file_stream", {**params, "chunk_index": 0, "chunk_data": b64(b"abc")})
    await call("upload_file_stream", {**params, "chunk_index": 1, "chunk_data": b64(b"def")})
    await refused(call, {"stream_id": "z", "is_complete": True}, 1400, "file_size", "10")


async def test_chunks_beyond_the_declared_size_are_refused(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    params = {"stream_id": "o", "total_chunks": 1, "file_size": 2}
    await refused(
        ws_caller(ws), {**params, "chunk_index": 0, "chunk_data": b64(b"abc")}, 1400, "file_size"
    )


async def test_a_file_size_over_the_limit_is_refused(ws: aiohttp.ClientWebSocketResponse) -> None:
    params = {"stream_id": "big", "total_chunks": 1, "file_size": 10**12}
    await refused(ws_caller(ws), params, 1400, "file_size", "limit")


async def test_an_unknown_stream_id_names_stream_id(ws: aiohttp.ClientWebSocketResponse) -> None:
    call = ws_caller(ws)
    await refused(call, {"stream_id": "nope", "verify_only": True}, 1400, "stream_id")
    await refused(call, {"stream_id": "nope", "is_complete": True}, 1400, "total_chunks")


async def test_missing_chunks_at_completion_are_listed(ws: aiohttp.ClientWebSocketResponse) -> None:
    call = ws_caller(ws)
    params = {"stream_id": "m", "total_chunks": 3}
    await call("upload_file_stream", {**params, "chunk_index": 1, "chunk_data": b64(b"x")})
    await refused(call, {"stream_id": "m", "is_complete": True}, 1400, "is_complete", "[0, 2]")
    # The upload is still there: the missing chunks may come.
    await call("upload_file_stream", {**params, "chunk_index": 0, "chunk_data": b64(b"w")})
    await call("upload_file_stream", {**params, "chunk_index": 2, "chunk_data": b64(b"y")})
    final = await call("upload_file_stream", {"stream_id": "m"})
    assert final["data"]["status"] == "file_complete"
    assert final["data"]["sha256"] == hashlib.sha256(b"wxy").hexdigest()


async def test_a_changed_total_chunks_is_refused(ws: aiohttp.ClientWebSocketResponse) -> None:
    call = ws_caller(ws)
    await call("upload_file_stream", {"stream_id": "t", "total_chunks": 3})
    await refused(call, {"stream_id": "t", "total_chunks": 4}, 1400, "total_chunks")


async def test_a_filename_cannot_leave_the_stream_directory(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    final = await upload(ws_caller(ws), "p", [b"x"], 1, filename="../../../etc/evil.txt")
    path = Path(final["file_path"])
    assert path.name == "evil.txt"
    assert path.parent.parent.name == "files"


async def test_uploads_past_the_session_limit_are_refused_with_1200(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    call = ws_caller(ws)
    for index in range(MAX_SESSIONS):
        answer = await call("upload_file_stream", {"stream_id": f"s{index}", "total_chunks": 1})
        assert answer["retcode"] == 0
    await refused(call, {"stream_id": "one-more", "total_chunks": 1}, 1200, "in progress")
    await call("upload_file_stream", {"stream_id": "s0", "reset": True})
    answer = await call("upload_file_stream", {"stream_id": "one-more", "total_chunks": 1})
    assert answer["retcode"] == 0


@pytest.mark.parametrize(
    ("params", "retcode", "word"),
    [
        ({"file": "/etc/passwd"}, 1200, "no stored file"),
        ({"file": "NOSUCHMEDIA.png"}, 1200, "no stored file"),
        ({}, 1400, "file or file_id"),
        ({"file": "x", "chunk_size": 0}, 1400, "chunk_size"),
        ({"file": "x", "chunk_size": 5 * 1024 * 1024}, 1400, "chunk_size"),
    ],
)
async def test_bad_downloads_answer_one_failed_envelope(
    ws: aiohttp.ClientWebSocketResponse, params: dict[str, Any], retcode: int, word: str
) -> None:
    answers = [a async for a in ws_stream(ws, "download_file_stream", params)]
    assert len(answers) == 1
    assert answers[0]["retcode"] == retcode
    assert answers[0]["data"] == {"type": "error", "data_type": "error"}
    assert word in answers[0]["message"]


async def test_a_caller_gone_mid_download_leaves_the_gateway_serving(gw: RunningGateway) -> None:
    url = gw.url("ws", "/api").replace("http://", "ws://")
    content = os.urandom(4 * 1024 * 1024)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            final = await upload(ws_caller(ws), "gone", [content], 1)
        with capture_logs() as logs:
            async with http.ws_connect(url, max_msg_size=0) as ws:
                params = {"file": final["file_path"], "chunk_size": 4096}
                await ws.send_json({"action": "download_file_stream", "params": params, "echo": 1})
                first = await ws.receive_json(timeout=10)
                assert first["data"]["data_type"] == "file_info"
            # Closed after one packet of ~1000: the producer stops at its next write.
            async with http.ws_connect(url) as ws:
                await ws_caller(ws)("get_status", {})
        assert not [log for log in logs if log["log_level"] == "error"], logs
        async with http.ws_connect(url) as ws:
            answers = [a async for a in ws_stream(ws, "download_file_stream", params)]
    assert answers[-1]["data"]["total_bytes"] == len(content)


async def test_an_http_caller_gone_mid_download_leaves_the_gateway_serving(
    gw: RunningGateway,
) -> None:
    content = os.urandom(4 * 1024 * 1024)
    url = gw.url("ws", "/api").replace("http://", "ws://")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            final = await upload(ws_caller(ws), "gone-http", [content], 1)
        params = {"file": final["file_path"], "chunk_size": 4096}
        with capture_logs() as logs:
            async with http.post(gw.url("api", "/download_file_stream"), json=params) as response:
                await response.content.readany()
                response.connection.transport.abort()  # type: ignore[union-attr]
            async with http.post(gw.url("api", "/get_status"), json={}) as response:
                assert (await response.json())["retcode"] == 0
        assert not [log for log in logs if log["log_level"] == "error"], logs


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "stream_id",
                "chunk_data",
                "chunk_index",
                "total_chunks",
                "file_size",
                "expected_sha256",
                "is_complete",
                "filename",
                "reset",
                "verify_only",
                "file_retention",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**40), max_value=2**40),
            st.text(max_size=40),
            st.sampled_from(["s", "QUJD", "0", "../x"]),
        ),
    )
)
async def test_random_upload_parameters_always_get_an_envelope(params: dict[str, Any]) -> None:
    async with run_gateway(sandbox_document()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/api").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            answer = await ws_caller(ws)("upload_file_stream", params)
    assert answer["retcode"] in (0, 1200, 1400), answer
    assert answer["stream"] == "stream-action"
