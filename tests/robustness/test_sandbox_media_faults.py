"""Media URLs that misbehave: slow, endless, oversized, lying, redirecting, missing.

A fetch runs on the event loop before the call's transaction (gateway/fetcher.py), so a slow URL
holds up only the call that named it, and a failed fetch stores nothing. Loopback servers here
are real aiohttp servers or raw asyncio sockets (for bodies aiohttp's server would not send).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

ALICE = 20001
LAB = 30001
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"media-faults"
CAP = 1024


@contextlib.asynccontextmanager
async def web_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 answering every GET with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(head: bytes, body: Callable[[int], bytes | None]) -> AsyncIterator[str]:
    """A socket server on 127.0.0.1 that reads a request, writes `head`, then `body(i)` for
    i = 0, 1, ... until it returns None or the client goes away, then closes the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            index = 0
            while (chunk := body(index)) is not None:
                writer.write(chunk)
                await writer.drain()
                index += 1
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def send_image(sandbox: SandboxClient, url: str) -> dict[str, Any]:
    message = [{"type": "image", "data": {"file": url}}]
    return await sandbox.call("send_private_msg", user_id=ALICE, message=message)


async def nothing_stored(sandbox: SandboxClient) -> None:
    history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    assert history["messages"] == []
    files = await sandbox.ok("get_group_root_files", group_id=LAB)
    assert files["files"] == []


async def test_a_slow_url_delays_only_the_call_that_named_it() -> None:
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(body=PNG, content_type="image/png")

    answered: list[str] = []

    async def call(name: str, pending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        body = await pending
        answered.append(name)
        return body

    async with (
        web_server(slow) as base,
        sandbox_client() as sandbox,
        aiohttp.ClientSession() as other,
    ):
        image = asyncio.create_task(call("image", send_image(sandbox, f"{base}/slow.png")))
        try:
            await arrived.wait()
            # While the fetch is pending: an action that needs no database, one that reads it,
            # and a text message from another client, which writes it.
            await call("get_login_info", sandbox.call("get_login_info"))
            await call("get_status", sandbox.call("get_status"))
            async with other.post(
                sandbox.gw.url("api", "/send_private_msg"),
                json={"user_id": ALICE, "message": "hi"},
            ) as response:
                text = await call("text", response.json())
            assert not image.done()
        finally:
            release.set()  # a failed assertion must not leave the server's handler waiting
        sent = await image
    assert answered == ["get_login_info", "get_status", "text", "image"]
    assert text["retcode"] == 0 and sent["retcode"] == 0, (text, sent)
    assert sent["data"]["message_id"] == text["data"]["message_id"] + 1


async def test_a_url_that_never_answers_fails_after_the_timeout() -> None:
    release = asyncio.Event()

    async def silent(_request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=PNG)

    async with (
        web_server(silent) as base,
        sandbox_client(sandbox_document(mediaFetchTimeout=200)) as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/never.png")
        release.set()
        assert answer["retcode"] == 1200, answer
        assert f"{base}/never.png" in answer["message"] and "within 0.2 s" in answer["message"]
        await nothing_stored(sandbox)


async def test_a_declared_size_over_the_cap_is_refused_before_reading() -> None:
    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=PNG + b"\x00" * (4 * CAP))

    async with (
        web_server(big) as base,
        sandbox_client(sandbox_document(mediaMaxSize=CAP)) as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/big.png")
        upload = await sandbox.call(
            "upload_group_file", group_id=LAB, file=f"{base}/big.bin", name="big.bin"
        )
        download = await sandbox.call("download_file", url=f"{base}/big.bin")
        for body in (answer, upload, download):
            assert body["retcode"] == 1200, body
            assert f"over the limit of {CAP} bytes" in body["message"], body
        await nothing_stored(sandbox)


async def test_a_chunked_body_past_the_cap_stops_the_read() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up: only the cap can end this fetch
                await response.write(b"\x00" * 256)
        return response

    async with (
        web_server(endless) as base,
        sandbox_client(sandbox_document(mediaMaxSize=CAP)) as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/endless.png")
        assert answer["retcode"] == 1200, answer
        assert f"larger than the limit of {CAP} bytes" in answer["message"], answer
        await nothing_stored(sandbox)


async def test_a_body_ended_by_closing_past_the_cap_stops_the_read() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n"
    async with (
        raw_server(head, lambda _i: b"\x00" * 256) as base,
        sandbox_client(sandbox_document(mediaMaxSize=CAP)) as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/no-length.png")
        assert answer["retcode"] == 1200, answer
        assert f"larger than the limit of {CAP} bytes" in answer["message"], answer
        await nothing_stored(sandbox)


async def test_a_body_longer_than_its_content_length_fails_cleanly() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
    async with (
        raw_server(head, lambda i: b"\x01" * 256 if i < 16 else None) as base,
        sandbox_client(sandbox_document(mediaMaxSize=CAP)) as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/lies.png")
        assert answer["retcode"] == 1200, answer
        # The parser's complaint quotes the extra bytes; the message stays one short line.
        assert answer["message"].startswith(f"fetching '{base}/lies.png' failed: ")
        assert len(answer["message"]) < 300 and "\n" not in answer["message"]
        await nothing_stored(sandbox)


async def test_a_body_shorter_than_its_content_length_fails_cleanly() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\nConnection: close\r\n\r\n"
    async with (
        raw_server(head, lambda i: b"\x01" * 100 if i == 0 else None) as base,
        sandbox_client() as sandbox,
    ):
        answer = await send_image(sandbox, f"{base}/short.png")
        assert answer["retcode"] == 1200, answer
        assert f"{base}/short.png" in answer["message"], answer
        await nothing_stored(sandbox)


@pytest.mark.parametrize("target", ["http://example.com/a.png", "local"])
async def test_redirects_are_not_followed(target: str) -> None:
    reached: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(body=PNG)

    async with web_server(elsewhere) as other:
        location = f"{other}/a.png" if target == "local" else target

        async def moved(_request: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        async with web_server(moved) as base, sandbox_client() as sandbox:
            answer = await send_image(sandbox, f"{base}/moved.png")
            assert answer["retcode"] == 1200, answer
            assert "HTTP 302 redirect" in answer["message"], answer
            assert location in answer["message"] and "not followed" in answer["message"]
            await nothing_stored(sandbox)
    assert reached == []


async def test_a_missing_file_is_a_clean_error() -> None:
    async def missing(_request: web.Request) -> web.Response:
        return web.Response(status=404)

    async with web_server(missing) as base, sandbox_client() as sandbox:
        answer = await send_image(sandbox, f"{base}/gone.png")
        assert answer["retcode"] == 1200, answer
        assert answer["message"] == f"fetching '{base}/gone.png': HTTP 404"
        await nothing_stored(sandbox)


async def test_a_refused_connection_is_a_clean_error() -> None:
    async with raw_server(b"", lambda _i: None) as base:
        pass  # closed: nothing listens on its port any more
    async with sandbox_client() as sandbox:
        answer = await send_image(sandbox, f"{base}/x.png")
        assert answer["retcode"] == 1200, answer
        assert f"fetching '{base}/x.png' failed" in answer["message"], answer
        await nothing_stored(sandbox)


async def test_a_fetched_image_is_stored_once_however_often_it_appears() -> None:
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    async with web_server(serve) as base, sandbox_client() as sandbox:
        url = f"{base}/twice.png"
        message = [{"type": "image", "data": {"file": url}} for _ in range(2)]
        sent = await sandbox.ok("send_private_msg", user_id=ALICE, message=message)
        stored = await sandbox.ok("get_msg", message_id=sent["message_id"])
    files = {segment["data"]["file"] for segment in stored["message"]}
    assert hits == ["/twice.png"] and len(files) == 1
