"""Reloading accounts: added, removed and changed accounts take effect without touching the other
accounts or their connections."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from gateway.config import ConfigError, parse_config
from tests.conftest import capture_logs, http_entry, run_gateway
from tests.test_accounts_routing import (
    A,
    B,
    C,
    bot_server,
    call,
    frame_of,
    next_event,
    post,
    receive,
    ws_entry,
)


def accounts_document(
    names: dict[str, int], nicknames: dict[str, str] | None = None, **network: Any
) -> dict[str, Any]:
    nicknames = nicknames or {}
    accounts = []
    for name, self_id in names.items():
        backend: dict[str, Any] = {"database": ":memory:", "selfId": self_id}
        if name in nicknames:
            backend["nickname"] = nicknames[name]
        accounts.append({"name": name, "backend": backend})
    return {"accounts": accounts, "network": network}


async def test_reload_adds_removes_and_changes_accounts_leaving_the_others_alone(
    http: aiohttp.ClientSession,
) -> None:
    network = {"websocketServers": [ws_entry("ws")], "httpServers": [http_entry("api")]}
    before = accounts_document({"a": A, "b": B}, **network)
    async with run_gateway(before) as gw:
        # (The entries keep `port: 0`: unchanged, they keep running through the reload.)
        ws_port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        api_port = gw.supervisor.adapters["api"].port  # type: ignore[attr-defined]
        async with (
            http.ws_connect(f"ws://127.0.0.1:{ws_port}/{A}/") as on_a,
            http.ws_connect(f"ws://127.0.0.1:{ws_port}/{B}/") as on_b,
        ):
            await next_event(on_a, "meta_event")
            await next_event(on_b, "meta_event")
            after = accounts_document({"a": A, "c": C}, **network)
            await gw.supervisor.reload(parse_config(after, env={}))
            # b's connection closed (its account is gone), a's is the same one and still works.
            async with asyncio.timeout(10):
                closing = await on_b.receive()
            assert (closing.type, closing.data, closing.extra) == (
                WSMsgType.CLOSE,
                1001,
                "account removed",
            )
            me = await call(on_a, "get_login_info", "a")
            await receive(gw, "a", 30001, "still here")
            event = await next_event(on_a, "message")
            new = await post(http, f"http://127.0.0.1:{api_port}/{C}/get_login_info", {})
            gone = await post(http, f"http://127.0.0.1:{api_port}/{B}/get_login_info", {})
    assert me["data"]["user_id"] == A
    assert event["raw_message"] == "still here"
    assert new["data"]["user_id"] == C
    assert gone["retcode"] == 1403
    assert [account.name for account in gw.supervisor.accounts] == []  # stopped


async def test_a_changed_account_restarts_in_place_and_its_bound_connection_stays(
    http: aiohttp.ClientSession,
) -> None:
    network = {"websocketServers": [ws_entry("ws")]}
    async with run_gateway(accounts_document({"a": A, "b": B}, {"a": "Old"}, **network)) as gw:
        port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        async with http.ws_connect(f"ws://127.0.0.1:{port}/{A}/") as on_a:
            await next_event(on_a, "meta_event")
            before = await call(on_a, "get_login_info", "1")
            changed = accounts_document({"a": A, "b": B}, {"a": "New"}, **network)
            with capture_logs() as logs:
                await gw.supervisor.reload(parse_config(changed, env={}))
            after = await call(on_a, "get_login_info", "2")
            names = [account.name for account in gw.supervisor.accounts]
    assert before["data"]["nickname"] == "Old" and after["data"]["nickname"] == "New"
    assert names == ["a", "b"]  # config order kept
    stopped = [log["account"] for log in logs if log["event"] == "account_stopped"]
    assert stopped == ["a"]  # b was not touched


async def test_reload_opens_a_reverse_connection_for_an_added_account_only() -> None:
    async with bot_server() as bot:
        client = {
            "name": "reverse",
            "enable": True,
            "url": f"ws://127.0.0.1:{bot.port}/ws",
            "reconnectInterval": 50,
        }
        async with run_gateway(accounts_document({"a": A}, websocketClients=[client])) as gw:
            await frame_of(bot, A, "meta_event")
            first = bot.connections[A]
            await gw.supervisor.reload(
                parse_config(accounts_document({"a": A, "b": B}, websocketClients=[client]), env={})
            )
            lifecycle = await frame_of(bot, B, "meta_event")
            await receive(gw, "a", 30001, "for a")
            event = await frame_of(bot, A, "message")
    assert lifecycle["self_id"] == B
    assert bot.connections[A] is first  # a's connection was not replaced
    assert event["self_id"] == A


async def test_an_account_that_fails_to_start_on_reload_is_logged_and_the_rest_applies(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    network = {"httpServers": [http_entry("api")]}
    async with run_gateway(accounts_document({"a": A}, **network)) as gw:
        port = gw.supervisor.adapters["api"].port  # type: ignore[attr-defined]
        # An account whose world file cannot be read: it cannot start, the others do.
        document = accounts_document({"a": A, "broken": 10009, "c": C}, **network)
        document["accounts"][1]["backend"]["world"] = str(tmp_path / "no-such-world.json5")
        with capture_logs() as logs:
            await gw.supervisor.reload(parse_config(document, env={}))
        a = await post(http, f"http://127.0.0.1:{port}/{A}/get_login_info", {})
        c = await post(http, f"http://127.0.0.1:{port}/{C}/get_login_info", {})
        running = [account.name for account in gw.supervisor.accounts]
    failures = [log["error"] for log in logs if log["event"] == "account_start_failed"]
    assert len(failures) == 1, failures
    assert "accounts[1] ('broken')" in failures[0] and "no-such-world" in failures[0]
    assert a["data"]["user_id"] == A and c["data"]["user_id"] == C
    assert running == ["a", "c"]


def test_two_sandbox_accounts_that_would_share_a_qq_number_are_a_config_error() -> None:
    for document in (
        accounts_document({"a": A, "twin": A}),
        {"accounts": [{"name": "a"}, {"name": "b"}]},  # both the default world's own number
    ):
        with pytest.raises(ConfigError, match=r"accounts\[1\]\.backend\.selfId"):
            parse_config(document, env={})
