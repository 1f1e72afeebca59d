"""Forward WebSocket servers and WebSockets on the HTTP port, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog

from gateway.backends.sandbox import backend as sandbox_backend
from tests.conftest import RunningGateway, capture_logs, http_entry, run_gateway, sandbox_config
from tests.held_server import held_server

Session = aiohttp.ClientSession
WS = aiohttp.ClientWebSocketResponse


def ws_entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "enable": True, "host": "127.0.0.1", "port": 0, **fields}


def ws_url(gw: RunningGateway, name: str, path: str = "/") -> str:
    return gw.url(name, path).replace("http://", "ws://")


def message_event(seq: int, message_type: str = "private", **extra: Any) -> dict[str, Any]:
    event = {
        "time": 1700000000,
        "self_id": 10001,
        "post_type": "message",
        "message_type": message_type,
        "sub_type": "friend" if message_type == "private" else "normal",
        "message_id": seq,
        "user_id": 20001,
        "message": [
            {"type": "text", "data": {"text": f"hi [{seq}]"}},
            {"type": "face", "data": {"id": "1"}},
        ],
        "raw_message": f"hi &#91;{seq}&#93;[CQ:face,id=1]",
        "message_format": "array",
        "font": 14,
        "sender": {"user_id": 20001, "nickname": "Alice"},
    }
    if message_type == "group":
        event["group_id"] = 30001
    return {**event, **extra}


async def receive_json(ws: WS) -> Any:
    return await ws.receive_json(timeout=5.0)


async def lifecycle_of(ws: WS) -> dict[str, Any]:
    first = await receive_json(ws)
    assert (first["meta_event_type"], first["sub_type"]) == ("lifecycle", "connect")
    return first


async def wait_subscribers(gw: RunningGateway, count: int) -> None:
    for _ in range(500):
        if len(gw.supervisor.bus.subscriptions) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {len(gw.supervisor.bus.subscriptions)} subscribers")


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    doc = sandbox_config(websocketServers=[ws_entry("ws", token="tok", heartInterval=0)])
    async with run_gateway(doc) as running:
        yield running


AUTH = {"Authorization": "Bearer tok"}


async def test_lifecycle_connect_comes_first(gw: RunningGateway, http: Session) -> None:
    async with http.ws_connect(ws_url(gw, "ws"), headers=AUTH) as ws:
        event = await lifecycle_of(ws)
    assert event["self_id"] == 10001 and event["post_type"] == "meta_event"


async def test_wrong_token_is_refused_before_the_upgrade(gw: RunningGateway, http: Session) -> None:
    with capture_logs() as logs, pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(gw, "ws"), headers={"Authorization": "Bearer nope"})
    assert refused.value.status == 403
    assert not [e for e in logs if e["event"] == "ws_connected"]


async def test_missing_token_is_refused_with_403(gw: RunningGateway, http: Session) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(gw, "ws"))
    assert refused.value.status == 403


async def test_query_token_is_accepted(gw: RunningGateway, http: Session) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/?access_token=tok")) as ws:
        await lifecycle_of(ws)


async def test_api_path_answers_without_events(gw: RunningGateway, http: Session) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await wait_subscribers(gw, 0)
        gw.supervisor.bus.publish(message_event(1))
        await ws.send_json({"action": "get_login_info", "echo": "1"})
        reply = await receive_json(ws)
    assert reply["echo"] == "1" and reply["data"]["user_id"] == 10001
    assert "post_type" not in reply


async def test_event_path_pushes_events_and_refuses_actions(
    gw: RunningGateway, http: Session
) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/event/"), headers=AUTH) as ws:
        await lifecycle_of(ws)
        gw.supervisor.bus.publish(message_event(7))
        assert (await receive_json(ws))["message_id"] == 7
        await ws.send_json({"action": "get_login_info", "echo": "e"})
        reply = await receive_json(ws)
    assert (reply["retcode"], reply["echo"]) == (1400, "e")
    assert "event-only" in reply["message"]


async def test_universal_path_does_both(gw: RunningGateway, http: Session) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/"), headers=AUTH) as ws:
        await lifecycle_of(ws)
        await ws.send_json({"action": "get_status", "echo": 5})
        assert (await receive_json(ws))["echo"] == 5
        gw.supervisor.bus.publish(message_event(9))
        assert (await receive_json(ws))["message_id"] == 9


@pytest.mark.parametrize("echo", ["123", 123, {"seq": [1, 2]}, None, 1.5, True])
async def test_echo_comes_back_with_its_type(gw: RunningGateway, http: Session, echo: Any) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await ws.send_json({"action": "get_login_info", "params": {}, "echo": echo})
        reply = await receive_json(ws)
    assert reply["echo"] == echo and type(reply["echo"]) is type(echo)


async def test_invalid_frames_get_1400_and_the_socket_stays_open(
    gw: RunningGateway, http: Session
) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await ws.send_str("{not json")
        bad_json = await receive_json(ws)
        await ws.send_str("[1, 2]")
        not_object = await receive_json(ws)
        await ws.send_json({"params": {}, "echo": "no-action"})
        no_action = await receive_json(ws)
        await ws.send_json({"action": "get_login_info", "echo": "still-open"})
        ok = await receive_json(ws)
    assert bad_json["retcode"] == 1400 and "invalid JSON frame" in bad_json["message"]
    assert not_object["retcode"] == 1400 and "got array" in not_object["message"]
    assert (no_action["retcode"], no_action["echo"]) == (1400, "no-action")
    assert (ok["retcode"], ok["echo"]) == (0, "still-open")


async def test_a_frame_refused_for_what_it_holds_keeps_its_echo(
    gw: RunningGateway, http: Session
) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await ws.send_str('{"action": "send_msg", "params": {"x": "\\ud800"}, "echo": "e1"}')
        refused = await receive_json(ws)
    assert (refused["retcode"], refused["echo"]) == (1400, "e1")


async def test_unknown_action_and_bad_params_keep_echo(gw: RunningGateway, http: Session) -> None:
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await ws.send_json({"action": "nope", "echo": "a"})
        unknown = await receive_json(ws)
        await ws.send_json({"action": "get_stranger_info", "params": {"user_id": "x"}, "echo": "b"})
        bad = await receive_json(ws)
    assert (unknown["retcode"], unknown["echo"]) == (1404, "a")
    assert (bad["retcode"], bad["echo"]) == (1400, "b") and "user_id" in bad["message"]


async def test_api_frames_on_one_socket_run_concurrently(
    gw: RunningGateway, http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    original = sandbox_backend.HANDLERS["get_stranger_info"]

    async def slow(sandbox: Any, params: Any) -> Any:  # latency fault: a backend that stalls
        await release.wait()
        return await original(sandbox, params)

    monkeypatch.setitem(sandbox_backend.HANDLERS, "get_stranger_info", slow)
    async with http.ws_connect(ws_url(gw, "ws", "/api"), headers=AUTH) as ws:
        await ws.send_json(
            {"action": "get_stranger_info", "params": {"user_id": 20001}, "echo": "slow"}
        )
        await ws.send_json({"action": "get_login_info", "echo": "fast"})
        first = await receive_json(ws)
        release.set()
        second = await receive_json(ws)
    assert [first["echo"], second["echo"]] == ["fast", "slow"]
    assert second["data"]["nickname"] == "Alice"


async def test_allowed_origins_refuse_other_browser_pages_before_the_upgrade(
    http: Session,
) -> None:
    listed = {"allowedOrigins": ["https://app.example"]}
    doc = sandbox_config(
        websocketServers=[ws_entry("ws", heartInterval=0, **listed)],
        httpServers=[http_entry("api", enableWebsocket=True, heartInterval=0, **listed)],
    )
    async with run_gateway(doc) as gw:
        for name in ("ws", "api"):
            evil = {"Origin": "https://evil.example"}
            with capture_logs() as logs, pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(gw, name, "/api"), headers=evil)
            assert refused.value.status == 403
            assert [e["origin"] for e in logs if e["event"] == "origin_refused"] == [
                "https://evil.example"
            ]
            for headers in ({"Origin": "https://app.example"}, {}):  # a listed page; a bot
                async with http.ws_connect(ws_url(gw, name, "/api"), headers=headers) as ws:
                    await ws.send_json({"action": "get_login_info", "echo": name})
                    assert (await receive_json(ws))["echo"] == name
        browser = {"Origin": "https://evil.example"}  # plain HTTP calls are CORS's business
        async with http.post(gw.url("api", "/get_login_info"), headers=browser) as plain:
            assert (await plain.json())["retcode"] == 0


async def test_lines_logged_inside_a_call_carry_its_context(http: Session) -> None:
    async def noisy(sandbox: Any, params: Any) -> Any:  # a backend that logs while it works
        structlog.get_logger("test").warning("backend_said_something")
        return {"ok": True}

    doc = sandbox_config(
        websocketServers=[ws_entry("ws", heartInterval=0)], httpServers=[http_entry("api")]
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sandbox_backend.HANDLERS, "get_status", noisy)
        async with run_gateway(doc) as gw:
            with capture_logs() as logs:
                async with http.ws_connect(ws_url(gw, "ws", "/api")) as ws:
                    await ws.send_json({"action": "get_status", "echo": "w1"})
                    assert (await receive_json(ws))["echo"] == "w1"
                async with http.post(gw.url("api", "/get_status"), json={"echo": "h1"}) as r:
                    assert (await r.json())["echo"] == "h1"
    said = [e for e in logs if e["event"] == "backend_said_something"]
    assert [(e["server"], e["action"], e["echo"]) for e in said] == [
        ("ws", "get_status", "w1"),
        ("api", "get_status", "h1"),
    ]
    assert said[0]["role"] == "api" and said[0]["peer"] == said[1]["peer"] == "127.0.0.1"


async def test_frame_over_limit_closes_only_that_connection_with_1009(http: Session) -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", maxBodySize=1024, heartInterval=0)])
    async with (
        run_gateway(doc) as gw,
        http.ws_connect(ws_url(gw, "ws", "/api")) as other,
        http.ws_connect(ws_url(gw, "ws", "/api")) as big,
    ):
        await big.send_str('{"action": "get_login_info", "pad": "' + "x" * 4096 + '"}')
        closing = await big.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 1009 and "size limit" in closing.extra
        await other.send_json({"action": "get_login_info", "echo": 1})
        assert (await receive_json(other))["retcode"] == 0


async def test_heartbeats_carry_status_and_interval(http: Session) -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=100)])
    async with run_gateway(doc) as gw, http.ws_connect(ws_url(gw, "ws")) as ws:
        await lifecycle_of(ws)
        beats = [await receive_json(ws), await receive_json(ws)]
    for beat in beats:
        assert beat["meta_event_type"] == "heartbeat"
        assert beat["interval"] == 100
        assert beat["status"] == {"online": True, "good": True}


async def test_http_port_websockets_get_lifecycle_then_heartbeats(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("h", enableWebsocket=True, heartInterval=50)])
    async with run_gateway(doc) as gw, http.ws_connect(ws_url(gw, "h")) as ws:
        await lifecycle_of(ws)
        beats = [await receive_json(ws), await receive_json(ws)]
    assert [b["meta_event_type"] for b in beats] == ["heartbeat", "heartbeat"]
    assert all(b["interval"] == 50 for b in beats)


async def test_heart_interval_zero_disables_heartbeats(http: Session) -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0)])
    async with run_gateway(doc) as gw, http.ws_connect(ws_url(gw, "ws")) as ws:
        await lifecycle_of(ws)
        assert not gw.supervisor.adapters["ws"].heartbeat.running
        gw.supervisor.bus.publish(message_event(1))
        assert (await receive_json(ws))["post_type"] == "message"


async def test_shutdown_closes_connections_with_1001(http: Session) -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0)])
    async with run_gateway(doc) as gw:
        ws = await http.ws_connect(ws_url(gw, "ws"))
        await lifecycle_of(ws)
        await gw.supervisor.adapters["ws"].stop()
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await ws.close()


async def test_shutdown_answers_running_calls_refuses_new_ones_then_closes_1001(
    http: Session,
) -> None:
    doc = {**sandbox_config(websocketServers=[ws_entry("ws")]), "api": {"shutdownGrace": 30}}
    async with held_server() as media, run_gateway(doc) as gw:
        ws = await http.ws_connect(ws_url(gw, "ws", "/api"))
        held = {"action": "download_file", "params": {"url": media.url("f")}, "echo": "held"}
        await ws.send_json(held)
        await media.wait_for(1)
        stopping = asyncio.create_task(gw.supervisor.adapters["ws"].stop())
        await asyncio.sleep(0)  # the stop's first step runs: no new calls from here on
        await ws.send_json({"action": "get_login_info", "echo": "late"})
        late = await receive_json(ws)
        assert (late["echo"], late["retcode"]) == ("late", 1200)
        assert "shutting down" in late["message"]
        media.release.set()
        answer = await receive_json(ws)
        assert (answer["echo"], answer["retcode"]) == ("held", 0)
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await ws.close()
        await stopping


async def test_http_port_serves_websocket_when_enabled(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("h", enableWebsocket=True, token="t")])
    async with run_gateway(doc) as gw:
        async with http.ws_connect(ws_url(gw, "h", "/?access_token=t")) as ws:
            await lifecycle_of(ws)
            await ws.send_json({"action": "get_login_info", "echo": "x"})
            assert (await receive_json(ws))["data"]["user_id"] == 10001
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(gw, "h"))
        assert refused.value.status == 403


async def test_http_port_without_websocket_answers_http(http: Session) -> None:
    doc = sandbox_config(httpServers=[http_entry("h")])
    async with run_gateway(doc) as gw:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(ws_url(gw, "h"))


# --- fan-out, formats, filters -------------------------------------------------------------


async def test_200_subscribers_on_three_servers_each_get_every_event_once_in_order() -> None:
    doc = sandbox_config(
        websocketServers=[
            ws_entry("arr", heartInterval=0),
            ws_entry("str", heartInterval=0, messagePostFormat="string"),
        ],
        httpServers=[http_entry("h", enableWebsocket=True, heartInterval=0)],
    )
    # The default connector caps a session at 100 connections; WebSockets hold theirs.
    async with run_gateway(doc) as gw, Session(connector=aiohttp.TCPConnector(limit=0)) as http:
        names = ["arr", "str", "h"]
        sockets = [
            (names[i % 3], await http.ws_connect(ws_url(gw, names[i % 3]))) for i in range(200)
        ]
        for _, ws in sockets:
            await lifecycle_of(ws)
        count = 30
        for seq in range(count):
            gw.supervisor.bus.publish(message_event(seq, "group" if seq % 2 else "private"))
        for name, ws in sockets:
            got = [await receive_json(ws) for _ in range(count)]
            assert [e["message_id"] for e in got] == list(range(count))
            if name == "str":
                assert got[3]["message"] == "hi &#91;3&#93;[CQ:face,id=1]"
                assert got[3]["message_format"] == "string"
            else:
                assert got[3]["message"][0] == {"type": "text", "data": {"text": "hi [3]"}}
            assert got[3]["raw_message"] == "hi &#91;3&#93;[CQ:face,id=1]"
        for _, ws in sockets:
            await ws.close()


async def test_event_filter_selects_events_per_entry(http: Session) -> None:
    doc = sandbox_config(
        websocketServers=[
            ws_entry("groups", heartInterval=0, eventFilter={"message_type": "group"}),
            ws_entry("all", heartInterval=0),
        ]
    )
    async with (
        run_gateway(doc) as gw,
        http.ws_connect(ws_url(gw, "groups")) as groups,
        http.ws_connect(ws_url(gw, "all")) as everything,
    ):
        await lifecycle_of(groups)
        await lifecycle_of(everything)
        for seq, kind in enumerate(["private", "group", "private", "group"]):
            gw.supervisor.bus.publish(message_event(seq, kind))
        assert [(await receive_json(groups))["message_id"] for _ in range(2)] == [1, 3]
        assert [(await receive_json(everything))["message_id"] for _ in range(4)] == [0, 1, 2, 3]


async def test_self_messages_reach_only_report_self_message_entries(http: Session) -> None:
    doc = sandbox_config(
        websocketServers=[
            ws_entry("self", heartInterval=0, reportSelfMessage=True),
            ws_entry("others", heartInterval=0),
        ]
    )
    async with (
        run_gateway(doc) as gw,
        http.ws_connect(ws_url(gw, "self")) as mine,
        http.ws_connect(ws_url(gw, "others")) as theirs,
    ):
        await lifecycle_of(mine)
        await lifecycle_of(theirs)
        sent = message_event(
            1, post_type="message_sent", message_sent_type="self", user_id=10001, target_id=20001
        )
        gw.supervisor.bus.publish(sent)
        gw.supervisor.bus.publish(message_event(2))
        assert (await receive_json(mine))["post_type"] == "message_sent"
        assert (await receive_json(mine))["message_id"] == 2
        assert (await receive_json(theirs))["message_id"] == 2


# --- slow subscribers ----------------------------------------------------------------------


def stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.settimeout(5)
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


async def test_stalled_subscriber_drops_its_own_events_only(http: Session) -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0, queueSize=32)])
    async with run_gateway(doc) as gw:
        port = gw.supervisor.adapters["ws"].port
        stalled = await asyncio.to_thread(stalled_client, port)
        async with http.ws_connect(ws_url(gw, "ws")) as healthy:
            await lifecycle_of(healthy)
            await wait_subscribers(gw, 2)
            big = "x" * 16384
            got = []
            with capture_logs() as logs:
                for seq in range(1500):
                    gw.supervisor.bus.publish(message_event(seq, raw_message=big))
                    got.append((await receive_json(healthy))["message_id"])
            assert got == list(range(1500))
            slow = next(s for s in gw.supervisor.bus.subscriptions if s.dropped)
            assert slow.dropped > 0
            assert len(slow) <= 32
            drop_logs = [e for e in logs if e["event"] == "subscriber_dropped_events"]
            assert 1 <= len(drop_logs) <= 5  # at most once a second
        stalled.close()


async def test_stalled_subscriber_is_disconnected_under_disconnect_policy(http: Session) -> None:
    doc = sandbox_config(
        websocketServers=[
            ws_entry("ws", heartInterval=0, queueSize=16, overflowPolicy="disconnect")
        ]
    )
    async with run_gateway(doc) as gw:
        port = gw.supervisor.adapters["ws"].port
        stalled = await asyncio.to_thread(stalled_client, port)
        async with http.ws_connect(ws_url(gw, "ws")) as healthy:
            await lifecycle_of(healthy)
            await wait_subscribers(gw, 2)
            big = "x" * 16384
            got = []
            for seq in range(1000):
                gw.supervisor.bus.publish(message_event(seq, raw_message=big))
                got.append((await receive_json(healthy))["message_id"])
            assert got == list(range(1000))
            for _ in range(300):
                if len(gw.supervisor.bus.subscriptions) == 1:
                    break
                await asyncio.sleep(0.01)
            assert len(gw.supervisor.bus.subscriptions) == 1
            assert len(gw.supervisor.adapters["ws"].websockets) == 1
        stalled.close()
