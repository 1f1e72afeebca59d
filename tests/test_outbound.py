"""Reverse WebSocket, HTTP POST and SSE adapters against real receivers in this test process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.conftest import capture_logs, free_port, run_gateway, sandbox_config
from tests.held_server import held_server

Session = aiohttp.ClientSession


def event(seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "time": 1700000000,
        "self_id": 10001,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "message_id": seq,
        "user_id": 20001,
        "message": [{"type": "text", "data": {"text": f"m{seq}"}}],
        "raw_message": f"m{seq}",
        "font": 14,
        "sender": {"user_id": 20001},
        **extra,
    }


class Receiver:
    """An HTTP POST receiver: records each request; `answer` decides the response."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Condition()
        self.answer: Any = lambda _body: web.Response(status=204)
        self.gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.gate is not None:
            await self.gate.wait()
        async with self.arrived:
            self.requests.append((dict(request.headers), body))
            self.arrived.notify_all()
        response: web.StreamResponse = self.answer(body)
        return response

    async def wait_for(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= count), 20)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@contextlib.asynccontextmanager
async def serve(
    app: web.Application, port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def receiver_app(receiver: Receiver) -> web.Application:
    app = web.Application()
    app.router.add_post("/", receiver.handle)
    return app


def http_client(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "post",
        "enable": True,
        "url": url,
        "retryInterval": 20,
        "retryMaxInterval": 100,
        "maxRetries": 200,
        **fields,
    }


# --- HTTP POST ---------------------------------------------------------------------------------


async def test_post_carries_self_id_event_id_and_a_valid_signature() -> None:
    receiver = Receiver()
    async with serve(receiver_app(receiver)) as port:
        doc = sandbox_config(
            httpClients=[http_client(f"http://127.0.0.1:{port}/", token="hmac-secret")]
        )
        async with run_gateway(doc) as gw:
            gw.supervisor.bus.publish(event(1))
            await receiver.wait_for(1)
    headers, body = receiver.requests[0]
    expected = hmac.new(b"hmac-secret", body, hashlib.sha1).hexdigest()
    assert headers["X-Signature"] == f"sha1={expected}"
    assert headers["X-Self-ID"] == "10001"
    assert headers["X-OneBot-Event-Id"]
    assert json.loads(body)["message_id"] == 1


async def test_no_signature_without_a_token() -> None:
    receiver = Receiver()
    async with (
        serve(receiver_app(receiver)) as port,
        run_gateway(sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])) as gw,
    ):
        gw.supervisor.bus.publish(event(1))
        await receiver.wait_for(1)
    assert "X-Signature" not in receiver.requests[0][0]


async def test_receiver_down_then_back_gets_every_event_in_order_once() -> None:
    port = free_port()
    receiver = Receiver()
    doc = sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])
    async with run_gateway(doc) as gw:
        for seq in range(20):
            gw.supervisor.bus.publish(event(seq))
        await asyncio.sleep(0.3)  # the receiver is down meanwhile; attempts fail and back off
        async with serve(receiver_app(receiver), port):
            await receiver.wait_for(20)
            for seq in range(20, 25):
                gw.supervisor.bus.publish(event(seq))
            await receiver.wait_for(25)
    assert [e["message_id"] for e in receiver.events()] == list(range(25))
    ids = [headers["X-OneBot-Event-Id"] for headers, _ in receiver.requests]
    assert len(set(ids)) == 25


async def test_retried_post_keeps_its_event_id() -> None:
    receiver = Receiver()
    answers = iter([web.Response(status=503), web.Response(status=502)])
    receiver.answer = lambda _body: next(answers, web.Response(status=204))
    async with (
        serve(receiver_app(receiver)) as port,
        run_gateway(sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])) as gw,
    ):
        gw.supervisor.bus.publish(event(1))
        await receiver.wait_for(3)
        outcomes = gw.supervisor.adapters["post"].outcomes
    ids = {headers["X-OneBot-Event-Id"] for headers, _ in receiver.requests}
    assert len(ids) == 1
    assert [json.loads(body)["message_id"] for _, body in receiver.requests] == [1, 1, 1]
    assert outcomes["retried"] == 2 and outcomes["delivered"] == 1


async def test_client_error_answer_is_not_retried() -> None:
    receiver = Receiver()
    receiver.answer = lambda _body: web.Response(status=400)
    async with (
        serve(receiver_app(receiver)) as port,
        run_gateway(sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])) as gw,
    ):
        gw.supervisor.bus.publish(event(1))
        gw.supervisor.bus.publish(event(2))
        await receiver.wait_for(2)
        outcomes = gw.supervisor.adapters["post"].outcomes
    assert [e["message_id"] for e in receiver.events()] == [1, 2]
    assert outcomes["rejected"] == 2 and outcomes["retried"] == 0


async def test_slow_receiver_does_not_delay_a_websocket_subscriber(http: Session) -> None:
    receiver = Receiver()
    receiver.gate = asyncio.Event()  # the receiver holds every request until released
    async with serve(receiver_app(receiver)) as port:
        doc = sandbox_config(
            httpClients=[http_client(f"http://127.0.0.1:{port}/", timeout=30000)],
            websocketServers=[{"name": "ws", "enable": True, "port": 0, "heartInterval": 0}],
        )
        async with run_gateway(doc) as gw:
            url = gw.url("ws", "/").replace("http://", "ws://")
            async with http.ws_connect(url) as ws:
                await ws.receive_json(timeout=5)  # lifecycle
                for seq in range(5):
                    gw.supervisor.bus.publish(event(seq))
                got = [(await ws.receive_json(timeout=5))["message_id"] for _ in range(5)]
                assert got == list(range(5))
                assert receiver.requests == []  # the POST is still held by the receiver
                receiver.gate.set()
                await receiver.wait_for(5)


async def test_json_answer_is_applied_as_a_quick_operation() -> None:
    receiver = Receiver()
    receiver.answer = lambda body: (
        web.json_response({"reply": "pong"})
        if json.loads(body).get("post_type") == "message"
        else web.Response(status=204)
    )
    async with serve(receiver_app(receiver)) as port:
        doc = sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])
        async with run_gateway(doc) as gw:
            reply = await gw.supervisor.dispatcher.call(
                "sandbox_receive_message",
                {"message_type": "private", "user_id": 20001, "message": "ping"},
            )
            assert reply["retcode"] == 0
            for _ in range(200):
                history = await gw.supervisor.dispatcher.call(
                    "get_friend_msg_history", {"user_id": 20001}
                )
                if any(m["raw_message"] == "pong" for m in history["data"]["messages"]):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"no pong in {history}")


@pytest.mark.parametrize(
    "answer",
    [
        lambda _b: web.Response(status=204),
        lambda _b: web.Response(text=""),
        lambda _b: web.Response(text="OK"),
        lambda _b: web.json_response([1]),
    ],
)
async def test_empty_or_non_json_answers_are_no_operation(answer: Any) -> None:
    receiver = Receiver()
    receiver.answer = answer
    async with serve(receiver_app(receiver)) as port:
        doc = sandbox_config(httpClients=[http_client(f"http://127.0.0.1:{port}/")])
        async with run_gateway(doc) as gw:
            with capture_logs() as logs:
                await gw.supervisor.dispatcher.call(
                    "sandbox_receive_message",
                    {"message_type": "private", "user_id": 20001, "message": "hi"},
                )
                await receiver.wait_for(1)
                await asyncio.sleep(0.05)
            history = await gw.supervisor.dispatcher.call(
                "get_friend_msg_history", {"user_id": 20001}
            )
    assert [m["raw_message"] for m in history["data"]["messages"]] == ["hi"]
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]


async def test_http_post_heartbeats_when_enabled() -> None:
    receiver = Receiver()
    async with serve(receiver_app(receiver)) as port:
        doc = sandbox_config(
            httpClients=[http_client(f"http://127.0.0.1:{port}/", heartInterval=50)]
        )
        async with run_gateway(doc):
            await receiver.wait_for(2)
    beats = receiver.events()[:2]
    assert all(b["meta_event_type"] == "heartbeat" and b["interval"] == 50 for b in beats)


# --- reverse WebSocket -------------------------------------------------------------------------


class BotServer:
    """A reverse-WebSocket endpoint like NoneBot's: records handshakes and frames."""

    def __init__(self, *, answer_pings: bool = True) -> None:
        self.handshakes: list[dict[str, str]] = []
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sockets: list[web.WebSocketResponse] = []
        self.answer_pings = answer_pings

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.handshakes.append(dict(request.headers))
        ws = web.WebSocketResponse(autoping=self.answer_pings)
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await self.frames.put(json.loads(message.data))
        return ws

    async def next_frame(self, match: Any = lambda _f: True) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), 10)
            if match(frame):
                return frame

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/onebot/v11/ws", self.handle)
        app.on_shutdown.append(self._close_all)
        return app

    async def _close_all(self, _app: web.Application) -> None:
        for ws in self.sockets:
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)


def ws_client(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "reverse",
        "enable": True,
        "url": url,
        "reconnectInterval": 50,
        "reconnectMaxInterval": 200,
        "heartInterval": 0,
        **fields,
    }


def is_lifecycle(frame: dict[str, Any]) -> bool:
    return frame.get("meta_event_type") == "lifecycle"


async def test_reverse_ws_handshake_headers_and_lifecycle() -> None:
    bot = BotServer()
    async with serve(bot.app()) as port:
        doc = sandbox_config(
            websocketClients=[ws_client(f"ws://127.0.0.1:{port}/onebot/v11/ws", token="rtok")]
        )
        async with run_gateway(doc):
            first = await bot.next_frame()
    headers = bot.handshakes[0]
    assert headers["X-Self-ID"] == "10001"
    assert headers["X-Client-Role"] == "Universal"
    assert headers["User-Agent"] == "OneBot/11"
    assert headers["Authorization"] == "Bearer rtok"
    assert is_lifecycle(first) and first["sub_type"] == "connect"


async def test_reverse_wss_checks_the_bot_certificate_unless_told_not_to() -> None:
    ca = trustme.CA()  # not trusted by the system: verification must fail
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bot = BotServer()
    async with serve(bot.app(), ssl_context=context) as port:
        url = f"wss://127.0.0.1:{port}/onebot/v11/ws"
        with capture_logs() as logs:
            async with run_gateway(sandbox_config(websocketClients=[ws_client(url)])):
                for _ in range(500):
                    if any(e["event"] == "ws_client_connect_failed" for e in logs):
                        break
                    await asyncio.sleep(0.01)
        failures = [e for e in logs if e["event"] == "ws_client_connect_failed"]
        assert failures and "certificate verify failed" in failures[0]["error"]
        assert bot.handshakes == []
        unverified = [ws_client(url, verifyCertificate=False)]
        async with run_gateway(sandbox_config(websocketClients=unverified)):
            first = await bot.next_frame()
    assert is_lifecycle(first) and bot.handshakes[0]["X-Self-ID"] == "10001"


async def test_reverse_ws_answers_api_frames() -> None:
    bot = BotServer()
    async with serve(bot.app()) as port:
        doc = sandbox_config(websocketClients=[ws_client(f"ws://127.0.0.1:{port}/onebot/v11/ws")])
        async with run_gateway(doc):
            await bot.next_frame(is_lifecycle)
            await bot.sockets[0].send_json({"action": "get_login_info", "echo": "42"})
            reply = await bot.next_frame(lambda f: "echo" in f)
    assert (reply["echo"], reply["data"]["user_id"]) == ("42", 10001)


async def test_events_published_while_the_bot_is_away_arrive_after_reconnect() -> None:
    port = free_port()
    bot = BotServer()
    doc = sandbox_config(websocketClients=[ws_client(f"ws://127.0.0.1:{port}/onebot/v11/ws")])
    async with run_gateway(doc) as gw:
        async with serve(bot.app(), port):
            await bot.next_frame(is_lifecycle)
            gw.supervisor.bus.publish(event(0))
            assert (await bot.next_frame())["message_id"] == 0
        # The bot is gone (its server shut down, closing the socket with 1001).
        for seq in range(1, 11):  # the bot is down
            gw.supervisor.bus.publish(event(seq))
        async with serve(bot.app(), port):
            assert is_lifecycle(await bot.next_frame())
            got = [(await bot.next_frame())["message_id"] for _ in range(10)]
    assert got == list(range(1, 11))


async def test_half_open_connection_is_replaced() -> None:
    bot = BotServer(answer_pings=False)  # the peer is there but never answers pings
    async with serve(bot.app()) as port:
        doc = sandbox_config(
            websocketClients=[ws_client(f"ws://127.0.0.1:{port}/onebot/v11/ws", pingInterval=100)]
        )
        async with run_gateway(doc) as gw:
            await bot.next_frame(is_lifecycle)
            await bot.next_frame(is_lifecycle)  # a second connection: the first was replaced
            assert gw.supervisor.adapters["reverse"].reconnects >= 1
    assert len(bot.handshakes) >= 2


async def test_clients_pointed_at_a_dead_url_do_not_reconnect_in_lockstep() -> None:
    url = f"ws://127.0.0.1:{free_port()}/onebot/v11/ws"
    clients = [
        ws_client(url, name=f"c{i}", reconnectInterval=100, reconnectMaxInterval=1000)
        for i in range(10)
    ]
    with capture_logs() as logs:
        async with run_gateway(sandbox_config(websocketClients=clients)):
            for _ in range(200):
                firsts = [
                    e for e in logs if e["event"] == "ws_client_reconnecting" and e["attempt"] == 2
                ]
                if len({e["client"] for e in firsts}) == 10:
                    break
                await asyncio.sleep(0.02)
    delays = [
        e["delay"] for e in logs if e["event"] == "ws_client_reconnecting" and e["attempt"] == 2
    ]
    assert len(delays) >= 10
    assert len(set(delays)) >= 8  # jittered, not one shared schedule
    assert all(0 <= d <= 0.2 for d in delays)  # second attempt: within base·2


async def test_reverse_ws_gets_lifecycle_then_heartbeats() -> None:
    bot = BotServer()
    async with serve(bot.app()) as port:
        url = f"ws://127.0.0.1:{port}/onebot/v11/ws"
        async with run_gateway(sandbox_config(websocketClients=[ws_client(url, heartInterval=50)])):
            frames = [await bot.next_frame() for _ in range(3)]
    assert is_lifecycle(frames[0])
    assert [f["meta_event_type"] for f in frames[1:]] == ["heartbeat", "heartbeat"]
    assert all(f["interval"] == 50 for f in frames[1:])


async def test_reconnect_gets_lifecycle_before_buffered_events_and_no_stale_heartbeats() -> None:
    port = free_port()
    bot = BotServer()
    url = f"ws://127.0.0.1:{port}/onebot/v11/ws"
    doc = sandbox_config(websocketClients=[ws_client(url, heartInterval=20)])
    async with run_gateway(doc) as gw:
        async with serve(bot.app(), port):
            await bot.next_frame(is_lifecycle)
            await bot.next_frame(lambda f: f.get("meta_event_type") == "heartbeat")
        for seq in range(1, 6):  # the bot is down
            gw.supervisor.bus.publish(event(seq))
        await asyncio.sleep(0.3)  # many heartbeat intervals pass while it is away
        subscription = gw.supervisor.adapters["reverse"].subscription
        assert subscription is not None and len(subscription) == 5  # events only
        while not bot.frames.empty():
            bot.frames.get_nowait()  # whatever the first connection got last
        async with serve(bot.app(), port):
            assert is_lifecycle(await bot.next_frame())
            got = [await bot.next_frame() for _ in range(5)]
    assert [f.get("message_id") for f in got] == [1, 2, 3, 4, 5]


async def test_stopping_answers_reverse_ws_calls_in_flight_then_closes_1001() -> None:
    bot = BotServer()
    async with held_server() as media, serve(bot.app()) as port:
        url = f"ws://127.0.0.1:{port}/onebot/v11/ws"
        doc = {**sandbox_config(websocketClients=[ws_client(url)]), "api": {"shutdownGrace": 30}}
        async with run_gateway(doc) as gw:
            await bot.next_frame(is_lifecycle)
            for n in range(3):
                call = {"action": "download_file", "params": {"url": media.url(str(n))}, "echo": n}
                await bot.sockets[0].send_json(call)
            await media.wait_for(3)
            stopping = asyncio.create_task(gw.supervisor.adapters["reverse"].stop())
            await asyncio.sleep(0)  # the stop has begun
            media.release.set()
            answers = [await bot.next_frame(lambda f: "echo" in f) for _ in range(3)]
            await stopping
            assert bot.sockets[0].close_code == 1001
    assert sorted(a["echo"] for a in answers) == [0, 1, 2]
    assert all(a["retcode"] == 0 for a in answers), answers


# --- SSE ---------------------------------------------------------------------------------------


async def test_sse_stream_has_ids_data_and_keep_alives(http: Session) -> None:
    doc = sandbox_config(
        httpSseServers=[
            {"name": "sse", "enable": True, "port": 0, "token": "s", "keepAliveInterval": 100}
        ]
    )
    async with run_gateway(doc) as gw:
        async with http.get(gw.url("sse", "/_events")) as refused:
            assert refused.status == 403
        async with http.get(gw.url("sse", "/_events?access_token=s")) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            for _ in range(100):
                if gw.supervisor.bus.subscriptions:
                    break
                await asyncio.sleep(0.01)
            gw.supervisor.bus.publish(event(1))
            gw.supervisor.bus.publish(event(2))
            lines = []
            while sum(1 for line in lines if line.startswith(": keep-alive")) < 1:
                lines.append((await asyncio.wait_for(stream.content.readline(), 5)).decode())
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [e["message_id"] for e in data] == [1, 2]
    assert [line.strip() for line in lines if line.startswith("id: ")] == ["id: 1", "id: 2"]


async def test_sse_server_still_answers_actions(http: Session) -> None:
    doc = sandbox_config(httpSseServers=[{"name": "sse", "enable": True, "port": 0}])
    async with run_gateway(doc) as gw, http.post(gw.url("sse", "/get_login_info")) as response:
        assert (await response.json())["data"]["user_id"] == 10001


async def test_sse_stream_carries_cors_headers_for_a_browser_origin(http: Session) -> None:
    # The headers must be on the stream itself: they cannot be added once it has started.
    doc = sandbox_config(httpSseServers=[{"name": "sse", "enable": True, "port": 0}])
    async with run_gateway(doc) as gw:
        origin = {"Origin": "http://console.example"}
        async with http.get(gw.url("sse", "/_events"), headers=origin) as stream:
            assert stream.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(gw.url("sse", "/_events")) as stream:
            assert "Access-Control-Allow-Origin" not in stream.headers


async def test_only_get_on_the_sse_path_opens_a_stream(http: Session) -> None:
    doc = sandbox_config(httpSseServers=[{"name": "sse", "enable": True, "port": 0}])
    async with run_gateway(doc) as gw, http.post(gw.url("sse", "/_events")) as response:
        body = await response.json()
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["retcode"] == 1404 and "_events" in body["message"]


async def test_sse_stream_gets_heartbeats_without_enable_websocket(http: Session) -> None:
    entry = {"name": "sse", "enable": True, "port": 0, "heartInterval": 50}
    async with (
        run_gateway(sandbox_config(httpSseServers=[entry])) as gw,
        http.get(gw.url("sse", "/_events")) as stream,
    ):
        beats: list[dict[str, Any]] = []
        while len(beats) < 2:
            line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
            if line.startswith("data: "):
                beats.append(json.loads(line[6:]))
    assert [b["meta_event_type"] for b in beats] == ["heartbeat", "heartbeat"]
    assert all(b["interval"] == 50 for b in beats)


async def test_sse_stream_without_heart_interval_gets_no_heartbeats(http: Session) -> None:
    entry = {"name": "sse", "enable": True, "port": 0, "heartInterval": 0}
    async with (
        run_gateway(sandbox_config(httpSseServers=[entry])) as gw,
        http.get(gw.url("sse", "/_events")) as stream,
    ):
        for _ in range(100):
            if gw.supervisor.bus.subscriptions:
                break
            await asyncio.sleep(0.01)
        gw.supervisor.bus.publish(event(1))
        line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
        while not line.startswith("data: "):
            line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
    assert json.loads(line[6:])["message_id"] == 1  # the first data line is the event
