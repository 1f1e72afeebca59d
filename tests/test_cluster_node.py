"""Gateways as cluster nodes, in process, on a real nats-server: an edge node hosting no account
serves a bot the accounts an account node hosts (calls, events, directory, errors)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.config import parse_config
from gateway.supervisor import Supervisor
from tests.nats_server import NatsServer, nats_server  # noqa: F401 (the fixture)
from tests.test_accounts_routing import bot_server, frame_of, post

A, B = 10001, 10002


def cluster(server: NatsServer, node: str, **fields: Any) -> dict[str, Any]:
    return {"nats": {"url": server.url}, "node": node, "directoryTtl": 1500, **fields}


def account_node(server: NatsServer, node: str, accounts: dict[str, int]) -> dict[str, Any]:
    return {
        "accounts": [
            {"name": name, "backend": {"database": ":memory:", "selfId": self_id}}
            for name, self_id in accounts.items()
        ],
        "cluster": cluster(server, node),
    }


@contextlib.asynccontextmanager
async def running(document: dict[str, Any]) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(parse_config(document, env={}))
    await supervisor.start()
    try:
        yield supervisor
    finally:
        await supervisor.stop()


async def until(check: Any, seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        # Polled: a directory entry expiring by its timestamp sends no event.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_an_edge_node_serves_a_bot_the_accounts_another_node_hosts(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    async with bot_server() as bot:
        edge = {
            "accounts": [],
            "cluster": cluster(nats_server, "edge"),
            "network": {
                "httpServers": [
                    {"name": "api", "enable": True, "port": 0, "accounts": [A, B]},
                ],
                "websocketClients": [
                    {
                        "name": "bot",
                        "enable": True,
                        "url": f"ws://127.0.0.1:{bot.port}/ws",
                        "accounts": [A, B],
                        "reconnectInterval": 50,
                    }
                ],
            },
        }
        async with (
            running(account_node(nats_server, "n1", {"a": A, "b": B})) as host,
            running(edge) as gateway,
            aiohttp.ClientSession() as http,
        ):
            assert gateway.cluster is not None
            await until(lambda: all(gateway.cluster.directory.online(i) for i in (A, B)))  # type: ignore[union-attr]
            port = gateway.adapters["api"].port  # type: ignore[attr-defined]
            me = await post(http, f"http://127.0.0.1:{port}/{B}/get_login_info", {"echo": "x"})
            unnamed = await post(http, f"http://127.0.0.1:{port}/get_login_info", {})
            # A simulated user speaks to a hosted account: the edge's bot gets the event.
            account = host.accounts.named("a")
            assert account is not None
            sent = await account.dispatcher.call(
                "sandbox_receive_message",
                {"message_type": "private", "user_id": 20001, "message": "hello over nats"},
            )
            event = await frame_of(bot, A, "message")
            # The bot answers on its connection of account a: the reply lands in a's history.
            await bot.connections[A].send_json(
                {
                    "action": "send_private_msg",
                    "params": {"user_id": 20001, "message": "hi back"},
                    "echo": "r",
                }
            )
            async with asyncio.timeout(10):
                while True:
                    owner, answer = await bot.frames.get()
                    if answer.get("echo") == "r":
                        break
            history = await account.dispatcher.call("get_friend_msg_history", {"user_id": 20001})
    assert me["retcode"] == 0 and me["data"]["user_id"] == B and me["echo"] == "x"
    assert unnamed["retcode"] == 1400
    assert sent["retcode"] == 0
    assert (event["self_id"], event["raw_message"]) == (A, "hello over nats")
    assert (owner, answer["retcode"]) == (A, 0)
    texts = [m["raw_message"] for m in history["data"]["messages"]]
    assert texts[-2:] == ["hello over nats", "hi back"]


async def test_a_stopped_account_node_makes_its_accounts_offline_calls_fail_fast(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    edge = {
        "accounts": [{"name": "local", "backend": {"database": ":memory:", "selfId": B}}],
        "cluster": cluster(nats_server, "edge"),
        "network": {"httpServers": [{"name": "api", "enable": True, "port": 0}]},
    }
    edge["network"]["httpServers"][0]["accounts"] = ["local", A]
    async with running(edge) as gateway, aiohttp.ClientSession() as http:
        assert gateway.cluster is not None
        port = gateway.adapters["api"].port  # type: ignore[attr-defined]
        url = f"http://127.0.0.1:{port}"
        async with running(account_node(nats_server, "n1", {"a": A})):
            await until(lambda: gateway.cluster.directory.online(A))  # type: ignore[union-attr]
            before = await post(http, f"{url}/{A}/get_login_info", {})
        # A clean stop takes its accounts out of the directory at once.
        await until(lambda: not gateway.cluster.directory.online(A))  # type: ignore[union-attr]
        after = await post(http, f"{url}/{A}/get_login_info", {})
        local = await post(http, f"{url}/{B}/get_login_info", {})
        async with running(account_node(nats_server, "n1", {"a": A})):
            await until(lambda: gateway.cluster.directory.online(A))  # type: ignore[union-attr]
            again = await post(http, f"{url}/{A}/get_login_info", {})
    assert before["data"]["user_id"] == A
    assert after["retcode"] == 1200 and str(A) in after["message"]
    assert local["data"]["user_id"] == B
    assert again["data"]["user_id"] == A
