"""HTTP inputs that once answered 500 or slipped unencodable values through: each is now a clean
4xx or an envelope, and the next call still works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.backends.sandbox import backend as sandbox_backend
from tests.conftest import RunningGateway, capture_logs, http_entry, run_gateway, sandbox_config

TOKEN = "s3cret"


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    document = sandbox_config(
        httpServers=[http_entry("api", token=TOKEN, enableWebsocket=True)],
        httpSseServers=[http_entry("sse", token=TOKEN)],
    )
    document["admin"] = {"host": "127.0.0.1", "port": 0, "token": TOKEN}
    async with run_gateway(document) as running:
        yield running


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes exactly as given; return the status code and the body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        return int(status_line.split()[1]), await reader.readexactly(length)
    finally:
        writer.close()


def port_of(gw: RunningGateway, name: str) -> int:
    adapter: Any = gw.supervisor.adapters[name]
    return int(adapter.port)


async def still_answers(gw: RunningGateway) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url("api", "/get_status"), headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response,
    ):
        assert (await response.json())["retcode"] == 0


@pytest.mark.parametrize("path", ["/get_status", "/_events", "/"])
@pytest.mark.parametrize("server", ["api", "sse"])
async def test_non_utf8_authorization_is_a_plain_403(
    gw: RunningGateway, server: str, path: str
) -> None:
    head = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        + b"Authorization: Bearer \xff\xfe\r\n\r\n"
    )
    status, body = await raw_request(port_of(gw, server), head)
    assert status == 403
    assert json.loads(body)["retcode"] == 1403
    await still_answers(gw)


async def test_non_utf8_authorization_on_a_websocket_upgrade_is_403(gw: RunningGateway) -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer \xff\r\n\r\n"
    )
    status, body = await raw_request(port_of(gw, "api"), head)
    assert status == 403
    assert json.loads(body)["retcode"] == 1403


async def test_non_utf8_authorization_on_the_admin_listener_is_403(gw: RunningGateway) -> None:
    assert gw.supervisor.admin is not None
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: \xff\r\n\r\n"
    status, _ = await raw_request(gw.supervisor.admin.port, head)
    assert status == 403


def post_head(path: str, content_type: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/x-www-form-urlencoded", b"%%%&&&===\xff", "not valid utf-8"),
        ("application/x-www-form-urlencoded", b"echo=%ff%fe", "not valid utf-8"),
        ("application/x-www-form-urlencoded; charset=bogus", b"a=1", "unknown charset"),
    ],
)
async def test_bad_urlencoded_bodies_are_1400(
    gw: RunningGateway, content_type: str, body: bytes, reason: str
) -> None:
    head = post_head("/get_status", content_type, body)
    status, answer = await raw_request(port_of(gw, "api"), head, body)
    envelope = json.loads(answer)
    assert (status, envelope["retcode"]) == (200, 1400)
    assert reason in envelope["message"].lower()
    await still_answers(gw)


async def test_options_star_answers_what_the_server_allows(gw: RunningGateway) -> None:
    head = b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    status, _ = await raw_request(port_of(gw, "api"), head)
    assert status == 204


async def test_a_target_that_is_not_a_path_is_400(gw: RunningGateway) -> None:
    # aiohttp's parser refuses `GET *` itself (its own plain-text 400): still a clean 4xx.
    head = b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    status, _ = await raw_request(port_of(gw, "api"), head)
    assert status == 400
    await still_answers(gw)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/get_status", b'{"echo": "\\ud800"}', ""),
        ("/get_status", b'{"echo": "\\udc00"}', ""),
        ("/get_status", b"{echo: 123456789012345678901234567890}", "64-bit"),
        ("/get_status", b"{echo: NaN}", "nan"),
        ("/get_status", b"{echo: -Infinity}", "infinity"),
        ("/translate_en2zh", b'{"word": "\\ud800"}', ""),
        (
            "/send_private_msg",
            b'{user_id: 20003, message: [{type: "face", data: {big: 1180591620717411303424}}]}',
            "64-bit",
        ),
        ("/get_status", b'{"echo": "\xff\xfe"}', "utf-8"),
        ("/get_status", b'{"echo": 100000000000000000000000000000}', "64-bit"),  # strict JSON
        ("/get_status", b'{"echo": -18446744073709551616}', "64-bit"),
        ("/get_status", b'{"echo": 1e400}', "infinity"),
        ("/get_status", b'{"echo": ' + b"[" * 300 + b"]" * 300 + b"}", "deep"),
    ],
)
async def test_input_that_cannot_be_answered_is_refused_at_parse_time(
    gw: RunningGateway, path: str, body: bytes, reason: str
) -> None:
    head = post_head(path, "application/json", body)
    status, answer = await raw_request(port_of(gw, "api"), head, body)
    envelope = json.loads(answer)
    assert (status, envelope["retcode"]) == (200, 1400)
    assert reason in envelope["message"].lower()
    await still_answers(gw)


def break_get_status(gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: `get_status` answers a lone surrogate, as a backend bug could."""

    async def broken(self: Any, params: Any) -> Any:
        return {"nickname": "\ud800"}

    bind = sandbox_backend.SandboxBackend.bind

    def bind_broken(self: Any, action: str) -> Any:
        return (
            (lambda params: broken(self, params)) if action == "get_status" else bind(self, action)
        )

    monkeypatch.setattr(sandbox_backend.SandboxBackend, "bind", bind_broken)
    gw.supervisor.dispatcher._routes.clear()


async def test_an_answer_that_cannot_be_encoded_is_a_1200_envelope(
    gw: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: a backend bug returning a lone surrogate must not become an HTTP 500.
    break_get_status(gw, monkeypatch)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url("api", "/get_status"),
            json={"echo": 7},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        envelope = await response.json()
    assert response.status == 200
    assert (envelope["retcode"], envelope["echo"]) == (1200, 7)
    assert "could not be encoded" in envelope["message"]


async def test_a_refused_body_keeps_its_echo_when_the_echo_itself_is_fine(
    gw: RunningGateway,
) -> None:
    body = b'{"echo": "e1", "user_id": "\\ud800"}'
    head = post_head("/get_stranger_info", "application/json", body)
    status, answer = await raw_request(port_of(gw, "api"), head, body)
    envelope = json.loads(answer)
    assert (status, envelope["retcode"], envelope["echo"]) == (200, 1400, "e1")


async def test_long_digit_strings_and_64_bit_integers_come_back_exactly(
    gw: RunningGateway,
) -> None:
    for echo in ("123456789012345678901234567890", 18446744073709551615, -9223372036854775808):
        body = json.dumps({"echo": echo}).encode()
        head = post_head("/get_status", "application/json", body)
        _, answer = await raw_request(port_of(gw, "api"), head, body)
        envelope = json.loads(answer)
        assert (envelope["retcode"], envelope["echo"]) == (0, echo)


@pytest.mark.parametrize(
    "head",
    [
        b"POST /get_status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /get_status HTTP/9.9\r\nHost: x\r\n\r\n",
        b"G\xffT /get_status HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /get_status HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
    ],
    ids=["content-length", "version", "method", "huge-header"],
)
async def test_requests_the_parser_refuses_get_an_envelope_and_one_log_line(
    gw: RunningGateway, head: bytes
) -> None:
    with capture_logs() as logs:
        status, body = await raw_request(port_of(gw, "api"), head)
    assert 400 <= status < 500
    envelope = json.loads(body)
    assert (envelope["retcode"], envelope["status"]) == (1400, "failed")
    assert "malformed request" in envelope["message"]
    assert [line["event"] for line in logs if line["log_level"] == "error"] == []
    await still_answers(gw)


async def test_a_body_that_cannot_be_decoded_is_1400(gw: RunningGateway) -> None:
    body = b'{"echo": 1}'
    head = post_head("/get_status", "application/json", body).replace(
        b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n"
    )
    status, answer = await raw_request(port_of(gw, "api"), head, body)
    envelope = json.loads(answer)
    assert envelope["retcode"] == 1400 and status < 500
    await still_answers(gw)


async def test_a_client_that_ends_short_of_its_length_costs_nothing(gw: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gw, "api"))
    writer.write(post_head("/get_status", "application/json", b"x" * 100) + b"{}")
    await writer.drain()
    with capture_logs() as logs:
        writer.write_eof()  # done sending, 98 bytes short: aiohttp treats it as gone
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await still_answers(gw)
    assert [line["event"] for line in logs if line["log_level"] == "error"] == []


async def test_a_websocket_answer_that_cannot_be_encoded_is_a_1200_envelope(
    gw: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection, as above: the call is answered (1200), never left without an answer.
    break_get_status(gw, monkeypatch)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            gw.url("api", "/api").replace("http", "ws", 1),
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as ws,
    ):
        await ws.send_json({"action": "get_status", "echo": "w"})
        envelope = await ws.receive_json(timeout=10)
    assert (envelope["retcode"], envelope["echo"]) == (1200, "w")
