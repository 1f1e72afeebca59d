"""The HTTP server adapter over real loopback sockets: every retcode and HTTP status path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.backends.sandbox import backend as sandbox_backend
from gateway.protocol.envelope import ActionFailed
from tests.conftest import RunningGateway, capture_logs, http_entry, run_gateway, sandbox_config

Session = aiohttp.ClientSession
ENVELOPE_KEYS = {"status", "retcode", "data", "message", "wording", "echo", "stream"}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with run_gateway(sandbox_config(httpServers=[http_entry("api")])) as running:
        yield running


async def post(http: Session, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.post(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_post_json_answers_ok_envelope(gw: RunningGateway, http: Session) -> None:
    status, body = await post(http, gw.url("api", "/get_login_info"), json={})
    assert status == 200
    assert set(body) == ENVELOPE_KEYS
    assert body["status"] == "ok" and body["retcode"] == 0
    assert body["data"] == {"user_id": 10001, "nickname": "Sandbox Bot"}


async def test_root_answers_health_envelope(gw: RunningGateway, http: Session) -> None:
    async with http.get(gw.url("api", "/")) as response:
        body = await response.json()
    assert body["retcode"] == 0
    assert body["data"]["self_id"] == 10001
    assert body["data"]["backend"] == "sandbox"


async def test_trailing_path_still_names_the_action(gw: RunningGateway, http: Session) -> None:
    status, body = await post(http, gw.url("api", "/get_login_info/extra"))
    assert (status, body["retcode"]) == (200, 0)


async def test_unknown_action_is_1404(gw: RunningGateway, http: Session) -> None:
    status, body = await post(http, gw.url("api", "/no_such_action"), json={})
    assert (status, body["status"], body["retcode"]) == (200, "failed", 1404)
    assert "no_such_action" in body["message"]
    assert body["wording"] == body["message"]


async def test_invalid_json_is_1400_saying_where(gw: RunningGateway, http: Session) -> None:
    status, body = await post(
        http,
        gw.url("api", "/get_login_info"),
        data=b'{"a": 1,, }',
        headers={"Content-Type": "application/json"},
    )
    assert (status, body["retcode"]) == (200, 1400)
    assert "invalid JSON body" in body["message"]
    assert "column 9" in body["message"]


async def test_body_that_is_not_an_object_is_1400(gw: RunningGateway, http: Session) -> None:
    status, body = await post(http, gw.url("api", "/get_login_info"), json=[1, 2])
    assert (status, body["retcode"]) == (200, 1400)
    assert "must be an object, got array" in body["message"]


async def test_missing_parameter_is_1400_naming_it(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_stranger_info"), json={})
    assert body["retcode"] == 1400
    assert "user_id" in body["message"] and "missing" in body["message"]


async def test_wrong_parameter_type_is_1400_naming_it(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_stranger_info"), json={"user_id": "abc"})
    assert body["retcode"] == 1400
    assert "'user_id'" in body["message"] and "'abc'" in body["message"]


async def test_backend_failure_is_1200_with_its_message(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_stranger_info"), json={"user_id": 99999})
    assert (body["status"], body["retcode"]) == ("failed", 1200)
    assert "99999" in body["message"]


async def test_backend_crash_is_1200_internal_error(
    gw: RunningGateway, http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(_sandbox: Any, _params: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(sandbox_backend.HANDLERS, "get_status", crash)  # fault injection
    with capture_logs() as logs:
        _, body = await post(http, gw.url("api", "/get_status"))
    assert body["retcode"] == 1200
    assert "internal error" in body["message"] and "disk on fire" in body["message"]
    assert any(entry["event"] == "action_crashed" for entry in logs)


async def test_json5_body_is_accepted(gw: RunningGateway, http: Session) -> None:
    _, body = await post(
        http,
        gw.url("api", "/get_stranger_info"),
        data=b"{user_id: 20001, // Alice\n echo: 'j5',}",
        headers={"Content-Type": "application/json"},
    )
    assert body["retcode"] == 0 and body["data"]["nickname"] == "Alice"
    assert body["echo"] == "j5"


async def test_body_without_content_type_is_json(gw: RunningGateway, http: Session) -> None:
    async with http.post(
        gw.url("api", "/get_stranger_info"),
        data=b'{"user_id": 20002}',
        skip_auto_headers=["Content-Type"],
    ) as response:
        assert "Content-Type" not in response.request_info.headers
        body = await response.json()
    assert body["data"]["nickname"] == "Bob"


async def test_urlencoded_body_is_coerced(gw: RunningGateway, http: Session) -> None:
    _, body = await post(
        http, gw.url("api", "/get_stranger_info"), data={"user_id": "20003", "no_cache": "true"}
    )
    assert body["retcode"] == 0 and body["data"]["user_id"] == 20003


async def test_get_query_coerces_numbers_and_booleans(gw: RunningGateway, http: Session) -> None:
    async with http.get(
        gw.url("api", "/get_stranger_info"), params={"user_id": "20001", "no_cache": "1"}
    ) as response:
        body = await response.json()
    assert body["retcode"] == 0 and body["data"]["user_id"] == 20001


async def test_get_query_rejects_a_non_boolean(gw: RunningGateway, http: Session) -> None:
    async with http.get(
        gw.url("api", "/get_stranger_info"), params={"user_id": "20001", "no_cache": "maybe"}
    ) as response:
        body = await response.json()
    assert body["retcode"] == 1400 and "no_cache" in body["message"]


async def test_query_overrides_body(gw: RunningGateway, http: Session) -> None:
    _, body = await post(
        http, gw.url("api", "/get_stranger_info?user_id=20002"), json={"user_id": 20001}
    )
    assert body["data"]["nickname"] == "Bob"


@pytest.mark.parametrize("echo", ["req-1", 42, {"id": [1, "x"]}, None])
async def test_echo_is_returned_verbatim(gw: RunningGateway, http: Session, echo: Any) -> None:
    _, body = await post(http, gw.url("api", "/get_login_info"), json={"echo": echo})
    assert body["echo"] == echo


async def test_echo_is_returned_on_failures(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/nope"), json={"echo": {"n": 1}})
    assert body["retcode"] == 1404 and body["echo"] == {"n": 1}


async def test_async_suffix_answers_at_once(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_login_info_async"), json={"echo": 7})
    assert (body["status"], body["retcode"], body["data"], body["echo"]) == ("async", 1, None, 7)


async def test_async_suffix_validates_before_accepting(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_stranger_info_async"), json={})
    assert body["retcode"] == 1400


async def test_async_failure_is_logged(gw: RunningGateway, http: Session) -> None:
    with capture_logs() as logs:
        _, body = await post(http, gw.url("api", "/get_stranger_info_async"), json={"user_id": 5})
        assert body["retcode"] == 1
        await gw.supervisor.dispatcher.stop()  # waits for the background call to settle
    failures = [e for e in logs if e["event"] == "background_action_failed"]
    assert failures and failures[0]["action"] == "get_stranger_info"


async def test_rate_limited_suffix_answers_async(gw: RunningGateway, http: Session) -> None:
    _, body = await post(http, gw.url("api", "/get_status_rate_limited"))
    assert (body["status"], body["retcode"]) == ("async", 1)
    _, bad = await post(http, gw.url("api", "/nope_rate_limited"))
    assert bad["retcode"] == 1404


async def test_backend_failure_fault_is_rendered(
    gw: RunningGateway, http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(_sandbox: Any, _params: Any) -> None:
        raise ActionFailed("account is offline")

    monkeypatch.setitem(sandbox_backend.HANDLERS, "get_login_info", refuse)  # fault injection
    _, body = await post(http, gw.url("api", "/get_login_info"))
    assert (body["retcode"], body["message"]) == (1200, "account is offline")


async def test_method_other_than_get_or_post_is_refused(gw: RunningGateway, http: Session) -> None:
    async with http.put(gw.url("api", "/get_login_info")) as response:
        body = await response.json()
    assert response.status == 405 and body["retcode"] == 1400


async def test_multipart_body_is_refused(gw: RunningGateway, http: Session) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"x", filename="x.bin")
    _, body = await post(http, gw.url("api", "/get_login_info"), data=form)
    assert body["retcode"] == 1400 and "multipart" in body["message"]


# --- body limit --------------------------------------------------------------------------------


async def test_body_over_limit_is_413_with_1400(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("small", maxBodySize=1024)])
    async with run_gateway(doc) as gw:
        status, body = await post(http, gw.url("small", "/get_login_info"), data=b"x" * 4096)
        assert (status, body["retcode"]) == (413, 1400)
        assert "1024" in body["message"]


async def test_chunked_body_over_limit_is_413(http: Session) -> None:
    async def chunks() -> Any:
        for _ in range(8):
            yield b" " * 512

    doc = sandbox_config(httpServers=[http_entry("small", maxBodySize=1024)])
    async with run_gateway(doc) as gw:
        status, body = await post(http, gw.url("small", "/get_login_info"), data=chunks())
        assert (status, body["retcode"]) == (413, 1400)


async def exchange_head(port: int, head: str) -> tuple[bytes, Any]:
    """Send a request head without its body; the first answer head, and the open streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10), (reader, writer)


def post_head(length: int, expect: str, token: str = "") -> str:
    auth = f"Authorization: Bearer {token}\n" if token else ""
    return (
        "POST /get_login_info HTTP/1.1\nHost: gw\nContent-Type: application/json\n"
        f"Content-Length: {length}\nExpect: {expect}\n{auth}"
    )


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    # curl sends `Expect: 100-continue` before large bodies and otherwise stalls for a second.
    doc = sandbox_config(httpServers=[http_entry("api", maxBodySize=1024, token="t")])
    async with run_gateway(doc) as gw:
        port = gw.supervisor.adapters["api"].port
        body = b'{"echo": "after-100"}'
        interim, (reader, writer) = await exchange_head(
            port, post_head(len(body), "100-continue", "t")
        )
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert final.startswith(b"HTTP/1.1 200")
        length = int(final.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
        assert (answer["retcode"], answer["echo"]) == (0, "after-100")
        writer.close()
        # Refusals come instead of the 100, so a client need not upload its body.
        for length, expect, token, status in [
            (4096, "100-continue", "t", b"413"),
            (10, "100-continue", "wrong", b"403"),
            (10, "something-else", "t", b"417"),
        ]:
            first, (_, writer) = await exchange_head(port, post_head(length, expect, token))
            assert first.startswith(b"HTTP/1.1 " + status), first
            # This one sends it anyway (as old clients do), so the server is not left waiting
            # for a body that will never come when the gateway stops.
            writer.write(b" " * length)
            await writer.drain()
            writer.close()
            await writer.wait_closed()


# --- tokens ------------------------------------------------------------------------------------


@pytest.fixture
async def secured() -> AsyncIterator[RunningGateway]:
    doc = sandbox_config(httpServers=[http_entry("api", token="s3cret")])
    async with run_gateway(doc) as running:
        yield running


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": "Bearer s3cret"}, {}),
        ({"Authorization": "Token s3cret"}, {}),
        ({}, {"access_token": "s3cret"}),
    ],
)
async def test_token_is_accepted_in_each_form(
    secured: RunningGateway, http: Session, headers: Any, query: Any
) -> None:
    status, body = await post(
        http, secured.url("api", "/get_login_info"), headers=headers, params=query
    )
    assert (status, body["retcode"]) == (200, 0)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer wrong"}, "wrong"),
        ({"Authorization": "Bearer s3cre"}, "wrong"),
    ],
)
async def test_missing_or_wrong_token_is_403_with_1403(
    secured: RunningGateway, http: Session, headers: Any, reason: str
) -> None:
    status, body = await post(http, secured.url("api", "/get_login_info"), headers=headers)
    assert (status, body["status"], body["retcode"]) == (403, "failed", 1403)
    assert reason in body["message"]


async def test_auth_runs_before_the_body_is_parsed(secured: RunningGateway, http: Session) -> None:
    status, body = await post(
        http,
        secured.url("api", "/get_login_info"),
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert (status, body["retcode"]) == (403, 1403)


async def test_access_token_is_not_passed_as_a_parameter(
    secured: RunningGateway, http: Session
) -> None:
    with capture_logs() as logs:
        _, body = await post(
            http,
            secured.url("api", "/get_stranger_info"),
            params={"access_token": "s3cret", "user_id": "20001"},
        )
    assert body["retcode"] == 0
    assert "s3cret" not in repr(logs)


# --- CORS --------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "http://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_cors_preflight_is_answered_before_auth(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("api", token="t", enableCors=True)])
    async with run_gateway(doc) as gw:
        async with http.options(gw.url("api", "/send_msg"), headers=PREFLIGHT) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        async with http.get(
            gw.url("api", "/"),
            headers={"Origin": "http://app.example", "Authorization": "Bearer t"},
        ) as ok:
            assert ok.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_headers_go_only_to_requests_with_an_origin(http: Session) -> None:
    # Browsers send Origin on every cross-origin request; other clients need no CORS headers.
    doc = sandbox_config(httpServers=[http_entry("api", enableCors=True)])
    async with run_gateway(doc) as gw:
        async with http.post(gw.url("api", "/get_login_info"), json={}) as plain:
            assert "Access-Control-Allow-Origin" not in plain.headers
        browser = {"Origin": "http://app.example"}
        async with http.post(gw.url("api", "/get_login_info"), json={}, headers=browser) as cors:
            assert cors.headers["Access-Control-Allow-Origin"] == "*"
            assert "Vary" not in cors.headers
        async with http.post(gw.url("api", "/nope"), json={}, headers=browser) as failed:
            assert failed.headers["Access-Control-Allow-Origin"] == "*"
            assert (await failed.json())["retcode"] == 1404


async def test_cors_off_sends_no_cors_headers(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("api", enableCors=False)])
    async with run_gateway(doc) as gw:
        async with http.options(gw.url("api", "/get_login_info"), headers=PREFLIGHT) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
            assert response.status == 403
            assert "CORS is disabled" in (await response.json())["message"]
        async with http.get(gw.url("api", "/"), headers={"Origin": "http://a"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_allow_list_reflects_only_listed_origins(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("api", corsOrigins=["http://app.example"])])
    async with run_gateway(doc) as gw:
        async with http.options(gw.url("api", "/x"), headers=PREFLIGHT) as allowed:
            assert allowed.status == 204
            assert allowed.headers["Access-Control-Allow-Origin"] == "http://app.example"
            assert allowed.headers["Vary"] == "Origin"
        other = {**PREFLIGHT, "Origin": "http://evil.example"}
        async with http.options(gw.url("api", "/x"), headers=other) as refused:
            assert refused.status == 403
            assert "Access-Control-Allow-Origin" not in refused.headers


# --- several servers from one config -----------------------------------------------------------


async def test_three_servers_keep_their_own_tokens_cors_and_debug(
    http: Session,
) -> None:
    doc = sandbox_config(
        httpServers=[
            http_entry("a", token="token-a", enableCors=False, debug=True),
            http_entry("b", token="token-b", enableCors=True),
            http_entry("c", enableCors=True, corsOrigins=["http://c.example"]),
            {**http_entry("off"), "enable": False, "port": 0},
        ]
    )
    async with run_gateway(doc) as gw:
        assert set(gw.supervisor.adapters) == {"a", "b", "c"}
        a_auth = {"Authorization": "Bearer token-a", "Origin": "http://c.example"}
        with capture_logs() as logs:
            status_a, _ = await post(http, gw.url("a", "/get_login_info"), headers=a_auth)
        status_b, body_b = await post(http, gw.url("b", "/get_login_info"), headers=a_auth)
        assert status_a == 200
        assert (status_b, body_b["retcode"]) == (403, 1403)
        debug_lines = [e for e in logs if e["event"] in ("http_request", "http_response")]
        assert [e["event"] for e in debug_lines] == ["http_request", "http_response"]
        assert debug_lines[0]["server"] == "a"
        async with http.get(gw.url("a", "/"), headers=a_auth) as r_a:
            assert "Access-Control-Allow-Origin" not in r_a.headers
        async with http.get(gw.url("c", "/"), headers={"Origin": "http://c.example"}) as r_c:
            assert r_c.headers["Access-Control-Allow-Origin"] == "http://c.example"


async def test_requests_on_b_are_not_debug_logged(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("a", debug=True), http_entry("b")])
    async with run_gateway(doc) as gw:
        with capture_logs() as logs:
            await post(http, gw.url("b", "/get_login_info"))
            await post(http, gw.url("a", "/get_login_info"))
    assert {e["server"] for e in logs if e["event"] == "http_request"} == {"a"}


async def test_curl_d_json_labelled_as_a_form_is_json(gw: RunningGateway, http: Session) -> None:
    # `curl -d '{...}'` sends application/x-www-form-urlencoded: the README's own examples do.
    status, body = await post(
        http,
        gw.url("api", "/sandbox_receive_message"),
        data=b' {"message_type": "private", "user_id": 20003, "message": "ping"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body["retcode"]) == (200, 0)
    assert isinstance(body["data"]["message_id"], int)


async def test_a_real_form_is_still_a_form(gw: RunningGateway, http: Session) -> None:
    status, body = await post(
        http, gw.url("api", "/get_stranger_info"), data={"user_id": "20003", "echo": "f"}
    )
    assert (status, body["retcode"], body["echo"]) == (200, 0, "f")
