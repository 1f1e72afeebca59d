"""The relay backend in front of a real upstream: a second gateway on the sandbox, or a scripted
OneBot peer where a test needs to control exactly what upstream says."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.actions import default_catalog
from gateway.backends.relay import UPSTREAM_NAMES, spellings
from tests.conftest import RunningGateway, free_port, run_gateway
from tests.nonebot_harness import nonebot_forward_ws

Answer = Callable[[dict[str, Any]], Any]


def relay_document(backend: dict[str, Any]) -> dict[str, Any]:
    return {
        "network": {
            "httpServers": [{"name": "api", "enable": True, "port": 0}],
            "websocketServers": [
                {
                    "name": "ws",
                    "enable": True,
                    "port": 0,
                    "heartInterval": 0,
                    "reportSelfMessage": True,
                }
            ],
        },
        "backend": {
            "type": "relay",
            "reconnectInterval": 50,
            "reconnectMaxInterval": 300,
            "connectTimeout": 5000,
            **backend,
        },
    }


class FakeUpstream:
    """A scripted OneBot peer: answers frames with `answer(frame)` and can push events."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.answer = answer or (lambda f: {"status": "ok", "retcode": 0, "data": None})
        self.sockets: list[web.WebSocketResponse] = []

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            frame = json.loads(message.data)
            self.frames.append(frame)
            reply = self.answer(frame)
            if reply is not None:
                await ws.send_json({**reply, "echo": frame.get("echo")})
        return ws

    async def push(self, event: dict[str, Any]) -> None:
        await self.sockets[-1].send_json(event)


def login_or(other: Answer) -> Answer:
    def answer(frame: dict[str, Any]) -> Any:
        if frame["action"] == "get_login_info":
            return {"status": "ok", "retcode": 0, "data": {"user_id": 424242, "nickname": "up"}}
        return other(frame)

    return answer


@contextlib.asynccontextmanager
async def relay_to(upstream: FakeUpstream, **backend: Any) -> AsyncIterator[RunningGateway]:
    app = web.Application()
    app.router.add_get("/", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with run_gateway(relay_document({"url": url, **backend})) as gw:
            yield gw
    finally:
        for ws in upstream.sockets:
            await ws.close()
        await runner.cleanup()


async def post(gw: RunningGateway, action: str, body: Any = None) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("api", f"/{action}"), json=body or {}) as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


# --- against a scripted upstream --------------------------------------------------------------


async def test_self_id_is_learned_from_upstream() -> None:
    async with relay_to(FakeUpstream(login_or(lambda f: None))) as gw:
        assert gw.supervisor.backend.self_id == 424242


@pytest.mark.parametrize("echo", ["e1", 7, {"k": [1]}])
async def test_client_echo_is_restored_whatever_its_type(echo: Any) -> None:
    upstream = FakeUpstream(login_or(lambda f: {"status": "ok", "retcode": 0, "data": {"x": 1}}))
    async with relay_to(upstream) as gw:
        body = await post(gw, "get_status", {"echo": echo})
    assert (body["echo"], body["data"]) == (echo, {"x": 1})
    sent = next(f for f in upstream.frames if f["action"] == "get_status")
    assert sent["echo"] != echo and str(sent["echo"]).startswith("gw-")


async def test_many_calls_in_flight_are_matched_by_echo() -> None:
    def answer(frame: dict[str, Any]) -> Any:
        return {"status": "ok", "retcode": 0, "data": frame["params"]}

    async with relay_to(FakeUpstream(login_or(answer))) as gw:
        results = await asyncio.gather(
            *(post(gw, "get_stranger_info", {"user_id": i}) for i in range(1, 31))
        )
    assert [r["data"]["user_id"] for r in results] == list(range(1, 31))


async def test_a_slow_upstream_call_times_out_with_1200() -> None:
    async with relay_to(FakeUpstream(login_or(lambda f: None)), callTimeout=200) as gw:
        body = await post(gw, "get_status")
    assert body["retcode"] == 1200 and "did not answer get_status within 200 ms" in body["message"]


async def test_unknown_actions_pass_through_unchanged() -> None:
    def answer(frame: dict[str, Any]) -> Any:
        return {"status": "ok", "retcode": 0, "data": {"echoed": frame["params"]}}

    upstream = FakeUpstream(login_or(answer))
    async with relay_to(upstream) as gw:
        body = await post(gw, "only_upstream_knows", {"a": 1, "nested": {"b": [2]}})
    assert body["data"] == {"echoed": {"a": 1, "nested": {"b": [2]}}}


async def test_known_actions_are_validated_before_reaching_upstream() -> None:
    upstream = FakeUpstream(login_or(lambda f: {"status": "ok", "retcode": 0, "data": None}))
    async with relay_to(upstream) as gw:
        body = await post(gw, "send_private_msg", {"message": "hi"})
    assert body["retcode"] == 1400 and "user_id" in body["message"]
    assert not [f for f in upstream.frames if f["action"] == "send_private_msg"]


async def test_upstream_failures_keep_their_retcode_and_message() -> None:
    failed = {"status": "failed", "retcode": 1200, "data": None, "message": "消息不存在"}
    async with relay_to(FakeUpstream(login_or(lambda f: failed))) as gw:
        body = await post(gw, "get_msg", {"message_id": 5})
    assert (body["retcode"], body["message"]) == (1200, "消息不存在")


async def test_spec_names_and_parameters_are_translated() -> None:
    def answer(frame: dict[str, Any]) -> Any:
        if frame["action"] == "translate_en2zh":
            return {
                "status": "ok",
                "retcode": 0,
                "data": {"words": [f"zh:{w}" for w in frame["params"]["words"]]},
            }
        return {"status": "ok", "retcode": 0, "data": None}

    upstream = FakeUpstream(login_or(answer))
    async with relay_to(upstream) as gw:
        body = await post(gw, "translate_en_word_to_zn", {"word": "apple"})
        await post(gw, "set_special_title", {"group_id": 1, "user_id": 2, "special_title": "x"})
    sent = next(f for f in upstream.frames if f["action"] == "translate_en2zh")
    assert sent["params"] == {"words": ["apple"]}
    assert body["data"]["translation"] == "zh:apple"
    assert any(f["action"] == "set_group_special_title" for f in upstream.frames)


async def test_sandbox_controls_are_not_relayed() -> None:
    upstream = FakeUpstream(login_or(lambda f: {"status": "ok", "retcode": 0, "data": None}))
    async with relay_to(upstream) as gw:
        body = await post(gw, "sandbox_emit", {"event": {"post_type": "notice"}})
    assert body["retcode"] == 1404 and "relay" in body["message"]


async def test_string_format_events_are_normalised_and_reformatted_per_subscriber() -> None:
    upstream = FakeUpstream(login_or(lambda f: None))
    async with (
        relay_to(upstream) as gw,
        aiohttp.ClientSession() as http,
        http.ws_connect(gw.url("ws", "/").replace("http", "ws")) as ws,
    ):
        await ws.receive_json(timeout=5)
        await upstream.push(
            {
                "time": 1,
                "self_id": 424242,
                "post_type": "message",
                "message_type": "private",
                "sub_type": "friend",
                "message_id": 9,
                "user_id": 5,
                "font": 14,
                "sender": {},
                "message": "hi[CQ:face,id=1]",
                "message_format": "string",
                "raw_message": "hi[CQ:face,id=1]",
            }
        )
        event = await ws.receive_json(timeout=5)
    assert event["message"] == [
        {"type": "text", "data": {"text": "hi"}},
        {"type": "face", "data": {"id": "1"}},
    ]


async def test_duplicates_are_dropped_within_the_dedupe_window() -> None:
    upstream = FakeUpstream(login_or(lambda f: None))
    notice = {
        "time": 1,
        "self_id": 424242,
        "post_type": "notice",
        "notice_type": "group_recall",
        "message_id": 77,
    }
    async with (
        relay_to(upstream, dedupeWindowMs=5000) as gw,
        aiohttp.ClientSession() as http,
        http.ws_connect(gw.url("ws", "/").replace("http", "ws")) as ws,
    ):
        await ws.receive_json(timeout=5)
        await upstream.push(notice)
        await upstream.push(notice)
        await upstream.push({**notice, "message_id": 78})
        first = await ws.receive_json(timeout=5)
        second = await ws.receive_json(timeout=5)
    assert (first["message_id"], second["message_id"]) == (77, 78)


# --- two gateway processes --------------------------------------------------------------------


def upstream_document(
    ws_port: int, http_port: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    network: dict[str, Any] = {
        "websocketServers": [
            {"name": "up-ws", "enable": True, "port": ws_port, "heartInterval": 200}
        ],
        "httpServers": [{"name": "up-http", "enable": True, "port": http_port}],
    }
    network.update(extra or {})
    return {"network": network, "backend": {"database": "upstream.db"}}


async def wait_for_pong(up_http: int, user_id: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            async with http.post(
                f"http://127.0.0.1:{up_http}/get_friend_msg_history", json={"user_id": user_id}
            ) as response:
                history = (await response.json())["data"]["messages"]
            if any(m["raw_message"] == "pong" for m in history):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"no pong: {history}")


async def say(up_http: int, user_id: int, text: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{up_http}/sandbox_receive_message",
            json={"message_type": "private", "user_id": user_id, "message": text},
        ) as response,
    ):
        assert (await response.json())["retcode"] == 0


async def test_nonebot_behind_a_forward_relay_answers_ping(
    gateway_process: Any, tmp_path: Path
) -> None:
    up_ws, up_http = free_port(), free_port()
    upstream = gateway_process(upstream_document(up_ws, up_http))
    upstream.wait_for("gateway_ready")
    async with run_gateway(relay_document({"url": f"ws://127.0.0.1:{up_ws}/"})) as relay:
        assert relay.supervisor.backend.self_id == 10001
        port = relay.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "", tmp_path) as bot:
            await bot.wait_for_line("BOT_CONNECTED 10001")
            await say(up_http, 20001, "ping")
            await wait_for_pong(up_http, 20001)


async def test_nonebot_behind_a_reverse_relay_answers_ping(
    gateway_process: Any, tmp_path: Path
) -> None:
    relay_port, up_http = free_port(), free_port()
    backend = {
        "mode": "reverse",
        "port": relay_port,
        "path": "/onebot/v11/ws",
        "token": "relay-secret",
    }
    async with run_gateway(relay_document({**backend, "connectTimeout": 0})) as relay:
        client = {
            "name": "to-relay",
            "enable": True,
            "token": "relay-secret",
            "reconnectInterval": 50,
            "url": f"ws://127.0.0.1:{relay_port}/onebot/v11/ws",
        }
        upstream = gateway_process(
            upstream_document(free_port(), up_http, {"websocketClients": [client]})
        )
        upstream.wait_for("gateway_ready")
        for _ in range(200):
            if relay.supervisor.backend.status()["online"]:
                break
            await asyncio.sleep(0.02)
        port = relay.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "", tmp_path) as bot:
            await bot.wait_for_line("BOT_CONNECTED 10001")
            await say(up_http, 20002, "ping")
            await wait_for_pong(up_http, 20002)


async def test_reverse_relay_refuses_a_wrong_token_before_the_upgrade() -> None:
    relay_port = free_port()
    backend = {"mode": "reverse", "port": relay_port, "token": "right", "connectTimeout": 0}
    async with run_gateway(relay_document(backend)), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                f"ws://127.0.0.1:{relay_port}/",
                headers={"Authorization": "Bearer wrong", "X-Self-ID": "1"},
            )
        assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
            await http.ws_connect(
                f"ws://127.0.0.1:{relay_port}/", headers={"Authorization": "Bearer right"}
            )
        assert anonymous.value.status == 400


async def test_upstream_outage_fails_fast_and_recovers_without_restarting(
    gateway_process: Any,
) -> None:
    up_ws, up_http = free_port(), free_port()
    document = upstream_document(up_ws, up_http)
    first = gateway_process(document)
    first.wait_for("gateway_ready")
    async with (
        run_gateway(relay_document({"url": f"ws://127.0.0.1:{up_ws}/"})) as relay,
        aiohttp.ClientSession() as http,
        http.ws_connect(relay.url("ws", "/").replace("http", "ws")) as downstream,
    ):
        await downstream.receive_json(timeout=5)  # lifecycle from the relay itself
        first.kill()
        for _ in range(200):
            if not relay.supervisor.backend.status()["online"]:
                break
            await asyncio.sleep(0.01)
        down = await post(relay, "get_login_info")
        assert down["retcode"] == 1200 and "upstream unavailable" in down["message"]
        second = gateway_process(document)
        second.wait_for("gateway_ready")
        for _ in range(300):
            if (await post(relay, "get_login_info"))["retcode"] == 0:
                break
            await asyncio.sleep(0.05)
        await say(up_http, 20003, "after the outage")
        while True:
            event = await downstream.receive_json(timeout=10)
            if event.get("post_type") == "message":
                break
        assert event["raw_message"] == "after the outage"
        assert not downstream.closed


# --- parameter names upstream -----------------------------------------------------------------

NAPCAT_FIELDS: dict[str, list[str]] = json.loads(
    (Path(__file__).parent / "data" / "napcat-request-fields.json").read_text()
)
"""Per NapCat action, the property names of its request schema (napcat-openapi-4.18.13.json)."""

# Valid parameters of each action with an aliased field, and a valid value for that field.
ALIASED_CALLS: dict[str, dict[str, Any]] = {
    "get_group_msg_history": {"group_id": 1},
    "get_friend_msg_history": {"user_id": 1},
    "set_group_add_request": {"flag": "f1"},
    "upload_group_file": {"group_id": 1, "file": "base64://aGk=", "name": "a.txt"},
    "create_group_file_folder": {"group_id": 1},
    "delete_group_folder": {"group_id": 1},
    "get_group_files_by_folder": {"group_id": 1},
    "set_self_longnick": {},
    "set_group_add_option": {"group_id": 1},
    "set_group_kick_members": {"group_id": 1},
    "fetch_emoji_like": {"message_id": 1},
    "click_inline_keyboard_button": {"message_id": 1},
    "get_mini_app_ark": {},
    "send_ark_share": {"user_id": 1},
    "upload_image_to_qun_album": {"group_id": 1, "album_id": "a1"},
    "do_group_album_comment": {"group_id": 1, "album_id": "a1"},
    "set_group_album_media_like": {"group_id": 1, "album_id": "a1", "batch_id": "b1"},
    "cancel_group_album_media_like": {"group_id": 1, "album_id": "a1", "batch_id": "b1"},
    "del_group_album_media": {"group_id": 1, "album_id": "a1"},
    "ocr_image": {},
    "send_forward_msg": {"group_id": 1},
    "send_group_forward_msg": {"group_id": 1},
    "send_private_forward_msg": {"user_id": 1},
}
ALIASED_VALUES: dict[str, tuple[Any, Any]] = {
    # field -> two different valid values (the second for a caller that sends two spellings)
    "reverse_order": (True, False),
    "sub_type": ("add", "invite"),
    "folder": ("/f1", "/f2"),
    "folder_name": ("new", "other"),
    "folder_id": ("/f1", "/f2"),
    "long_nick": ("hello", "bye"),
    "add_type": (1, 2),
    "user_ids": ([5, 6], [7]),
    "emojiId": ("76", "77"),
    "emojiType": ("1", "2"),
    "callback_data": ("cb", "other"),
    "appId": ("1109", "2209"),
    "phone_number": ("123", "456"),
    "file": ("base64://aGk=", "base64://aG8="),
    "lloc": ("L1", "L2"),
    "content": ("nice", "great"),
    "image": ("base64://aGk=", "base64://aG8="),
    "messages": (
        [{"type": "node", "data": {"id": 1}}],
        [{"type": "node", "data": {"id": 2}}],
    ),
}


def aliased_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    """Every (action, field, accepted spellings) of the catalog whose field has an alias, for
    the actions a relay forwards."""
    found = []
    for action in default_catalog():
        if action.name.startswith("sandbox_"):
            continue
        for name, field in action.params.model_fields.items():
            accepted = spellings(name, field)
            if len(accepted) > 1:
                found.append((action.name, name, tuple(sorted(accepted))))
    return found


def napcat_name(action: str, field: str, accepted: tuple[str, ...]) -> str:
    """The name NapCat's schema registers for a field: the one spelling it lists (the first
    alias choice when it lists several, which NapCat reads first); NapCat lists none for
    `set_group_add_request.sub_type`, which keeps its OneBot 11 name."""
    listed = [s for s in accepted if s in NAPCAT_FIELDS[action]]
    if not listed:
        return field
    if len(listed) == 1:
        return listed[0]
    entry = default_catalog().resolve(action)
    assert entry is not None
    alias = entry.params.model_fields[field].validation_alias
    choices = getattr(alias, "choices", [])
    return str(next(c for c in choices if c in listed))


ALIASED = aliased_fields()


def test_every_aliased_field_has_a_tested_upstream_name() -> None:
    assert ALIASED, "the catalog has aliased fields; none found"
    assert {(action, field) for action, field, _ in ALIASED} == set(UPSTREAM_NAMES)
    for action, field, accepted in ALIASED:
        assert UPSTREAM_NAMES[action, field] == napcat_name(action, field, accepted)
        assert action in NAPCAT_FIELDS, f"{action} is not one of NapCat's actions"
        assert action in ALIASED_CALLS and field in ALIASED_VALUES


@pytest.mark.parametrize(
    ("action", "field", "spelling"),
    [(a, f, s) for a, f, accepted in ALIASED for s in (*accepted, "(both)")],
)
async def test_aliased_fields_go_upstream_under_napcats_name_only(
    action: str, field: str, spelling: str
) -> None:
    accepted = next(s for a, f, s in ALIASED if (a, f) == (action, field))
    first, second = ALIASED_VALUES[field]
    if spelling == "(both)":
        # A caller that sends two spellings: one value goes up, the one the catalog validated.
        given = {s: v for s, v in zip(accepted, (first, second), strict=False)}
    else:
        given = {spelling: first}
    others = {f: ALIASED_VALUES[f][0] for a, f, _ in ALIASED if a == action and f != field}
    params = {**ALIASED_CALLS[action], **others, **given}
    entry = default_catalog().resolve(action)
    assert entry is not None
    expected = getattr(entry.validate(params), field)
    upstream = FakeUpstream(login_or(lambda f: {"status": "ok", "retcode": 0, "data": None}))
    async with relay_to(upstream) as gw:
        body = await post(gw, action, params)
    assert body["retcode"] == 0, body
    (sent,) = [f["params"] for f in upstream.frames if f["action"] == action]
    name = napcat_name(action, field, accepted)
    assert sent[name] == expected
    assert not set(accepted) - {name} & set(sent), sent
    # Everything else goes up as the caller sent it (other aliased fields under their names).
    others_up = {UPSTREAM_NAMES[action, f]: v for f, v in others.items()}
    assert {k: v for k, v in sent.items() if k not in accepted} == {
        **ALIASED_CALLS[action],
        **others_up,
    }
