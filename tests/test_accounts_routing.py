"""Several accounts behind one gateway: which account a call goes to and which events a bot gets,
per transport (HTTP, forward WebSocket, reverse WebSocket, HTTP POST), and every routing error."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import load_config
from tests.conftest import RunningGateway, http_entry, run_gateway

A, B, C = 10001, 10002, 10003


def three_accounts(**network: Any) -> dict[str, Any]:
    """Three sandbox accounts on the default world, one QQ number each."""
    return {
        "accounts": [
            {"name": name, "backend": {"database": ":memory:", "selfId": self_id}}
            for name, self_id in (("a", A), ("b", B), ("c", C))
        ],
        "network": network,
    }


def ws_entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "enable": True, "host": "127.0.0.1", "port": 0, **fields}


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=headers) as response:
        answer: dict[str, Any] = await response.json()
        answer["_status"] = response.status
        return answer


async def login(http: aiohttp.ClientSession, url: str, **headers: str) -> dict[str, Any]:
    return await post(http, url, {}, **headers)


# --- HTTP -------------------------------------------------------------------------------------


async def test_http_routes_by_path_header_query_and_params(http: aiohttp.ClientSession) -> None:
    async with run_gateway(three_accounts(httpServers=[http_entry("api")])) as gw:
        by_path = await login(http, gw.url("api", f"/{B}/get_login_info"))
        by_header = await login(http, gw.url("api", "/get_login_info"), **{"X-Self-ID": str(C)})
        by_query = await login(http, gw.url("api", f"/get_login_info?self_id={A}"))
        by_params = await post(http, gw.url("api", "/get_login_info"), {"self_id": B})
    assert by_path["data"]["user_id"] == B
    assert by_header["data"]["user_id"] == C
    assert by_query["data"]["user_id"] == A
    assert by_params["data"]["user_id"] == B


async def test_http_call_naming_no_account_on_a_multi_account_entry_is_1400(
    http: aiohttp.ClientSession,
) -> None:
    async with run_gateway(three_accounts(httpServers=[http_entry("api")])) as gw:
        answer = await login(http, gw.url("api", "/get_login_info"))
    assert answer["retcode"] == 1400
    assert "serves 3 accounts" in answer["message"]
    assert "self_id" in answer["message"] and "X-Self-ID" in answer["message"]


async def test_http_account_the_entry_does_not_serve_is_1403(http: aiohttp.ClientSession) -> None:
    document = three_accounts(httpServers=[http_entry("api", accounts=["a", B])])
    async with run_gateway(document) as gw:
        by_path = await login(http, gw.url("api", f"/{C}/get_login_info"))
        by_params = await post(http, gw.url("api", "/get_login_info"), {"self_id": C})
        unknown = await post(http, gw.url("api", "/get_login_info"), {"self_id": 99999})
        served = await login(http, gw.url("api", f"/{A}/get_login_info"))
    assert (by_path["_status"], by_path["retcode"]) == (403, 1403)
    assert f"account {C} is not served by entry 'api'" in by_path["message"]
    assert by_params["retcode"] == 1403 and unknown["retcode"] == 1403
    assert "'a' (10001), 'b' (10002)" in unknown["message"]
    assert served["data"]["user_id"] == A


async def test_http_one_served_account_needs_no_name(http: aiohttp.ClientSession) -> None:
    document = three_accounts(httpServers=[http_entry("api", accounts=["b"])])
    async with run_gateway(document) as gw:
        answer = await login(http, gw.url("api", "/get_login_info"))
        health = await login(http, gw.url("api", "/"))
    assert answer["data"]["user_id"] == B
    assert health["data"]["self_id"] == B
    assert [a["name"] for a in health["data"]["accounts"]] == ["b"]


@pytest.mark.parametrize(
    ("path", "headers", "params", "expected"),
    [
        ("/abc1/get_login_info", {}, {}, 1404),  # not an account prefix: an unknown action
        ("/get_login_info", {"X-Self-ID": "twelve"}, {}, 1400),
        ("/get_login_info", {}, {"self_id": "twelve"}, 1400),
        ("/get_login_info", {}, {"self_id": -5}, 1400),
        ("/get_login_info", {}, {"self_id": True}, 1400),
        (f"/{A}/get_login_info", {"X-Self-ID": str(B)}, {}, 1400),  # they disagree
        (f"/{A}/get_login_info", {}, {"self_id": B}, 1403),  # bound by path, names another
        ("/99999999999999999999999/get_login_info", {}, {}, 1400),
    ],
)
async def test_http_bad_account_names(
    http: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str],
    params: dict[str, Any],
    expected: int,
) -> None:
    async with run_gateway(three_accounts(httpServers=[http_entry("api")])) as gw:
        answer = await post(http, gw.url("api", path), params, **headers)
    assert answer["retcode"] == expected, answer
    assert answer["status"] == "failed" and answer["message"]


async def test_calls_go_to_the_named_account_only(http: aiohttp.ClientSession) -> None:
    async with run_gateway(three_accounts(httpServers=[http_entry("api")])) as gw:
        sent = await post(
            http,
            gw.url("api", f"/{B}/send_group_msg"),
            {"group_id": 30001, "message": "from b"},
        )
        history_b = await post(
            http, gw.url("api", f"/{B}/get_group_msg_history"), {"group_id": 30001}
        )
        history_c = await post(
            http, gw.url("api", f"/{C}/get_group_msg_history"), {"group_id": 30001}
        )
    assert sent["retcode"] == 0
    texts_b = [m["raw_message"] for m in history_b["data"]["messages"] if m["user_id"] == B]
    assert texts_b == ["from b"]
    assert not [m for m in history_c["data"]["messages"] if m["user_id"] == C]


# --- forward WebSocket ------------------------------------------------------------------------


async def next_event(ws: aiohttp.ClientWebSocketResponse, post_type: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            frame = await ws.receive_json()
            if frame.get("post_type") == post_type:
                return frame


async def call(
    ws: aiohttp.ClientWebSocketResponse, action: str, echo: str, **fields: Any
) -> dict[str, Any]:
    await ws.send_json({"action": action, "echo": echo, **fields})
    async with asyncio.timeout(10):
        while True:
            frame = await ws.receive_json()
            if frame.get("echo") == echo:
                return frame


async def receive(gw: RunningGateway, account: str, group_id: int, text: str) -> None:
    """A simulated user speaks in a group of one account."""
    dispatcher = gw.supervisor.accounts.named(account)
    assert dispatcher is not None
    answer = await dispatcher.dispatcher.call(
        "sandbox_receive_message",
        {"message_type": "group", "group_id": group_id, "user_id": 20002, "message": text},
    )
    assert answer["retcode"] == 0, answer


async def test_websocket_bound_by_path_gets_its_account_only(http: aiohttp.ClientSession) -> None:
    async with run_gateway(three_accounts(websocketServers=[ws_entry("ws")])) as gw:
        port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        async with http.ws_connect(f"ws://127.0.0.1:{port}/{B}/") as ws:
            lifecycle = await next_event(ws, "meta_event")
            await receive(gw, "a", 30001, "for a")
            await receive(gw, "b", 30001, "for b")
            event = await next_event(ws, "message")
            me = await call(ws, "get_login_info", "1")
            other = await call(ws, "get_login_info", "2", params={"self_id": A})
    assert lifecycle["self_id"] == B and lifecycle["sub_type"] == "connect"
    assert (event["self_id"], event["raw_message"]) == (B, "for b")
    assert me["data"]["user_id"] == B
    assert other["retcode"] == 1403 and "bound to account 'b'" in other["message"]


async def test_websocket_bound_by_header_and_api_role(http: aiohttp.ClientSession) -> None:
    async with run_gateway(three_accounts(websocketServers=[ws_entry("ws")])) as gw:
        port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        async with http.ws_connect(
            f"ws://127.0.0.1:{port}/api", headers={"X-Self-ID": str(C)}
        ) as ws:
            me = await call(ws, "get_login_info", "1")
        async with http.ws_connect(f"ws://127.0.0.1:{port}/{A}/api") as ws:
            me_a = await call(ws, "get_login_info", "1")
    assert me["data"]["user_id"] == C
    assert me_a["data"]["user_id"] == A


async def test_unbound_websocket_gets_every_served_account_and_names_one_per_call(
    http: aiohttp.ClientSession,
) -> None:
    document = three_accounts(websocketServers=[ws_entry("ws", accounts=["a", "b"])])
    async with run_gateway(document) as gw:
        port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        async with http.ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            lifecycles = [await next_event(ws, "meta_event") for _ in range(2)]
            for account in ("a", "b", "c"):
                await receive(gw, account, 30001, f"for {account}")
            events = [await next_event(ws, "message") for _ in range(2)]
            unnamed = await call(ws, "get_login_info", "1")
            beside = await call(ws, "get_login_info", "2", self_id=B)
            in_params = await call(ws, "get_login_info", "3", params={"self_id": A})
            not_served = await call(ws, "get_login_info", "4", params={"self_id": C})
    assert [e["self_id"] for e in lifecycles] == [A, B]
    assert [(e["self_id"], e["raw_message"]) for e in events] == [(A, "for a"), (B, "for b")]
    assert unnamed["retcode"] == 1400 and "serves 2 accounts" in unnamed["message"]
    assert beside["data"]["user_id"] == B
    assert in_params["data"]["user_id"] == A
    assert not_served["retcode"] == 1403


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (f"/{C}/", {}, 403),
        ("/", {"X-Self-ID": "not-a-number"}, 400),
        (f"/{A}/", {"X-Self-ID": str(B)}, 400),
    ],
)
async def test_websocket_binding_refused_before_the_upgrade(
    http: aiohttp.ClientSession, path: str, headers: dict[str, str], status: int
) -> None:
    document = three_accounts(websocketServers=[ws_entry("ws", accounts=["a", "b"])])
    async with run_gateway(document) as gw:
        port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"ws://127.0.0.1:{port}{path}", headers=headers)
    assert refused.value.status == status


# --- reverse WebSocket and HTTP POST ----------------------------------------------------------


class BotServer:
    """A bot's reverse WebSocket endpoint and HTTP POST receiver on a loopback port."""

    def __init__(self) -> None:
        self.connections: dict[int, web.WebSocketResponse] = {}
        self.connected = asyncio.Event()
        self.frames: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self.posts: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.reply: dict[str, Any] = {}
        self.port = 0

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self_id = int(request.headers["X-Self-ID"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections[self_id] = ws
        self.connected.set()
        async for message in ws:
            await self.frames.put((self_id, message.json()))
        return ws

    async def post(self, request: web.Request) -> web.Response:
        event = await request.json()
        await self.posts.put((request.headers["X-Self-ID"], event))
        # Only the simulated user gets the reply: the bots' own messages, which reach the other
        # sandbox accounts of the world, are not answered.
        return web.json_response(self.reply if event.get("user_id") == 20002 else {})


@contextlib.asynccontextmanager
async def bot_server() -> AsyncIterator[BotServer]:
    bot = BotServer()
    app = web.Application()
    app.router.add_get("/ws", bot.ws)
    app.router.add_post("/post", bot.post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bot.port = runner.addresses[0][1]
    try:
        yield bot
    finally:
        await runner.cleanup()


async def frame_of(bot: BotServer, self_id: int, post_type: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            owner, frame = await bot.frames.get()
            if owner == self_id and frame.get("post_type") == post_type:
                return frame


async def test_reverse_websocket_opens_one_connection_per_account() -> None:
    async with bot_server() as bot:
        client = {
            "name": "reverse",
            "enable": True,
            "url": f"ws://127.0.0.1:{bot.port}/ws",
            "accounts": ["a", "c"],
            "reconnectInterval": 50,
        }
        async with run_gateway(three_accounts(websocketClients=[client])) as gw:
            lifecycle_a = await frame_of(bot, A, "meta_event")
            lifecycle_c = await frame_of(bot, C, "meta_event")
            for account in ("a", "b", "c"):
                await receive(gw, account, 30001, f"for {account}")
            event_a = await frame_of(bot, A, "message")
            event_c = await frame_of(bot, C, "message")
            # A call on a connection goes to that connection's account.
            await bot.connections[C].send_json({"action": "get_login_info", "echo": "me"})
            async with asyncio.timeout(10):
                while True:
                    owner, answer = await bot.frames.get()
                    if answer.get("echo") == "me":
                        break
    assert sorted(bot.connections) == [A, C]
    assert (lifecycle_a["self_id"], lifecycle_c["self_id"]) == (A, C)
    assert event_a["raw_message"] == "for a" and event_c["raw_message"] == "for c"
    assert (owner, answer["data"]["user_id"]) == (C, C)


async def test_http_post_sends_each_event_with_its_account_and_quick_operation_goes_there(
    http: aiohttp.ClientSession,
) -> None:
    async with bot_server() as bot:
        bot.reply = {"reply": "quick"}
        client = {"name": "post", "enable": True, "url": f"http://127.0.0.1:{bot.port}/post"}
        document = three_accounts(
            httpClients=[client], httpServers=[http_entry("api", accounts=["b", "c"])]
        )
        async with run_gateway(document) as gw:
            await receive(gw, "b", 30002, "to b")
            async with asyncio.timeout(10):
                while True:
                    header, event = await bot.posts.get()
                    if event.get("post_type") == "message":
                        break
            # The quick reply lands in b's group, from b.
            async with asyncio.timeout(10):
                while True:
                    history = await post(
                        http, gw.url("api", f"/{B}/get_group_msg_history"), {"group_id": 30002}
                    )
                    mine = [m for m in history["data"]["messages"] if m["user_id"] == B]
                    if mine:
                        break
                    await asyncio.sleep(0.02)
            history_c = await post(
                http, gw.url("api", f"/{C}/get_group_msg_history"), {"group_id": 30002}
            )
    assert (header, event["self_id"]) == (str(B), B)
    assert "quick" in mine[-1]["raw_message"]
    assert not [m for m in history_c["data"]["messages"] if m["user_id"] == C]


def test_the_example_accounts_config_is_valid() -> None:
    config = load_config("examples/config/accounts.json5", env={})
    accounts = config.account_configs()
    assert [a.name for a in accounts] == ["alpha", "beta", "gamma"]
    assert [a.backend.database for a in accounts] == [  # type: ignore[union-attr]
        "sandbox-alpha.db",
        "sandbox-beta.db",
        "sandbox-gamma.db",
    ]
    assert config.network.websocket_servers[0].accounts == ("gamma",)


async def sse_messages(http: aiohttp.ClientSession, url: str, count: int, **headers: str) -> Any:
    """Open an SSE stream; return (the response, a task collecting `count` message events)."""
    response = await http.get(url, headers=headers)

    async def collect() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async for line in response.content:
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                if event.get("post_type") == "message":
                    found.append(event)
                    if len(found) == count:
                        return found
        return found

    return response, asyncio.create_task(collect())


async def test_sse_streams_bound_by_path_or_header_get_their_account_only(
    http: aiohttp.ClientSession,
) -> None:
    sse = {"name": "sse", "enable": True, "host": "127.0.0.1", "port": 0}
    async with run_gateway(three_accounts(httpSseServers=[sse])) as gw:
        by_path, from_path = await sse_messages(http, gw.url("sse", f"/{B}/_events"), 1)
        by_header, from_header = await sse_messages(
            http, gw.url("sse", "/_events"), 1, **{"X-Self-ID": str(C)}
        )
        unbound, from_all = await sse_messages(http, gw.url("sse", "/_events"), 3)
        refused = await http.get(gw.url("sse", "/99/_events"))
        for account in ("a", "b", "c"):
            await receive(gw, account, 30001, f"for {account}")
        async with asyncio.timeout(10):
            path_events, header_events, all_events = await asyncio.gather(
                from_path, from_header, from_all
            )
        for response in (by_path, by_header, unbound):
            response.close()
    assert [e["self_id"] for e in path_events] == [B]
    assert [e["self_id"] for e in header_events] == [C]
    assert sorted(e["self_id"] for e in all_events) == [A, B, C]
    assert refused.status == 403 and (await refused.json())["retcode"] == 1403
